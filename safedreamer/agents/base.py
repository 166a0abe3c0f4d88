"""The small interface through which the driver talks to an agent.

The world-model agent (BSRP-Lag, DreamerV3), the planners (OSRP, OSRP-Lag, MPC:sim)
and the random agent all implement it. Arrays crossing it are numpy.

Replay convention (what `train` receives): a batch is a dict of [B, T, ...] arrays
with the observation keys, `action` (the action that LED TO this step's
observation; zeros where is_first), `reward`, `cost`, `is_first`, `is_last`,
`is_terminal`. Windows may cross episode boundaries; is_first marks where the
recurrent state must be reset.
"""
from __future__ import annotations

import abc
import json
from typing import Any

import numpy as np


class Agent(abc.ABC):

  def attach(self, envs) -> None:
    """Called with the EnvBatch the agent will act in, before its first policy step
    (planners read `envs.episode_length` (agent steps) here; MPC:sim uses the
    environments' `get_state` through `envs.call`)."""

  @abc.abstractmethod
  def init_policy_state(self, num_envs: int) -> Any:
    """Recurrent state for `num_envs` environments (any pytree)."""

  @abc.abstractmethod
  def policy(self, obs: dict[str, np.ndarray], state: Any, mode: str) -> tuple[np.ndarray, Any]:
    """One action per environment. `obs` holds [N, ...] arrays of the current step
    (observation keys, is_first, ...); rows with is_first must start from a fresh
    state. `mode` is 'train' (explore) or 'eval' (no exploration noise)."""

  @abc.abstractmethod
  def train(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """One update on a replay batch; returns scalar metrics to log."""

  def episode_end(self, ep_return: float, ep_cost: float, mode: str) -> dict[str, float]:
    """Called once per finished episode; OSRP-Lag moves its PID multiplier here on
    'train' episodes only. Returns scalar metrics to log."""
    return {}

  @abc.abstractmethod
  def save(self) -> dict[str, Any]:
    """Everything needed to continue: a pytree of numpy arrays / python scalars."""

  @abc.abstractmethod
  def load(self, state: dict[str, Any]) -> None:
    """Restore what `save` returned."""

  def report(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Optional open-loop predictions for reports (videos, plots)."""
    return {}


def rng_to_array(rng: np.random.Generator) -> np.ndarray:
  """A numpy Generator's state as a uint8 array (checkpoints store arrays)."""
  return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), np.uint8).copy()


def rng_from_array(rng: np.random.Generator, array: np.ndarray) -> None:
  rng.bit_generator.state = json.loads(np.asarray(array, np.uint8).tobytes().decode())
