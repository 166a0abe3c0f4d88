"""carracing/CarRacing-v2: image observation and the wheel-skid cost."""
import numpy as np
import pytest

pytest.importorskip('Box2D')
pytest.importorskip('pygame')

from safedreamer.envs.carracing import CarRacingSkid  # pylint: disable=wrong-import-position


@pytest.fixture(scope='module')
def env():
  env = CarRacingSkid(image_size=64, seed=0)
  yield env
  env.close()


def to_agent(steer, gas, brake):
  """Native (steer in [-1, 1], gas and brake in [0, 1]) -> the agent's [-1, 1]^3."""
  return np.array([steer, 2 * gas - 1, 2 * brake - 1], np.float32)


def drive(env, plan):
  env.reset(seed=0)
  costs = []
  for steps, action in plan:
    for _ in range(steps):
      step = env.step(to_agent(*action))
      costs.append(float(step['cost']))
  return np.array(costs), step


def test_spaces(env):  # pylint: disable=redefined-outer-name
  assert env.obs_space == {'image': ((64, 64, 3), np.uint8)} and env.act_dim == 3
  assert env.episode_length == 1000
  first = env.reset(seed=0)
  assert first['image'].shape == (64, 64, 3) and first['image'].dtype == np.uint8
  assert first['is_first'] and first['cost'] == 0


def test_gentle_driving_costs_nothing(env):  # pylint: disable=redefined-outer-name
  costs, step = drive(env, [(120, (0.0, 0.1, 0.0))])
  assert costs.sum() == 0
  assert step['image'].std() > 5 and not step['is_last']


def test_hard_steering_at_speed_skids(env):  # pylint: disable=redefined-outer-name
  costs, _ = drive(env, [(80, (0.0, 0.2, 0.0)), (30, (1.0, 0.5, 0.0))])
  assert costs[:80].sum() == 0  # building up speed gently: no skid
  assert costs[80:].sum() >= 5  # full lock at ~50 km/h: the tyres slide
  assert set(np.unique(costs)) <= {0.0, 1.0}


def test_locked_wheels_skid(env):  # pylint: disable=redefined-outer-name
  costs, _ = drive(env, [(80, (0.0, 0.2, 0.0)), (10, (0.0, 0.0, 1.0))])
  assert costs[80:].sum() >= 1


def test_through_make_env():
  from safedreamer.config.schema import Config
  from safedreamer.envs import make_env
  config = Config()
  config.env.action_repeat = 2
  env = make_env('carracing/CarRacing-v2', config)
  assert env.episode_length == 500
  env.reset()
  assert env.step(np.zeros(3, np.float32))['image'].shape == (64, 64, 3)
  env.close()
