"""Agents and the one place that maps `config.method` to an agent class."""
from __future__ import annotations

from safedreamer.agents.base import Agent


class UnknownMethodError(ValueError):
  pass


def make_agent(config, obs_space: dict, act_dim: int, env_factory=None) -> Agent:
  """The agent for `config.method`. `env_factory` builds simulator copies (MPC:sim)."""
  method = config.method
  if method == 'random':
    from safedreamer.agents.random import RandomAgent
    return RandomAgent(act_dim, seed=config.seed)
  if method in ('bsrp_lag', 'dreamerv3'):
    from safedreamer.agents.dreamer import DreamerAgent
    return DreamerAgent(config, obs_space, act_dim)
  if method in ('osrp', 'osrp_lag'):
    from safedreamer.agents.planner import PlannerAgent
    return PlannerAgent(config, obs_space, act_dim)
  if method == 'mpc_sim':
    from safedreamer.agents.mpc_sim import MPCSimAgent
    return MPCSimAgent(config, env_factory, act_dim)
  raise UnknownMethodError(f"unknown method '{method}'")
