"""MPC:sim: the CCEM planner scoring action sequences in the TRUE simulator (SPEC 2.7).

Nothing is learned (`train` is a no-op). At every agent step, for each environment i
of the attached EnvBatch:

  snapshot = envs.call(i, 'get_state')          the real env's current state
  plan_in_sim(copy_i, ..., state=snapshot)      behavior/mpc_sim.py: every candidate
                                                sequence is rolled in copy_i from the
                                                snapshot; copy_i is restored after

copy_i is a private environment built once with `env_factory` (the task's own
factory, action repeat included) and never reset, so the real environment's state is
never touched: planning only reads a snapshot of it. This works the same whether the
EnvBatch runs its environments in this process or in subprocesses.

Scoring: where the copy is a Safety-Gymnasium task that envs/sim_rollout.py covers
(SafetyPointGoal1 and other hazard-only navigation tasks), all samples of an
iteration are rolled at once in MuJoCo's threaded batched rollout, with the same
returns and costs as stepping the copy; elsewhere the copy is stepped per sample.

Why a copy and not the real env restored in place: in-place planning would mutate
the real env through 13,500 remote calls per action and rely on every wrapper's
state being in the snapshot. The price of the copy is Safety-Gymnasium's world
rebuild: its `set_state` rebuilds the MuJoCo world when a snapshot comes from
another build of the world, i.e. once per real episode per environment. Measured on
SafetyPointGoal1 (action repeat 4, loaded 2-core machine): rebuild 1.2 s,
set_state otherwise 0.2 ms, get_state 0.1 ms, one agent step 1.9 ms, so one action
with 150 x 15 x 6 costs ~26 s of simulation and the rebuild is noise.

World identity: Safety-Gymnasium snapshots carry the id of the real env's world
build (a counter per env instance), so copy_i must only ever see snapshots of env i
of one EnvBatch: copies are kept per (EnvBatch, index) and rebuilt when env i was
restarted after a crash (its counter starts over).

Rows whose observation is the last of its episode are not planned (EnvBatch ignores
their action and resets). Sampling of the first action follows planner.sample_train
/ sample_eval. Diagnostics (plan/safe_frac, plan/elite_ret, plan/elite_cost,
plan/std) are returned by `episode_end` for training episodes, as in PlannerAgent.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Callable

import numpy as np

from safedreamer.agents.base import Agent, rng_from_array, rng_to_array
from safedreamer.behavior import mpc_sim
from safedreamer.behavior.ccem import PlanStats
from safedreamer.envs.sim_rollout import BatchedScorer


class MPCSimAgent(Agent):
  """Plans every action in copies of the true simulator ('mpc_sim')."""

  def __init__(self, config, env_factory: Callable[[], Any], act_dim: int):
    if env_factory is None:
      raise ValueError('MPC:sim needs env_factory (simulator copies to plan in)')
    self.config, self.act_dim, self.factory = config, act_dim, env_factory
    self.cfg = mpc_sim.SimPlannerConfig.from_config(config)
    self.rng = np.random.default_rng(config.seed)
    self.episode_length = math.ceil(config.env.episode_length / config.env.action_repeat)
    self.stats = PlanStats()
    self.envs = None
    self.batched = True   # score with envs/sim_rollout.py where it covers the task
    # EnvBatch -> {index: (crash count when built, simulator copy, batched scorer or None)}
    self._copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

  def attach(self, envs) -> None:
    self.envs = envs
    self.episode_length = int(envs.episode_length)

  def _copy(self, i: int):
    """(simulator copy, batched scorer or None) that mirror env i of the attached
    EnvBatch."""
    copies = self._copies.setdefault(self.envs, {})
    crashes = int(np.asarray(getattr(self.envs, 'crashed', np.zeros(i + 1)))[i])
    if i not in copies or copies[i][0] != crashes:
      if i in copies:
        self._close(copies[i])
      sim = self.factory()
      copies[i] = (crashes, sim, BatchedScorer.for_env(sim) if self.batched else None)
    return copies[i][1], copies[i][2]

  def init_policy_state(self, num_envs: int) -> Any:
    return {'mean': np.zeros((num_envs, self.cfg.horizon, self.act_dim), np.float32)}

  def policy(self, obs, state, mode):
    if mode not in ('train', 'eval'):
      raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
    if self.envs is None:
      raise RuntimeError('MPC:sim plans from the real environments: call attach(envs) first')
    p = self.config.planner
    sample = p.sample_train if mode == 'train' else p.sample_eval
    is_first, is_last = np.asarray(obs['is_first'], bool), np.asarray(obs['is_last'], bool)
    num = len(is_first)
    actions = np.zeros((num, self.act_dim), np.float32)
    means = np.array(state['mean'], np.float32)
    for i in range(num):
      if is_last[i]:
        continue
      snapshot = self.envs.call(i, 'get_state')
      sim, scorer = self._copy(i)
      actions[i], means[i], metrics = mpc_sim.plan_in_sim(
          sim, means[i], bool(is_first[i]), self.rng, self.cfg,
          self.config.cost_limit, self.episode_length, sample, state=snapshot, scorer=scorer)
      self.stats.add(metrics, mode)
    return actions, {'mean': means}

  def train(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
    return {}

  def episode_end(self, ep_return: float, ep_cost: float, mode: str) -> dict[str, float]:
    return self.stats.pop('train') if mode == 'train' else {}

  def save(self) -> dict[str, Any]:
    return {'rng': rng_to_array(self.rng), 'stats': self.stats.save()}

  def load(self, state: dict[str, Any]) -> None:
    rng_from_array(self.rng, state['rng'])
    self.stats.load(state['stats'])

  def close(self) -> None:
    """Close the simulator copies."""
    for copies in list(self._copies.values()):
      for entry in copies.values():
        self._close(entry)
    self._copies.clear()

  @staticmethod
  def _close(entry) -> None:
    _, sim, scorer = entry
    if scorer is not None:
      scorer.close()
    sim.close()
