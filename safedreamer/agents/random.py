"""Uniformly random actions in [-1, 1]; used for prefilling replay and as a baseline."""
from __future__ import annotations

import numpy as np

from safedreamer.agents.base import Agent, rng_from_array, rng_to_array


class RandomAgent(Agent):

  def __init__(self, act_dim: int, seed: int = 0):
    self.act_dim = act_dim
    self.rng = np.random.default_rng(seed)

  def init_policy_state(self, num_envs):
    return None

  def policy(self, obs, state, mode):
    n = len(obs['is_first'])
    return self.rng.uniform(-1, 1, (n, self.act_dim)).astype(np.float32), state

  def train(self, batch):
    return {}

  def save(self):
    return {'rng': rng_to_array(self.rng)}

  def load(self, state):
    rng_from_array(self.rng, state['rng'])
