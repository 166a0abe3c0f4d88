"""MPC:sim: the CCEM rule of OSRP scoring sequences in the TRUE simulator (SPEC 2.7).

No learned model and no critics: each candidate action sequence is rolled from the
current simulator state by `sim.step`, scored by its undiscounted reward sum J_R
and its episode-scaled cost J_C' = (sum of costs) * L / H, and the simulator state
is restored afterwards (also on errors), so the real episode is untouched. The
elite selection, refit and warm start are ccem.py's helpers, shared.

The simulator contract (the envs' `get_state()` / `set_state(state)`): a `CostEnv`
whose `get_state()` returns an opaque snapshot of everything `step` depends on
(physics, time-limit counter, RNG, ...) and whose `set_state(snapshot)` restores it.
`sim` may be the real environment itself (planned in place and restored) or a
separate copy kept in sync by passing `state=real_env.get_state()`.

Defaults follow the paper: 150 samples, horizon 15, 6 iterations: one action costs
samples * horizon * iterations agent steps (13,500 with the defaults). Stepping the
env in Python costs ~2 ms per agent step, so where the env allows it a `scorer`
(envs/sim_rollout.py: MuJoCo's threaded batched rollout, rewards and costs computed
from the rolled states) scores all samples of an iteration at once with the same
results; envs it does not cover are stepped as before.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from safedreamer.behavior.ccem import refit, select_elites, warm_start


class SimEnv(Protocol):
  act_dim: int
  episode_length: int
  def step(self, action: np.ndarray) -> dict: ...
  def get_state(self) -> Any: ...
  def set_state(self, state: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class SimPlannerConfig:
  horizon: int = 15
  samples: int = 150
  elites: int = 15
  iterations: int = 6
  init_std: float = 1.0
  momentum: float = 0.1

  @classmethod
  def from_config(cls, config: Any) -> 'SimPlannerConfig':
    """From a full schema `Config` (its planner section; mixture is unused)."""
    p = config.planner
    return cls(horizon=p.horizon, samples=p.samples, elites=p.elites,
               iterations=p.iterations, init_std=p.init_std, momentum=p.momentum)


def rollout(sim: SimEnv, state: Any, actions: np.ndarray) -> tuple[float, float]:
  """(reward sum, cost sum) of one action sequence [H, A] from `state`; stops at
  the end of the episode (is_last)."""
  sim.set_state(state)
  ret = cost = 0.0
  for action in actions:
    step = sim.step(action)
    ret += float(step['reward'])
    cost += float(step['cost'])
    if step['is_last']:
      break
  return ret, cost


def score_sequences(sim: SimEnv, state: Any, actions: np.ndarray, scorer=None) -> np.ndarray:
  """[N, 2] float32 (reward sum, cost sum) of action sequences [N, H, A] from `state`:
  by `scorer.score` where it offers one (see the module docstring), else by `rollout`."""
  if scorer is None:
    return np.array([rollout(sim, state, seq) for seq in actions], np.float32)
  return np.stack(scorer.score(state, actions), axis=1).astype(np.float32)


def plan_in_sim(sim: SimEnv, mean: np.ndarray, reset: bool, rng: np.random.Generator,
                cfg: SimPlannerConfig, cost_limit: float, episode_length: int,
                sample: bool = False, state: Any = None, scorer=None):
  """One CCEM planning step in the simulator.

  mean: [H, A] the mean returned at the previous step (ignored when `reset`);
  state: the snapshot to plan from (default: sim.get_state()). The simulator is
  left in `state` afterwards. scorer: scores all sequences at once (see
  `score_sequences`). Returns (action [A], new mean [H, A], metrics).
  """
  state = sim.get_state() if state is None else state
  horizon, scale = cfg.horizon, episode_length / cfg.horizon
  mean = np.asarray(warm_start(np.asarray(mean, np.float32), np.asarray(reset)))
  std = np.full_like(mean, cfg.init_std)
  try:
    for _ in range(cfg.iterations):
      eps = rng.standard_normal((cfg.samples,) + mean.shape).astype(np.float32)
      actions = np.clip(mean + std * eps, -1, 1)
      scores = score_sequences(sim, state, actions, scorer)
      ret, cost = scores[:, 0], scores[:, 1] * scale
      idx, num_safe = select_elites(ret, cost, cost_limit, cfg.elites)
      idx = np.asarray(idx)
      mean, std = (np.asarray(x) for x in refit(mean, actions[idx], cfg.momentum))
  finally:
    sim.set_state(state)
  action = mean[0]
  if sample:
    action = np.clip(action + std[0] * rng.standard_normal(action.shape), -1, 1)
  metrics = {'safe_frac': float(num_safe) / cfg.samples, 'elite_ret': float(ret[idx].mean()),
             'elite_cost': float(cost[idx].mean()), 'std': float(std[0].mean())}
  return action.astype(np.float32), mean, metrics


class SimPlanner:
  """Stateful convenience over `plan_in_sim` for one environment: keeps the mean
  between steps. Call `act(is_first)` at every step of the real episode."""

  def __init__(self, sim: SimEnv, cost_limit: float, cfg: SimPlannerConfig = SimPlannerConfig(),
               seed: int = 0, episode_length: int | None = None):
    self.sim, self.cfg, self.cost_limit = sim, cfg, cost_limit
    self.episode_length = episode_length or sim.episode_length
    self.rng = np.random.default_rng(seed)
    self.mean = np.zeros((cfg.horizon, sim.act_dim), np.float32)

  def act(self, is_first: bool, sample: bool = False, state: Any = None):
    action, self.mean, metrics = plan_in_sim(
        self.sim, self.mean, is_first, self.rng, self.cfg, self.cost_limit,
        self.episode_length, sample, state)
    return action, metrics

  def save(self) -> dict:
    return {'mean': self.mean.copy(), 'rng': self.rng.bit_generator.state}

  def load(self, saved: dict) -> None:
    self.mean = np.asarray(saved['mean'], np.float32)
    self.rng.bit_generator.state = saved['rng']
