"""OSRP / OSRP-Lag: constrained cross-entropy planning in the world model.

SPEC 2.4 and the paper's Algorithm 1. At every agent step, for each environment:

  mean <- warm_start(last mean, reset)  shift by one step (last row repeated); zeros at
                                     an episode start.  std <- init_std.
  repeat J times:
    N Gaussian sequences clip(mean + std * eps, -1, 1), plus N_pi sequences of the
    reward-driven actor (rolled once per agent step and reused in every iteration,
    as the authors do; `model.step` is deterministic, so their scores do not
    change), all rolled H steps through the prior (`model.step`) and scored:
      J_R  = reward lambda-return from the start state (critic bootstrap,
             gamma, lambda, continuation; returns.lambda_returns)
      J_C' = sum_t cost(s_t) * L / H       (an episode-cost estimate; L = episode
                                            length in agent steps)
      J_C  = cost lambda-return (cost-critic bootstrap; OSRP-Lag only)
    safe iff J_C' < b.  elites = `select_elites` (unsafe sequences are masked out).
    mean <- momentum * mean + (1 - momentum) * mean(elites); std <- std(elites)
  act with mu_1, or a sample of N(mu_1, std_1) (clipped) when `sample`.

`plan` plans for one environment; `plan_batch` vmaps it over environments. Neither
is jitted: an agent calls `plan_batch` inside its own jitted policy step, where the
`PlanModel` is built from traced parameters (so new parameters never recompile).
`make_planner` jits it for a fixed model (tests, benchmarks).

The model is a `PlanModel` (behavior/plan_model.py): a NamedTuple of pure functions
on a state pytree with leading batch dim N: step(state, action[N, A]) -> state;
reward, cost, cont, value, cost_value (state) -> [N]; actor(key, state) -> [N, A]
(may be None when mixture is 0). Only attribute access is used here.
"""
from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from safedreamer.behavior.returns import lambda_returns

if TYPE_CHECKING:  # the world-model side of the contract, imported for typing only
  from safedreamer.behavior.plan_model import PlanModel


@dataclasses.dataclass(frozen=True)
class CCEMConfig:
  """Static planner settings (hashable: changing one recompiles)."""
  horizon: int = 15
  samples: int = 500          # N Gaussian sequences per iteration
  elites: int = 50            # E
  iterations: int = 6         # J
  init_std: float = 1.0
  momentum: float = 0.1       # weight of the OLD mean in the refit
  mixture: float = 0.05       # N_pi = round(mixture * N) actor sequences
  gamma: float = 0.997
  return_lambda: float = 0.95
  lagrangian: bool = False    # OSRP-Lag: rank safe sequences by J_R - multiplier * J_C

  @property
  def actor_samples(self) -> int:
    return int(round(self.mixture * self.samples))

  @classmethod
  def from_config(cls, config: Any) -> 'CCEMConfig':
    """From a full schema `Config` (planner + behavior sections, method)."""
    p, b = config.planner, config.behavior
    return cls(horizon=p.horizon, samples=p.samples, elites=p.elites,
               iterations=p.iterations, init_std=p.init_std, momentum=p.momentum,
               mixture=p.mixture, gamma=b.gamma, return_lambda=b.return_lambda,
               lagrangian=config.method == 'osrp_lag')


class PlanResult(NamedTuple):
  action: jax.Array    # [A] (batched: [B, A]) the action to take now
  mean: jax.Array      # [H, A] the planner state to pass back next step (un-shifted)
  metrics: dict        # scalars (batched: [B]); see `plan`


# ---------------------------------------------------------------- pure helpers

def warm_start(mean: jax.Array, reset: jax.Array) -> jax.Array:
  """Last step's mean [H, A] shifted one step earlier with the last row repeated;
  zeros where `reset` (episode start)."""
  shifted = jnp.concatenate([mean[1:], mean[-1:]], 0)
  return jnp.where(reset, jnp.zeros_like(mean), shifted)


def select_elites(objective, episode_cost, cost_limit, num_elites: int):
  """Indices [E] of the elite sequences and the number of safe ones.

  safe = episode_cost < cost_limit. With at least E safe sequences: the E safe ones
  with the highest objective (unsafe ones are ranked below every safe one, so they
  can never be chosen). Otherwise: the E with the lowest episode cost, ties broken
  by the higher objective (so with cost limit 0, where nothing is ever safe, the
  zero-cost sequences are still ranked by reward).
  """
  safe = episode_cost < cost_limit
  num_safe = safe.sum()
  enough = num_safe >= num_elites
  primary = jnp.where(enough, safe.astype(episode_cost.dtype), -episode_cost)
  order = jnp.lexsort((-objective, -primary))  # last key is the primary one
  return order[:num_elites], num_safe


def refit(mean, elite_actions, momentum: float):
  """New (mean, std) [H, A] from elite sequences [E, H, A]."""
  new_mean = momentum * mean + (1 - momentum) * elite_actions.mean(0)
  return new_mean, elite_actions.std(0)


# ---------------------------------------------------------------- the planner

def _broadcast(state, n: int):
  return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), state)


# Where the heads (reward, cost, continue, critics: most of a model step's FLOPs) run.
# With few rows per step (one environment: N or N_pi rows) they run once
# after the rollout on all H steps' states, H times taller matmuls that keep two CPU
# threads busy; with many rows per step (batched environments) they run inside the
# loop, where the matmuls are already tall and the [H, rows, state] trajectory would
# not fit in cache. Measured with benchmarks/planner_speed.py (RESULTS.md).
HEADS_AFTER_ROLLOUT_MAX_ROWS = 512


def _heads(model, state, cfg: CCEMConfig):
  out = {'reward': model.reward(state), 'cost': model.cost(state),
         'cont': model.cont(state), 'value': model.value(state)}
  if cfg.lagrangian:
    out['cost_value'] = model.cost_value(state)
  return out


def _imagine(model, start, policy, xs, cfg: CCEMConfig, heads_in_loop: bool):
  """Roll a batch of states len(xs) steps, acting with policy(state, x) -> [N, A].
  Returns actions [N, H, A] and per-step head outputs {name: [H, N]}."""
  def step(state, x):
    action = jnp.clip(policy(state, x), -1, 1)
    state = model.step(state, action)
    return state, (action, _heads(model, state, cfg) if heads_in_loop else state)
  _, (actions, out) = lax.scan(step, start, xs)
  if not heads_in_loop:
    horizon, n = actions.shape[:2]
    flat = jax.tree_util.tree_map(lambda x: x.reshape((horizon * n,) + x.shape[2:]), out)
    out = {k: v.reshape(horizon, n) for k, v in _heads(model, flat, cfg).items()}
  return jnp.swapaxes(actions, 0, 1), out


def _return(reward, cont, value, cfg: CCEMConfig):
  """Lambda-return G_0 of the start state s_0 from [H, N] rewards, continuations
  and critic values of s_1..s_H (returns.py wants V_0..V_H; V_0 never enters)."""
  value = jnp.concatenate([jnp.zeros_like(value[:1]), value], 0)
  return lambda_returns(reward, value, cont, cfg.gamma, cfg.return_lambda)[0]


def _score(outs, cfg: CCEMConfig, episode_length):
  """(J_R, J_C', J_C), each [N]: reward lambda-return, episode-scaled cost sum
  sum_t cost(s_t) * L / H, cost lambda-return (zeros unless cfg.lagrangian)."""
  ret = _return(outs['reward'], outs['cont'], outs['value'], cfg)
  episode_cost = outs['cost'].sum(0) * (episode_length / cfg.horizon)
  if cfg.lagrangian:
    cost_ret = _return(outs['cost'], outs['cont'], outs['cost_value'], cfg)
  else:
    cost_ret = jnp.zeros_like(ret)
  return ret, episode_cost, cost_ret


def plan(model: 'PlanModel', cfg: CCEMConfig, start, mean, reset, key, cost_limit,
         episode_length, multiplier=0.0, sample=False, heads_in_loop=False) -> PlanResult:
  """Plan one action for one environment.

  start: model state of this environment (pytree, no batch dim); mean: [H, A] the
  `PlanResult.mean` of the previous step (anything where `reset`); reset: bool,
  episode start; cost_limit: b; episode_length: L in agent steps; multiplier: the
  PID Lagrange multiplier (OSRP-Lag); sample: act with a sample instead of mu_1;
  heads_in_loop (static): where the heads run (HEADS_AFTER_ROLLOUT_MAX_ROWS; the
  result is the same). All but model/cfg/heads_in_loop may be traced.
  Metrics (of the last iteration): safe_frac, elite_ret / elite_cost /
  elite_cost_ret (means of J_R, J_C', J_C over the final elites, i.e. the plan's
  expected scores), std (mean std of the first action).
  """
  n, n_pi, horizon = cfg.samples, cfg.actor_samples, cfg.horizon
  mean = warm_start(mean, reset)
  std = jnp.full_like(mean, cfg.init_std)
  key_act, key_pi, key_iter = jax.random.split(key, 3)
  open_loop = lambda state, action: action

  if n_pi:
    if model.actor is None:
      raise ValueError('planner mixture > 0 needs the PlanModel to have an actor')
    actor = lambda state, k: model.actor(k, state)
    pi_actions, pi_outs = _imagine(model, _broadcast(start, n_pi), actor,
                                   jax.random.split(key_pi, horizon), cfg, heads_in_loop)
    pi_scores = _score(pi_outs, cfg, episode_length)

  def iteration(carry, k):
    mean, std = carry
    eps = jax.random.normal(k, (n,) + mean.shape, mean.dtype)
    actions = jnp.clip(mean + std * eps, -1, 1)
    _, outs = _imagine(model, _broadcast(start, n), open_loop,
                       jnp.swapaxes(actions, 0, 1), cfg, heads_in_loop)
    ret, episode_cost, cost_ret = _score(outs, cfg, episode_length)
    if n_pi:
      actions = jnp.concatenate([actions, pi_actions], 0)
      ret, episode_cost, cost_ret = (
          jnp.concatenate([x, y]) for x, y in zip((ret, episode_cost, cost_ret), pi_scores))
    objective = ret - multiplier * cost_ret if cfg.lagrangian else ret
    idx, num_safe = select_elites(objective, episode_cost, cost_limit, cfg.elites)
    mean, std = refit(mean, actions[idx], cfg.momentum)
    stats = {'safe_frac': num_safe / (n + n_pi), 'elite_ret': ret[idx].mean(),
             'elite_cost': episode_cost[idx].mean(), 'elite_cost_ret': cost_ret[idx].mean()}
    return (mean, std), stats

  keys = jax.random.split(key_iter, cfg.iterations)
  (mean, std), stats = lax.scan(iteration, (mean, std), keys)
  metrics = {k: v[-1] for k, v in stats.items()}
  metrics['std'] = std[0].mean()
  noisy = jnp.clip(mean[0] + std[0] * jax.random.normal(key_act, mean[0].shape), -1, 1)
  action = jnp.where(sample, noisy, mean[0])
  return PlanResult(action, mean, metrics)


def plan_batch(model: 'PlanModel', cfg: CCEMConfig, starts, means, resets, keys,
               cost_limit, episode_length, multiplier=0.0, sample=False) -> PlanResult:
  """`plan` for B environments at once: starts (pytree [B, ...]), means [B, H, A],
  resets [B], keys [B] are batched; the other arguments are shared. Returns
  action [B, A], mean [B, H, A], metrics {name: [B]}."""
  heads_in_loop = means.shape[0] * cfg.samples > HEADS_AFTER_ROLLOUT_MAX_ROWS
  def one(start, mean, reset, key):
    return plan(model, cfg, start, mean, reset, key, cost_limit, episode_length,
                multiplier, sample, heads_in_loop)
  return jax.vmap(one)(starts, means, resets, keys)


def initial_means(num_envs: int, cfg: CCEMConfig, act_dim: int) -> jax.Array:
  """The planner state before the first step (any value works: reset zeroes it)."""
  return jnp.zeros((num_envs, cfg.horizon, act_dim), jnp.float32)


def make_planner(model: 'PlanModel', cfg: CCEMConfig):
  """`plan_batch` jitted once for a FIXED model (its functions close over their
  parameters as constants): for tests and benchmarks. Call signature:
  (starts, means, resets, keys, cost_limit, episode_length, multiplier, sample)."""
  def fn(starts, means, resets, keys, cost_limit, episode_length, multiplier=0.0,
         sample=False):
    return plan_batch(model, cfg, starts, means, resets, keys, cost_limit,
                      episode_length, multiplier, sample)
  return jax.jit(fn)


class PlanStats:
  """Host-side running means of planner diagnostics (both planners use it).

  `add(metrics, mode)` takes one planning call's metrics ({name: [B] or scalar});
  `pop(mode)` returns {'plan/<name>': mean over every environment and step since
  the last pop of that mode} and starts over ({} when nothing was added). The
  agents pop 'train' in `episode_end`, so the logs get the planner's fraction of
  safe sequences and its elites' scores next to each finished training episode.
  """

  def __init__(self):
    self.sums: dict[str, dict[str, float]] = {}
    self.counts: dict[str, int] = {}

  def add(self, metrics: dict, mode: str) -> None:
    sums = self.sums.setdefault(mode, {})
    n = 1
    for k, v in metrics.items():
      v = np.asarray(v, np.float64)
      n = v.size
      sums[k] = sums.get(k, 0.0) + float(v.sum())
    self.counts[mode] = self.counts.get(mode, 0) + n

  def pop(self, mode: str) -> dict[str, float]:
    sums, n = self.sums.pop(mode, {}), self.counts.pop(mode, 0)
    return {f'plan/{k}': v / n for k, v in sums.items()} if n else {}

  def save(self) -> np.ndarray:
    """The running sums as a uint8 array (checkpoints hold arrays)."""
    text = json.dumps({'sums': self.sums, 'counts': self.counts})
    return np.frombuffer(text.encode(), np.uint8).copy()

  def load(self, saved) -> None:
    data = json.loads(np.asarray(saved, np.uint8).tobytes().decode())
    self.sums, self.counts = data['sums'], data['counts']
