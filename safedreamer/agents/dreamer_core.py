"""The compiled programs of the world-model agent, shared by agents of one shape.

`DreamerCore` binds a world model and a behaviour into pure functions of an agent
state pytree and jits them: the update (world model, then actor / reward critic /
cost critic in imagination from the updated model's view of the batch (with
`model.updates` K > 1: K world-model updates on K batches, imagination from the last),
then slow critics, return normaliser and Lagrangian; the state buffers are donated) and the
policy step. `get_core` returns one core per (config without seed, observation
space, action size, coordinate layout), so agents that differ only in seed (an
evaluation copy, a restored checkpoint, tests) compile once. A core is fixed once
built: it holds programs, never an agent's state, so sharing one changes nothing
for another agent (its `trace_counts` count the compilations of the shared programs).

Units: the planner sees rewards and reward values in the environment's units (the
model learns them x `model.reward_scale`), so that OSRP-Lag's J_R - lam J_C weighs
environment return against cost, as its PID (and `pid.lam_max`) assume. Costs are
per agent step everywhere: the cost head learns the cost summed over the
`env.action_repeat` simulator steps of an agent step, and a count on decoded
coordinates (one per state) is multiplied by `env.action_repeat` to match, in
imagination and in the planner alike (`obs_cost_fn`).
"""
from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from safedreamer.behavior import lagrangian as lag_fns
from safedreamer.behavior import obs_cost
from safedreamer.behavior import returns as ret_fns
from safedreamer.behavior.actor_critic import Behavior
from safedreamer.behavior.plan_model import PlanModel
from safedreamer.model.world_model import WorldModel
from safedreamer.nn import dists

METHODS = ('bsrp_lag', 'dreamerv3', 'osrp', 'osrp_lag')
# XLA:CPU's older loop emitters compile our update ~40% faster than its new fusion
# emitters (paper size: 23 vs 38 CPU-s) at the same run time. Other backends ignore it.
COMPILER_OPTIONS = {'xla_cpu_use_fusion_emitters': False}


@functools.lru_cache(maxsize=None)
def compiler_options() -> dict:
  """COMPILER_OPTIONS, or {} where this XLA no longer knows the flag (jax 0.11 dropped it)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=COMPILER_OPTIONS).lower(0.0).compile()
    return COMPILER_OPTIONS
  except jax.errors.JaxRuntimeError:
    return {}


def _adam(lr, eps, clip):
  # optax.flatten: one vector per module instead of one small update per leaf
  # (XLA:CPU compile time grows with the number of kernels; 8.6 s -> 2 s for tiny)
  return optax.flatten(optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr, eps=eps)))


class DreamerCore:

  def __init__(self, config, obs_space: dict, act_dim: int, cost_spec=None):
    if config.method not in METHODS:
      raise ValueError(f'DreamerAgent runs {METHODS}, not {config.method!r}')
    self.config, self.act_dim = config, act_dim
    self.wm = WorldModel(config.model, obs_space, act_dim)
    lag_cfg = config.lagrangian if config.method == 'bsrp_lag' else None
    self.behavior = Behavior(config.behavior, self.wm, act_dim,
                             cost_critic=config.method != 'dreamerv3',
                             lagrangian_cfg=lag_cfg, cost_limit=config.cost_limit)
    m, b = config.model, config.behavior
    self.opts = {'wm': _adam(m.lr, m.eps, m.clip), 'actor': _adam(b.actor_lr, b.eps, b.clip)}
    self.opts.update({c: _adam(b.critic_lr, b.eps, b.clip) for c in self.behavior.critics})
    self.trace_counts = {'update': 0, 'policy': 0}
    self.cost_spec = cost_spec   # obs_cost.CoordsSpec: behavior.cost_source 'obs'
    if cost_spec is not None and config.behavior.cost_source == 'obs':
      self.behavior.cost_fn = obs_cost_fn(self.wm, cost_spec, config)
    options = compiler_options()
    jit = lambda f, **kw: jax.jit(f, compiler_options=options, **kw)
    self.init_state = jit(self._init_state)
    self.update = jit(self._update, donate_argnums=0)
    if config.jax.devices > 1:  # data-parallel updates: state replicated, batch split
      from safedreamer.agents import sharding
      self.init_state, self.update = sharding.data_parallel(
          config.jax.devices, self._init_state, self._update, options)
    self.policy = jit(self._policy)
    self.initial = jit(self.wm.rssm.initial, static_argnums=1)

  # --- state ---------------------------------------------------------------------------
  def _init_state(self, key):
    k_wm, k_beh, key = jax.random.split(key, 3)
    params = {'wm': self.wm.init(k_wm), **self.behavior.init(k_beh)}
    lag = self.config.lagrangian
    return {
        'params': params,
        'opt': {k: opt.init(params[k]) for k, opt in self.opts.items()},
        'slow': {c: jax.tree.map(jnp.copy, params[c]) for c in self.behavior.critics},
        'retnorm': ret_fns.retnorm_init(),
        'lag': lag_fns.lagrangian_init(lag.multiplier_init, lag.penalty_init),
        'key': key,
        'step': jnp.zeros((), jnp.int32),
    }

  # --- update --------------------------------------------------------------------------
  def _update(self, state, batch):
    self.trace_counts['update'] += 1  # runs only while tracing
    cfg = self.config
    key, k_wm, k_beh = jax.random.split(state['key'], 3)
    params, opt = dict(state['params']), dict(state['opt'])

    updates = cfg.model.updates
    if updates == 1:
      params['wm'], opt['wm'], metrics, post = self._wm_step(params['wm'], opt['wm'], batch, k_wm)
    else:  # one update per batch of B sequences; imagination starts from the last
      chunks = jax.tree.map(lambda x: x.reshape((updates, -1) + x.shape[1:]), batch)

      def body(carry, inp):
        wm_params, wm_opt, m, p = self._wm_step(*carry, *inp)
        return (wm_params, wm_opt), (m, p)
      (params['wm'], opt['wm']), (metrics, post) = jax.lax.scan(
          body, (params['wm'], opt['wm']), (chunks, jax.random.split(k_wm, updates)))
      metrics = jax.tree.map(lambda m: m.mean(0), metrics)
      post = jax.tree.map(lambda x: x[-1], post)
      batch = jax.tree.map(lambda x: x[-1], chunks)

    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    start = jax.tree.map(flat, post)
    start_cont = flat(1.0 - batch['is_terminal'].astype(jnp.float32))
    beh_params = {k: params[k] for k in ['actor'] + self.behavior.critics}
    replay = {'reward': batch['reward'], 'cost': batch['cost'],
              'cont': 1.0 - batch['is_terminal'].astype(jnp.float32),
              'first': batch['is_first']}   # the critics' replay loss (behavior.replay_critic)
    grad_fn = jax.value_and_grad(self.behavior.loss, has_aux=True)
    (_, (beh_metrics, retnorm, g)), grads = grad_fn(
        beh_params, state['slow'], params['wm'], start, start_cont, state['retnorm'],
        state['lag'], k_beh, replay)
    metrics.update(beh_metrics)
    for k in beh_params:
      metrics[f'{k}/grad_norm'] = optax.tree.norm(grads[k])
      params[k], opt[k] = self._apply(k, grads[k], opt[k], params[k])

    mix = cfg.behavior.slow_mix
    slow = {c: jax.tree.map(lambda s, p: (1 - mix) * s + mix * p, state['slow'][c], params[c])
            for c in self.behavior.critics}
    lag = state['lag']
    if self.behavior.lag_cfg is not None:
      if cfg.lagrangian.multiplier == 'augmented':  # 'pid': the agent sets lam per episode
        lag = lag_fns.lagrangian_update(lag, g, cfg.lagrangian.penalty_power,
                                        cfg.lagrangian.penalty_max)
      metrics.update({'lag/lambda': lag['lam'], 'lag/mu': lag['mu']})
    new = {'params': params, 'opt': opt, 'slow': slow, 'retnorm': retnorm, 'lag': lag,
           'key': key, 'step': state['step'] + 1}
    return new, metrics

  def _wm_step(self, wm_params, wm_opt, batch, key):
    """One world-model update: (params, opt state, metrics, posterior of the batch)."""
    grad_fn = jax.value_and_grad(self.wm.loss, has_aux=True)
    (_, (metrics, post)), grads = grad_fn(wm_params, batch, key)
    metrics['wm/grad_norm'] = optax.tree.norm(grads)
    wm_params, wm_opt = self._apply('wm', grads, wm_opt, wm_params)
    return wm_params, wm_opt, metrics, post

  def _apply(self, name, grads, opt_state, params):
    updates, opt_state = self.opts[name].update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  # --- acting --------------------------------------------------------------------------
  def observe_step(self, params, pstate, obs, key):
    """Posterior state after this step's observation (pure; for planners too).
    pstate = {latent: {deter, stoch}, action: the previous action}."""
    rssm = self.wm.rssm
    eproj = rssm.embed_proj(params['wm']['rssm'], self.wm.encode(params['wm'], obs))
    latent, _ = rssm.obs_step(params['wm']['rssm'], pstate['latent'], pstate['action'],
                              eproj, obs['is_first'], key)
    return latent

  def _policy(self, params, pstate, obs, key, sample):
    self.trace_counts['policy'] += 1
    key, k_obs, k_act = jax.random.split(key, 3)
    latent = self.observe_step(params, pstate, obs, k_obs)
    mean, std = self.behavior.actor(params['actor'], self.wm.rssm.feat(latent))
    action = jnp.where(sample, jnp.clip(dists.normal_sample(mean, std, k_act), -1, 1), mean)
    return action, {'latent': latent, 'action': action}, key

  # --- planning interface ----------------------------------------------------------------
  def plan_model(self, params) -> PlanModel:
    """Pure functions of the learned model for planners, closed over `params`
    (concrete, or traced inside the caller's jit). `step` takes the prior's mode
    (deterministic), so that a sequence's score depends only on its actions."""
    wm, beh, rssm, p = self.wm, self.behavior, self.wm.rssm, params
    feat = rssm.feat
    unscale = 1.0 / self.config.model.reward_scale   # to the environment's reward units
    if beh.use_cost_critic:
      cost_value = lambda s: beh.value(p['cost_critic'], feat(s))
    else:
      cost_value = lambda s: jnp.zeros(s['deter'].shape[:1], jnp.float32)

    def actor(key, s):
      mean, std = beh.actor(p['actor'], feat(s))
      return jnp.clip(dists.normal_sample(mean, std, key), -1, 1)

    return PlanModel(
        step=lambda s, a: rssm.img_step(p['wm']['rssm'], s, a),
        reward=lambda s: wm.reward(p['wm'], feat(s)) * unscale,
        cost=lambda s: wm.cost(p['wm'], feat(s)),
        cont=lambda s: jax.nn.sigmoid(wm.cont_logit(p['wm'], feat(s))),
        value=lambda s: beh.value(p['critic'], feat(s)) * unscale,
        cost_value=cost_value,
        actor=actor)


def obs_cost_fn(wm, spec, config, gradient: bool = True):
  """(wm_params, feat) -> cost per agent step counted on the decoded coordinates of
  layout `spec`: the count x env.action_repeat, with the gradient of a smooth count
  of width behavior.cost_softness (obs_cost.feat_cost). Planners, which need no
  gradient, take gradient=False: the same values, without the smooth count."""
  softness = config.behavior.cost_softness if gradient else 0.0
  return obs_cost.feat_cost(wm, spec, softness, scale=config.env.action_repeat)


_CORES: dict[str, DreamerCore] = {}


def get_core(config, obs_space: dict, act_dim: int, cost_spec=None) -> DreamerCore:
  """The shared core for this shape of agent (everything but the seed) and, for
  behavior.cost_source 'obs', this coordinate layout (`obs_cost.CoordsSpec`)."""
  space = {k: [list(s), str(jax.numpy.dtype(d))] for k, (s, d) in sorted(obs_space.items())}
  spec = None
  if cost_spec is not None:
    spec = [cost_spec.key(), np.round(np.asarray(cost_spec.footprint, np.float64), 6).tolist()]
  key = json.dumps([config.model_dump(exclude={'seed', 'logdir', 'run'}), space, act_dim, spec],
                   sort_keys=True, default=str)
  if key not in _CORES:
    _CORES[key] = DreamerCore(config, obs_space, act_dim, cost_spec)
  return _CORES[key]
