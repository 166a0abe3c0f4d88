"""Safety-Gymnasium: the 3.11 import, shapes, seeding, truncation, state snapshots."""
import dataclasses
import sys

import numpy as np
import pytest

from safedreamer.envs.safety_gym import SafetyGymEnv


def test_import_works_and_restores_dataclass():
  from safedreamer.envs import safety_gym_compat
  original = dataclasses.dataclass
  sg = safety_gym_compat.import_safety_gymnasium()
  assert dataclasses.dataclass is original
  assert hasattr(sg, 'make') and 'safety_gymnasium' in sys.modules
  assert safety_gym_compat.import_safety_gymnasium() is sg  # idempotent
  # Each instance gets its own copy of an array default.
  from safety_gymnasium.assets.geoms import Hazards
  a, b = Hazards(), Hazards()
  assert isinstance(a.color, np.ndarray) and a.color is not b.color
  np.testing.assert_array_equal(a.color, b.color)


def test_tolerant_dataclass_context_by_hand():
  from safedreamer.envs.safety_gym_compat import tolerant_dataclasses
  original = dataclasses.dataclass
  with tolerant_dataclasses():
    assert dataclasses.dataclass is not original

    @dataclasses.dataclass
    class Thing:
      color: np.ndarray = np.array([1.0, 2.0])
      size: float = 0.5

    @dataclasses.dataclass(frozen=False)
    class Other:
      rgba: np.ndarray = np.zeros(4)

  assert dataclasses.dataclass is original
  t1, t2 = Thing(), Thing()
  t1.color[0] = 9
  assert t2.color[0] == 1.0 and Thing(size=1).size == 1 and Other().rgba.shape == (4,)
  with pytest.raises(ValueError, match='mutable default'):
    @dataclasses.dataclass
    class Bad:  # pylint: disable=unused-variable
      color: np.ndarray = np.zeros(3)


@pytest.mark.parametrize('task_id, size', [
    ('SafetyPointGoal1-v0', 60), ('SafetyPointGoal2-v0', 60), ('SafetyPointPush1-v0', 76),
    ('SafetyPointButton1-v0', 76), ('SafetyCarGoal1-v0', 72)])
def test_vector_obs_shapes(task_id, size):
  env = SafetyGymEnv(task_id, seed=0)
  assert env.obs_space == {'vector': ((size,), np.float32)} and env.act_dim == 2
  first = env.reset()
  assert first['vector'].shape == (size,) and first['vector'].dtype == np.float32
  assert first['is_first'] and first['reward'] == 0 and first['cost'] == 0
  step = env.step(np.zeros(2, np.float32))
  assert step['vector'].shape == (size,) and not step['is_first']
  assert step['reward'].dtype == np.float32 and step['cost'].dtype == np.float32
  env.close()


@pytest.fixture(scope='module')
def goal1():
  env = SafetyGymEnv('SafetyPointGoal1-v0', seed=0)
  yield env
  env.close()


def test_seeded_reset_reproducible(goal1):
  a = goal1.reset(seed=7)['vector']
  goal1.step(np.ones(2))
  b = goal1.reset(seed=7)['vector']
  c = goal1.reset(seed=8)['vector']
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # A seed given at construction makes the unseeded resets reproducible.
  x = SafetyGymEnv('SafetyPointGoal1-v0', seed=3)
  y = SafetyGymEnv('SafetyPointGoal1-v0', seed=3)
  np.testing.assert_array_equal(x.reset()['vector'], y.reset()['vector'])
  np.testing.assert_array_equal(x.reset()['vector'], y.reset()['vector'])


def test_truncation_is_last_not_terminal():
  env = SafetyGymEnv('SafetyPointGoal1-v0', seed=0, episode_length=20)
  assert env.episode_length == 20
  env.reset()
  steps = [env.step(np.zeros(2)) for _ in range(20)]
  assert [s['is_last'] for s in steps] == [False] * 19 + [True]
  assert not any(s['is_terminal'] for s in steps)
  env.close()


def test_episode_length_in_agent_steps():
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env
  config = Config()
  config.env.action_repeat = 4
  env = make_env('safetygym/SafetyPointGoal1-v0', config)
  assert env.episode_length == 250
  env.reset()
  count, step = 0, {'is_last': False}
  while not step['is_last']:
    step = env.step(np.zeros(2))
    count += 1
  assert count == 250 and not step['is_terminal']
  env.close()


def seek_goal(env):
  """Drive the point robot at the goal, ignoring hazards (hits some)."""
  task = env._task  # pylint: disable=protected-access
  x, y = task._ego_xy(task.goal.pos[:2])  # pylint: disable=protected-access
  angle = np.arctan2(y, x)
  return np.array([1.0 if abs(angle) < 0.5 else 0.2, np.clip(2 * angle, -1, 1)])


def rollout(env, actions):
  return [env.step(a) for a in actions]


def same(first, second):
  return all(np.array_equal(a['vector'], b['vector']) and a['reward'] == b['reward']
             and a['cost'] == b['cost'] and a['is_last'] == b['is_last']
             for a, b in zip(first, second))


@pytest.mark.parametrize('task_id', ['SafetyPointGoal1-v0', 'SafetyPointButton1-v0'])
def test_set_state_replays_identically(task_id):
  env = SafetyGymEnv(task_id, seed=1)
  env.reset(seed=3)
  for _ in range(20):
    env.step(seek_goal(env))
  state = env.get_state()
  # The window must contain goal arrivals (resampling) and costs to mean something.
  # How soon they come depends on the CPU's floating point (Zen 4 and Zen 5 differ),
  # so the window grows until it holds them (episodes are 1000 steps).
  enough = lambda steps: (sum(s['reward'] > 0.5 for s in steps) >= 2
                          and sum(s['cost'] for s in steps) > 0)
  actions, first = [], []
  while len(first) < 400 or (len(first) < 900 and not enough(first)):
    actions.append(seek_goal(env))
    first.append(env.step(actions[-1]))
  assert enough(first)
  env.set_state(state)
  assert same(first, rollout(env, actions))
  env.set_state(state)  # the state is not consumed
  assert same(first, rollout(env, actions))
  env.reset()  # a new world; the snapshot rebuilds the old one
  env.set_state(state)
  assert same(first, rollout(env, actions))
  env.close()


def test_quiet_start():
  """No third-party notice on stderr (gymnasium-robotics' Adroit notice is printed on
  import from farama_notifications, also when gym.make loads the plugin lazily)."""
  import subprocess
  import sys
  code = ('import safedreamer.envs.safety_gym_compat as c; c.import_safety_gymnasium(); '
          'import gymnasium, gymnasium_robotics; gymnasium.make("CartPole-v1")')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       check=True, timeout=120)
  assert out.stderr == '' and out.stdout == '', out.stderr
  loud = subprocess.run([sys.executable, '-c', 'import gymnasium_robotics'],
                        capture_output=True, text=True, check=True, timeout=120)
  assert 'Adroit' in loud.stderr  # the notice this guards against still exists upstream
