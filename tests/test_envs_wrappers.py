"""Action rescaling, action repeat and time limits, checked by hand on a fake env."""
import numpy as np
import pytest

from safedreamer.envs.base import CostEnv, make_step
from safedreamer.envs.wrappers import ActionRepeat, TimeLimit, Wrapper, rescale_action


class Scripted(CostEnv):
  """Step t (1-based) gives reward t, cost 10*t; the episode lasts `length` steps."""

  obs_space = {'vector': ((1,), np.float32)}
  act_dim = 2

  def __init__(self, length=10, terminal_at=None):
    self.episode_length = length
    self.terminal_at = terminal_at
    self.t = 0
    self.actions = []

  def reset(self, seed=None):
    self.t = 0
    return make_step({'vector': np.zeros(1, np.float32)}, is_first=True)

  def step(self, action):
    self.t += 1
    self.actions.append(np.array(action))
    terminal = self.terminal_at is not None and self.t >= self.terminal_at
    return make_step({'vector': np.full(1, self.t, np.float32)}, reward=self.t, cost=10 * self.t,
                     is_last=self.t >= self.episode_length, is_terminal=terminal)

  def get_state(self):
    return self.t

  def set_state(self, state):
    self.t = state


def test_rescale_action_by_hand():
  low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
  np.testing.assert_allclose(rescale_action([-1, -1], low, high), [-2, 0])
  np.testing.assert_allclose(rescale_action([1, 1], low, high), [2, 10])
  np.testing.assert_allclose(rescale_action([0, 0], low, high), [0, 5])
  np.testing.assert_allclose(rescale_action([0.5, -0.5], low, high), [1, 2.5])
  np.testing.assert_allclose(rescale_action([3, -7], low, high), [2, 0])  # clipped first
  assert rescale_action([0, 0], low, high).dtype == np.float64


def test_rescale_refuses_unbounded():
  with pytest.raises(ValueError, match='unbounded'):
    rescale_action([0.0], [-np.inf], [1.0])


def test_action_repeat_sums_reward_and_cost():
  env = ActionRepeat(Scripted(length=10), 3)
  assert env.reset()['is_first']
  step = env.step(np.array([0.1, 0.2], np.float32))
  assert step['reward'] == 1 + 2 + 3 and step['cost'] == 10 + 20 + 30
  assert step['vector'][0] == 3 and not step['is_last'] and not step['is_first']
  assert len(env.env.actions) == 3 and all(np.allclose(a, [0.1, 0.2]) for a in env.env.actions)
  assert step['reward'].dtype == np.float32 and step['cost'].dtype == np.float32


def test_action_repeat_stops_early_at_episode_end():
  env = ActionRepeat(Scripted(length=10), 4)
  assert env.episode_length == 3  # ceil(10 / 4)
  env.reset()
  env.step(np.zeros(2))
  env.step(np.zeros(2))  # inner steps 1..8
  last = env.step(np.zeros(2))  # inner steps 9, 10 then the episode ends
  assert last['is_last'] and not last['is_terminal']
  assert last['reward'] == 9 + 10 and last['cost'] == 90 + 100
  assert env.env.t == 10


def test_action_repeat_keeps_termination():
  env = ActionRepeat(Scripted(length=10, terminal_at=2), 4)
  env.reset()
  step = env.step(np.zeros(2))
  assert step['is_terminal'] and step['is_last'] and step['reward'] == 3 and env.env.t == 2


def test_wrappers_compose_and_forward_attributes():
  inner = Scripted(length=10)
  env = ActionRepeat(TimeLimit(inner, 5), 2)
  assert env.episode_length == 3 and env.unwrapped is inner and env.act_dim == 2
  env.reset()
  steps = [env.step(np.zeros(2)) for _ in range(3)]
  assert [s['is_last'] for s in steps] == [False, False, True]
  assert not steps[-1]['is_terminal'] and steps[-1]['reward'] == 5  # only inner step 5
  assert isinstance(env, Wrapper) and env.get_state() == {'inner': 5, 'count': 5}


def test_action_repeat_rejects_zero():
  with pytest.raises(ValueError):
    ActionRepeat(Scripted(), 0)
