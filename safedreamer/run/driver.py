"""The driver: steps a batch of environments with an agent's batched policy.

It owns the current observation of every environment, the agent's recurrent state
and the per-episode sums, and hands each transition and each finished episode to
callbacks (replay, logging, the PID Lagrangian, ...). An environment that crashed
is restarted by the EnvBatch; the driver drops its unfinished episode and counts it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from safedreamer.agents.base import Agent


class Driver:

  def __init__(self, envs, action_repeat: int):
    self.envs = envs
    self.num_envs = len(envs)
    self.action_repeat = action_repeat
    self.on_step: list[Callable[[dict, int], None]] = []      # (step, env_index)
    self.on_episode: list[Callable[[dict, int], None]] = []   # (episode stats, env_index)
    self.obs: dict | None = None
    self.policy_state = None
    self._crashes = np.zeros(self.num_envs, np.int64)
    self.dropped_episodes = 0
    self.sim_steps = 0  # simulator steps taken, counted before callbacks see the step

  def reset(self, agent: Agent, seeds: list[int]) -> None:
    """Start fresh episodes in every environment (on start and on resume)."""
    agent.attach(self.envs)
    self.obs = self.envs.reset(seeds)
    self.policy_state = agent.init_policy_state(self.num_envs)
    self._sums = {k: np.zeros(self.num_envs) for k in ('EpRet', 'EpCost', 'EpLen')}
    self._crashes = np.array(self.envs.crashed, np.int64)
    zeros = np.zeros((self.num_envs, self.envs.act_dim), np.float32)
    self._emit(self.obs, zeros)

  def step(self, agent: Agent, mode: str) -> int:
    """One agent step in every environment; returns simulator steps taken."""
    action, self.policy_state = agent.policy(self.obs, self.policy_state, mode)
    action = np.asarray(action, np.float32)
    was_last = np.asarray(self.obs['is_last'])
    self.obs = self.envs.step(action)
    taken = int((~was_last).sum()) * self.action_repeat
    self.sim_steps += taken
    crashes = np.array(self.envs.crashed, np.int64)
    crashed = crashes > self._crashes
    self._crashes = crashes
    # A step that starts an episode was not caused by the action (auto-reset).
    action = np.where(np.asarray(self.obs['is_first'])[:, None], 0.0, action).astype(np.float32)
    self._emit(self.obs, action, crashed)
    return taken

  def _emit(self, obs: dict, action: np.ndarray, crashed=None) -> None:
    for i in range(self.num_envs):
      step = {k: v[i] for k, v in obs.items()}
      step['action'] = action[i]
      if crashed is not None and crashed[i]:
        self.dropped_episodes += 1
        for sums in self._sums.values():
          sums[i] = 0.0
      if step['is_first']:
        for sums in self._sums.values():
          sums[i] = 0.0
      else:
        self._sums['EpRet'][i] += float(step['reward'])
        self._sums['EpCost'][i] += float(step['cost'])
        self._sums['EpLen'][i] += self.action_repeat
      for fn in self.on_step:
        fn(step, i)
      if step['is_last']:
        episode = {k: float(v[i]) for k, v in self._sums.items()}
        for fn in self.on_episode:
          fn(episode, i)


def run_episodes(envs, agent: Agent, episodes: int, action_repeat: int, mode: str = 'eval',
                 seeds: list[int] | None = None, on_step=None) -> list[dict]:
  """Play whole episodes without touching replay or updates (evaluation)."""
  driver = Driver(envs, action_repeat)
  done: list[dict] = []
  driver.on_episode.append(lambda ep, i: done.append(ep))
  if on_step is not None:
    driver.on_step.append(on_step)
  driver.reset(agent, seeds or [None] * len(envs))
  while len(done) < episodes:
    driver.step(agent, mode)
  return done[:episodes]
