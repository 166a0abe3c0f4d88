"""The world-model agent: BSRP-Lag (SafeDreamer) and the DreamerV3 baseline.

Methods (config.method):
  bsrp_lag   safe actor trained with the augmented Lagrangian on cost returns
  dreamerv3  costs ignored: no cost critic, no Lagrangian (the cost head is still
             trained, for reports)
  osrp, osrp_lag  reward-driven actor plus a trained cost critic, for the planners
             that wrap this agent

The agent owns one state pytree (params, optimiser states, slow critics, return
normaliser, Lagrangian, RNG key, update count) and a policy RNG key; the compiled
update and policy step live in a shared `DreamerCore` (agents/dreamer_core.py).
`train` makes one device call and fetches the metrics once.
"""
from __future__ import annotations

from typing import Any

from safedreamer.agents.memory import keep_freed_memory

keep_freed_memory()  # before the first JAX computation; see agents/memory.py

import flax.serialization  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from safedreamer.agents.base import Agent  # noqa: E402
from safedreamer.agents.dreamer_core import METHODS, get_core  # noqa: E402,F401
from safedreamer.behavior import obs_cost  # noqa: E402
from safedreamer.behavior import pid as pid_fns  # noqa: E402
from safedreamer.behavior.plan_model import PlanModel  # noqa: E402
from safedreamer.model.openloop import CONTEXT, openloop_predict  # noqa: E402


class DreamerAgent(Agent):

  def __init__(self, config, obs_space: dict, act_dim: int):
    self.config, self.obs_space, self.act_dim = config, obs_space, act_dim
    self.core = get_core(config, obs_space, act_dim)
    self.wm, self.behavior = self.core.wm, self.core.behavior
    # the imagined cost feeds the cost critic (none in dreamerv3)
    self.imagines_obs_cost = (config.behavior.cost_source == 'obs'
                              and self.behavior.use_cost_critic)
    if self.imagines_obs_cost:
      obs_cost.require_coords(config.env.obs, 'behavior.cost_source')
    self.obs_keys = self.wm.codec.keys
    key, self.policy_key = jax.random.split(jax.random.PRNGKey(config.seed))
    self.state = self.core.init_state(key)
    self._openloop = None
    self.own_traces: dict[str, int] = {}   # compilations of this agent's own programs
    # BSRP-Lag with lagrangian.multiplier 'pid': the controller runs here, on the host,
    # once per finished training episode, and writes its lam into the state
    self.lag_pid = None
    if config.method == 'bsrp_lag' and config.lagrangian.multiplier == 'pid':
      self.lag_pid = pid_fns.pid_init(config.lagrangian.pid)
      self._set_multiplier()

  def _set_multiplier(self):
    lag = dict(self.state['lag'], lam=jnp.asarray(self.lag_pid.lam, jnp.float32))
    self.state = dict(self.state, lag=lag)

  @property
  def params(self):
    return self.state['params']

  @property
  def trace_counts(self) -> dict[str, int]:
    """How often the (shared) update and policy step, and this agent's own programs,
    were traced (compiled)."""
    return {**self.core.trace_counts, **self.own_traces}

  def attach(self, envs) -> None:
    """behavior.cost_source 'obs': reads the coordinate layout of the environments
    and takes the core compiled for it (the first layout's robot footprint is kept
    while the layout stays the same, so re-attaching never recompiles)."""
    if not self.imagines_obs_cost:
      return
    spec = obs_cost.coords_spec(envs, self.config.task)
    if self.core.cost_spec is None or spec.key() != self.core.cost_spec.key():
      self.core = get_core(self.config, self.obs_space, self.act_dim, spec)
      self.wm, self.behavior = self.core.wm, self.core.behavior

  # --- training ------------------------------------------------------------------------
  def _prepare_batch(self, batch):
    out = {k: np.asarray(batch[k]) for k in self.obs_keys}
    out.update({k: np.asarray(batch[k], np.float32) for k in self.wm.codec.vec})
    out.update({k: np.asarray(batch[k], np.float32) for k in ('action', 'reward', 'cost')})
    out['reward'] = out['reward'] * np.float32(self.config.model.reward_scale)
    out.update({k: np.asarray(batch[k], bool) for k in ('is_first', 'is_terminal')})
    return out

  def train(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
    rows = self.config.replay.batch_size * self.config.model.updates
    if len(batch['action']) != rows:  # the update would split it into other batches
      raise ValueError(f'a training batch holds replay.batch_size x model.updates = {rows} '
                       f'sequences, not {len(batch["action"])}')
    self.state, metrics = self.core.update(self.state, self._prepare_batch(batch))
    return {k: float(v) for k, v in jax.device_get(metrics).items()}

  def episode_end(self, ep_return: float, ep_cost: float, mode: str) -> dict[str, float]:
    """BSRP-Lag with the 'pid' multiplier: one controller step per training episode."""
    if self.lag_pid is None or mode != 'train':
      return {}
    self.lag_pid = pid_fns.pid_update(self.lag_pid, ep_cost, self.config.cost_limit,
                                      self.config.lagrangian.pid)
    self._set_multiplier()
    return pid_fns.pid_metrics(self.lag_pid)

  # --- acting --------------------------------------------------------------------------
  def init_policy_state(self, num_envs: int) -> Any:
    latent = self.core.initial(self.params['wm']['rssm'], num_envs)
    return {'latent': latent, 'action': jnp.zeros((num_envs, self.act_dim), jnp.float32)}

  def policy(self, obs, state, mode):
    if mode not in ('train', 'eval'):
      raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
    inp = {k: np.asarray(obs[k]) for k in self.obs_keys}
    inp.update({k: np.asarray(obs[k], np.float32) for k in self.wm.codec.vec})
    inp['is_first'] = np.asarray(obs['is_first'], bool)
    action, state, self.policy_key = self.core.policy(
        self.params, state, inp, self.policy_key, np.asarray(mode == 'train'))
    return np.asarray(action), state

  def observe_step(self, params, pstate, obs, key):
    """Pure posterior step (see DreamerCore.observe_step); usable inside jit."""
    return self.core.observe_step(params, pstate, obs, key)

  def plan_model(self, params=None) -> PlanModel:
    """Pure model functions for planners, closed over `params` (default: current)."""
    return self.core.plan_model(self.params if params is None else params)

  # --- reports -----------------------------------------------------------------------
  def report(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Open-loop predictions of replay windows (25 context steps, then actions only)."""
    if batch['is_first'].shape[1] <= CONTEXT:
      return {}
    if self._openloop is None:
      self._openloop = jax.jit(lambda p, b, k: openloop_predict(self.wm, p, b, k))
    inp = self._prepare_batch(batch)
    pred = self._openloop(self.params['wm'], inp, jax.random.PRNGKey(0))
    truth = {k: np.asarray(batch[k]) for k in (*self.obs_keys, 'reward', 'cost')}
    pred = jax.device_get(pred)
    pred['reward'] = pred['reward'] / self.config.model.reward_scale  # environment units
    return {'truth': truth, 'prediction': pred, 'context': CONTEXT}

  # --- checkpoints ---------------------------------------------------------------------
  def save(self) -> dict[str, Any]:
    """Nested dicts of numpy arrays (no custom classes), ready for any serialiser."""
    host = jax.device_get({'state': self.state, 'policy_key': self.policy_key})
    out = flax.serialization.to_state_dict(host)
    if self.lag_pid is not None:
      out['lag_pid'] = pid_fns.pid_save(self.lag_pid)
    return out

  def load(self, saved: dict[str, Any]) -> None:
    template = {'state': self.state, 'policy_key': self.policy_key}
    if self.lag_pid is not None:
      self.lag_pid = pid_fns.pid_load(saved['lag_pid'])
    saved = {k: v for k, v in saved.items() if k != 'lag_pid'}
    restored = flax.serialization.from_state_dict(template, saved)
    restored = jax.tree.map(lambda t, x: jnp.asarray(x, t.dtype), template, restored)
    self.state, self.policy_key = restored['state'], restored['policy_key']
