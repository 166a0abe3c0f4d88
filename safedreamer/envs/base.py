"""The one interface every cost-carrying environment implements.

An environment speaks in *steps*: flat dicts of numpy values. `reset()` and
`step(action)` both return a step with the observation keys plus

  reward, cost     float32   received on arriving at this observation (0 on reset)
  is_first         bool      first step of an episode
  is_last          bool      last step of an episode (termination or time limit)
  is_terminal      bool      the episode ended by termination (not a time limit)

Actions are float32 vectors in [-1, 1]. Observation keys that start with "log_" are
logged but not fed to the agent. Knows nothing of JAX or of agents.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

Step = dict[str, Any]
STEP_KEYS = ('reward', 'cost', 'is_first', 'is_last', 'is_terminal')


class CostEnv(abc.ABC):
  """A cost-carrying environment with dict observations and actions in [-1, 1]."""

  #: {key: (shape, dtype)} of the observation entries of a step.
  obs_space: dict[str, tuple[tuple[int, ...], np.dtype]]
  #: number of action dimensions.
  act_dim: int
  #: episode length in agent steps (after action repeat), used by planners.
  episode_length: int

  @abc.abstractmethod
  def reset(self, seed: int | None = None) -> Step:
    """Start an episode; `seed` makes it reproducible."""

  @abc.abstractmethod
  def step(self, action: np.ndarray) -> Step:
    """Apply `action` (shape [act_dim], values in [-1, 1])."""

  def close(self) -> None:
    pass

  def render(self) -> np.ndarray | None:
    """An RGB frame for videos (not fed to the agent), if the env can draw one."""
    return None


def make_step(obs: dict[str, np.ndarray], reward=0.0, cost=0.0, is_first=False,
              is_last=False, is_terminal=False) -> Step:
  step = {k: np.asarray(v) for k, v in obs.items()}
  step.update(reward=np.float32(reward), cost=np.float32(cost), is_first=bool(is_first),
              is_last=bool(is_last or is_terminal), is_terminal=bool(is_terminal))
  return step
