"""Small composable pieces around `CostEnv`s.

- `rescale_action(action, low, high)`: maps the agent's [-1, 1] actions onto a Box's
  bounds (a pure function; the adapters call it just before the simulator).
- `Wrapper`: a CostEnv that forwards everything (attributes included, e.g.
  `get_state`) to the env it wraps.
- `ActionRepeat`: repeats each action, summing reward AND cost, and stops early when
  the episode ends.
- `TimeLimit`: ends an episode by truncation after a number of steps.
"""
from __future__ import annotations

import math

import numpy as np

from safedreamer.envs.base import CostEnv, Step


def rescale_action(action, low, high) -> np.ndarray:
  """Map `action` in [-1, 1] (clipped first) linearly onto [low, high].

  -1 -> low, 0 -> (low + high) / 2, +1 -> high. Returns float64 like `low`.
  """
  low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
  if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
    raise ValueError(f'cannot rescale actions onto unbounded limits low={low}, high={high}')
  action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
  return low + (action + 1.0) * 0.5 * (high - low)


class Wrapper(CostEnv):
  """Forwards the CostEnv interface and any other attribute to `self.env`."""

  def __init__(self, env: CostEnv):
    self.env = env

  @property
  def obs_space(self):
    return self.env.obs_space

  @property
  def act_dim(self):
    return self.env.act_dim

  @property
  def episode_length(self):
    return self.env.episode_length

  def __getattr__(self, name):
    if name == 'env':  # not set yet (e.g. while unpickling): avoid infinite recursion
      raise AttributeError(name)
    return getattr(self.env, name)

  def reset(self, seed: int | None = None) -> Step:
    return self.env.reset(seed)

  def step(self, action: np.ndarray) -> Step:
    return self.env.step(action)

  def close(self) -> None:
    self.env.close()

  def render(self):
    return self.env.render()

  @property
  def unwrapped(self) -> CostEnv:
    env = self.env
    while isinstance(env, Wrapper):
      env = env.env
    return env


class ActionRepeat(Wrapper):
  """Apply each agent action `repeat` times to the wrapped env.

  The returned step is the last inner step with `reward` and `cost` replaced by their
  sums over the inner steps taken. Stops early (fewer repeats) as soon as an inner
  step is the last of its episode. `episode_length` is in agent steps:
  ceil(inner episode length / repeat).
  """

  def __init__(self, env: CostEnv, repeat: int):
    if repeat < 1:
      raise ValueError(f'action repeat must be >= 1, got {repeat}')
    super().__init__(env)
    self.repeat = int(repeat)

  @property
  def episode_length(self) -> int:
    return math.ceil(self.env.episode_length / self.repeat)

  def step(self, action: np.ndarray) -> Step:
    reward = cost = 0.0
    for _ in range(self.repeat):
      step = self.env.step(action)
      reward += float(step['reward'])
      cost += float(step['cost'])
      if step['is_last']:
        break
    step = dict(step)
    step['reward'], step['cost'] = np.float32(reward), np.float32(cost)
    return step


class TimeLimit(Wrapper):
  """End episodes by truncation (is_last, not is_terminal) after `steps` steps."""

  def __init__(self, env: CostEnv, steps: int):
    super().__init__(env)
    self.steps = int(steps)
    self._count = 0

  @property
  def episode_length(self) -> int:
    return min(self.steps, self.env.episode_length)

  def reset(self, seed: int | None = None) -> Step:
    self._count = 0
    return self.env.reset(seed)

  def get_state(self):
    return {'inner': self.env.get_state(), 'count': self._count}

  def set_state(self, state) -> None:
    self.env.set_state(state['inner'])
    self._count = state['count']

  def step(self, action: np.ndarray) -> Step:
    step = self.env.step(action)
    self._count += 1
    if self._count >= self.steps and not step['is_last']:
      step = dict(step, is_last=True)
    return step
