"""OSRP and OSRP-Lag: the world-model agent acting by online CCEM planning.

Learning is DreamerAgent's, unchanged (world model, reward-driven actor, reward and
cost critics in one compiled update). Acting differs: at every agent step, from the
posterior state of the current observation, the constrained cross-entropy planner
(behavior/ccem.py, SPEC 2.4) searches action sequences in the learned model and the
agent takes the first action of the plan. OSRP-Lag (SPEC 2.5) ranks safe sequences
by J_R - lam * J_C with lam from a PID Lagrangian (behavior/pid.py) that moves once
per finished TRAINING episode (`episode_end(..., 'train')`; evaluation episodes
never move it).

One jitted function acts for all N environments: observe (posterior update) +
`ccem.plan_batch`. Parameters, the multiplier, the sample flag and the episode
length are traced arguments, so it compiles once per number of environments.

Policy state (per environment): latent (posterior), action (the last one taken),
mean [H, A] (the planner's warm start; `plan` shifts it and resets it to zeros on
is_first rows). It lives in the driver and restarts with fresh episodes after a
resume, so it needs no checkpoint.

Cost of an imagined state (`planner.cost_source`): 'head' = the cost head; 'obs'
= counted from the decoded coordinate observation (behavior/obs_cost.py; the
layout is read from the environments in `attach`).

Episode length L (for J_C' = sum of costs * L / H): `envs.episode_length` from
`attach` (agent steps); before any attach, ceil(env.episode_length / action_repeat).

Logged (returned by `episode_end` for training episodes): plan/safe_frac,
plan/elite_ret, plan/elite_cost, plan/elite_cost_ret, plan/std, means over every
planning step of every environment since the previous finished training episode
(the metrics of `ccem.plan`); for OSRP-Lag also pid/p, pid/i, pid/d, pid/lam,
pid/jbar after the update.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from safedreamer.agents.dreamer import DreamerAgent
from safedreamer.agents.dreamer_core import obs_cost_fn
from safedreamer.behavior import ccem, obs_cost
from safedreamer.behavior import pid as pid_fns


class PlannerAgent(DreamerAgent):
  """DreamerAgent that acts by CCEM planning ('osrp', 'osrp_lag')."""

  def __init__(self, config, obs_space: dict, act_dim: int):
    if config.method not in ('osrp', 'osrp_lag'):
      raise ValueError(f"PlannerAgent runs 'osrp' and 'osrp_lag', not {config.method!r}")
    if config.planner.cost_source == 'obs':
      obs_cost.require_coords(config.env.obs, 'planner.cost_source')
    super().__init__(config, obs_space, act_dim)
    self.cfg = ccem.CCEMConfig.from_config(config)
    self.pid = pid_fns.pid_init(config.pid) if self.cfg.lagrangian else None
    self.episode_length = math.ceil(config.env.episode_length / config.env.action_repeat)
    self.stats = ccem.PlanStats()
    self.own_traces['plan'] = 0
    self._spec = None          # obs_cost.CoordsSpec once attached (cost_source 'obs')
    self._plan = jax.jit(self._plan_fn)

  # --- environments ----------------------------------------------------------------------
  def attach(self, envs) -> None:
    """Reads the episode length (agent steps) and, for cost_source 'obs', the
    coordinate layout of the environments (as DreamerAgent does for
    behavior.cost_source 'obs')."""
    super().attach(envs)
    self.episode_length = int(envs.episode_length)
    if self.config.planner.cost_source == 'obs':
      spec = obs_cost.coords_spec(envs, self.config.task)
      if self._spec is None or spec.key() != self._spec.key():
        obs_cost_fn(self.wm, spec, self.config, gradient=False)  # validates sizes
        self._spec = spec
        self._plan = jax.jit(self._plan_fn)  # the layout is static: a new program

  # --- acting ----------------------------------------------------------------------------
  def init_policy_state(self, num_envs: int) -> Any:
    state = super().init_policy_state(num_envs)
    state['mean'] = ccem.initial_means(num_envs, self.cfg, self.act_dim)
    return state

  def plan_model(self, params=None):
    """DreamerAgent's PlanModel with the cost replaced by the decoded-observation
    cost when `planner.cost_source` is 'obs'."""
    model = super().plan_model(params)
    if self.config.planner.cost_source == 'obs':
      if self._spec is None:
        raise RuntimeError("planner.cost_source 'obs': call attach(envs) before planning")
      p = self.params if params is None else params
      cost = obs_cost_fn(self.wm, self._spec, self.config, gradient=False)  # as imagined
      model = model._replace(cost=lambda s: cost(p['wm'], self.wm.rssm.feat(s)))
    return model

  def _plan_fn(self, params, pstate, obs, key, multiplier, sample, episode_length):
    """Observe this step's observation, then plan for every environment."""
    self.own_traces['plan'] += 1  # runs only while tracing
    key, k_obs, k_plan = jax.random.split(key, 3)
    latent = self.observe_step(params, pstate, obs, k_obs)
    keys = jax.random.split(k_plan, obs['is_first'].shape[0])
    out = ccem.plan_batch(self.plan_model(params), self.cfg, latent, pstate['mean'],
                          obs['is_first'], keys, self.config.cost_limit, episode_length,
                          multiplier, sample)
    state = {'latent': latent, 'action': out.action, 'mean': out.mean}
    return out.action, state, key, out.metrics

  @property
  def multiplier(self) -> float:
    """The PID multiplier the planner uses (0 for OSRP)."""
    return float(self.pid.lam) if self.pid is not None else 0.0

  def policy(self, obs, state, mode):
    if mode not in ('train', 'eval'):
      raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
    inp = {k: np.asarray(obs[k]) for k in self.obs_keys}
    for k in self.wm.codec.vec:
      inp[k] = inp[k].astype(np.float32)
    inp['is_first'] = np.asarray(obs['is_first'], bool)
    p = self.config.planner
    sample = p.sample_train if mode == 'train' else p.sample_eval
    action, state, self.policy_key, metrics = self._plan(
        self.params, state, inp, self.policy_key, np.float32(self.multiplier),
        np.asarray(sample), np.float32(self.episode_length))
    action, metrics = jax.device_get((action, metrics))
    self.stats.add(metrics, mode)
    return np.asarray(action), state

  # --- episodes ----------------------------------------------------------------------------
  def episode_end(self, ep_return: float, ep_cost: float, mode: str) -> dict[str, float]:
    """Training episodes: the PID update (OSRP-Lag) and the planner diagnostics
    since the previous training episode. Evaluation episodes change nothing."""
    if mode != 'train':
      return {}
    out = self.stats.pop('train')
    if self.pid is not None:
      self.pid = pid_fns.pid_update(self.pid, ep_cost, self.config.cost_limit, self.config.pid)
      out.update(pid_fns.pid_metrics(self.pid))
    return out

  # --- checkpoints -------------------------------------------------------------------------
  def save(self) -> dict[str, Any]:
    """DreamerAgent's state plus the PID state and the diagnostics' running sums."""
    out = super().save()
    out['planner'] = {'stats': self.stats.save()}
    if self.pid is not None:
      out['planner']['pid'] = pid_fns.pid_save(self.pid)
    return out

  def load(self, saved: dict[str, Any]) -> None:
    super().load({k: v for k, v in saved.items() if k != 'planner'})
    self.stats.load(saved['planner']['stats'])
    if self.pid is not None:
      self.pid = pid_fns.pid_load(saved['planner']['pid'])
