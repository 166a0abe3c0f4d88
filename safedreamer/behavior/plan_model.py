"""What a planner (CCEM, OSRP) needs from the learned model, as pure functions.

Every function is closed over fixed parameters and usable inside jit. States are
pytrees whose leaves have a leading batch axis N (here {deter [N, D], stoch [N, S]});
actions are [N, A] in [-1, 1].
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

State = Any


class PlanModel(NamedTuple):
  step: Callable[[State, Any], State]   # (state, action [N, A]) -> next state (prior)
  reward: Callable[[State], Any]        # state -> [N] reward-head mean
  cost: Callable[[State], Any]          # state -> [N] cost-head mean
  cont: Callable[[State], Any]          # state -> [N] continue probability
  value: Callable[[State], Any]         # state -> [N] reward-critic mean
  cost_value: Callable[[State], Any]    # state -> [N] cost-critic mean (0 without one)
  actor: Callable[[Any, State], Any]    # (key, state) -> [N, A] sampled action
