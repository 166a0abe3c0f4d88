"""Coordinate observations (SPEC 2.6) and cost from coordinates, on real env states."""
import numpy as np
import pytest

from safedreamer.envs import coords
from safedreamer.envs.safety_gym import SafetyGymEnv
from safedreamer.envs.wrappers import rescale_action

COST_KEYS = {'hazards': 'cost_hazards', 'vases': 'cost_vases_contact',
             'gremlins': 'cost_gremlins', 'buttons': 'cost_buttons', 'pillars': 'cost_pillars'}


def test_point_goal1_layout_is_29_numbers():
  env = SafetyGymEnv('SafetyPointGoal1-v0', obs='coords', seed=0)
  layout = env.coords_layout
  assert {k: (v.start, v.stop) for k, v in layout.items()} == {
      'velocimeter': (0, 2), 'accelerometer': (2, 3), 'gyro': (3, 4), 'magnetometer': (4, 7),
      'goal': (7, 9), 'hazards': (9, 25), 'heading': (25, 27), 'position': (27, 29)}
  assert env.obs_space == {'vector': ((29,), np.float32)}
  step = env.reset()
  assert step['vector'].shape == (29,) and step['vector'].dtype == np.float32
  env.close()


@pytest.mark.parametrize('task_id, size, types', [
    ('SafetyPointGoal2-v0', 53, {'hazards', 'vases'}),
    ('SafetyPointButton1-v0', 37, {'hazards', 'gremlins', 'buttons'}),
    ('SafetyPointPush1-v0', 19, {'push_box', 'hazards'}),
    ('SafetyCarGoal1-v0', 41, {'hazards', 'robot'}),
])
def test_layouts_of_other_tasks(task_id, size, types):
  layout = coords.coords_layout(task_id)
  assert coords.layout_size(layout) == size
  extra = set(layout) - {'velocimeter', 'accelerometer', 'gyro', 'magnetometer', 'goal',
                         'heading', 'position'}
  assert extra == types


def test_values_match_the_simulator():
  env = SafetyGymEnv('SafetyPointGoal1-v0', obs='coords', seed=0)
  layout = env.coords_layout
  env.reset(seed=2)
  for _ in range(30):
    step = env.step(np.array([0.8, 0.4]))
  task, vec = env._task, step['vector']  # pylint: disable=protected-access
  np.testing.assert_allclose(vec[layout['goal']], task._ego_xy(task.goal.pos[:2]), atol=1e-5)  # pylint: disable=protected-access
  hazards = vec[layout['hazards']].reshape(-1, 2)
  for i, pos in enumerate(task.hazards.pos):
    np.testing.assert_allclose(hazards[i], task._ego_xy(pos[:2]), atol=1e-5)  # pylint: disable=protected-access
  np.testing.assert_allclose(vec[layout['position']], task.agent.pos[:2], atol=1e-5)
  yaw = np.arctan2(task.agent.mat[1, 0], task.agent.mat[0, 0])
  np.testing.assert_allclose(vec[layout['heading']], [np.cos(yaw), np.sin(yaw)], atol=1e-5)
  np.testing.assert_allclose(vec[layout['velocimeter']], task.agent.get_sensor('velocimeter')[:2],
                             atol=1e-5)
  env.close()


def test_cost_function_by_hand():
  layout = {'goal': slice(0, 2), 'hazards': slice(2, 6), 'buttons': slice(6, 10)}
  obs = np.zeros((3, 10), np.float32)
  obs[0, 2:6] = [0.1, 0.1, 2, 2]  # inside the first hazard
  obs[1, 2:6] = [0.3, 0.0, 0.0, -0.24]  # outside (0.3), inside the 0.25 margin (0.24)
  obs[2, 2:6] = [1, 1, 1, 1]
  obs[:, 6:10] = 5.0  # buttons far away...
  obs[2, 6:8] = [0.245, 0.0]  # ... except one straight ahead, touching the nose box
  obs[2, 0:2] = [0.0, 0.19]  # the goal button (0, 0.19) is touched but costs nothing
  obs[2, 8:10] = [0.0, 0.19]
  np.testing.assert_array_equal(coords.cost_from_coords(obs, layout), [1, 1, 1])
  parts = coords.cost_by_type(obs, layout, sizes={'hazards': 0.2})
  np.testing.assert_array_equal(parts['hazards'], [1, 0, 0])
  np.testing.assert_array_equal(parts['buttons'], [0, 0, 1])
  side = obs.copy()
  side[2, 6:8] = [0.0, 0.21]  # beside the sphere (radius 0.1): 0.01 away from a 0.1 button
  assert coords.cost_by_type(side, layout)['buttons'][2] == 0


def test_cost_function_under_jax_jit():
  jax = pytest.importorskip('jax')
  layout = coords.coords_layout('SafetyPointButton1-v0')
  obs = np.random.default_rng(0).uniform(-0.4, 0.4, (64, coords.layout_size(layout)))
  obs = obs.astype(np.float32)
  expected = coords.cost_from_coords(obs, layout)
  fn = jax.jit(lambda o: coords.cost_from_coords(o, layout, xp=jax.numpy))
  np.testing.assert_allclose(np.asarray(fn(obs)), expected)
  assert expected.max() > 0


def seek_goal(env, rng, noise):
  task = env._task  # pylint: disable=protected-access
  x, y = task._ego_xy(task.goal.pos[:2])  # pylint: disable=protected-access
  angle = np.arctan2(y, x)
  action = np.array([1.0 if abs(angle) < 0.5 else 0.2, np.clip(2 * angle, -1, 1)])
  return np.clip(action + rng.normal(0, noise, 2), -1, 1)


def agreement(task_id, steps, seed=1):
  """{type: [[true0 est0, true0 est1], [true1 est0, true1 est1]]} over a rollout."""
  env = SafetyGymEnv(task_id, obs='coords', seed=0)
  layout, task = env.coords_layout, env._task  # pylint: disable=protected-access
  params = env.coords_params()
  env.reset(seed=seed)
  rng = np.random.default_rng(seed)
  table = {}
  for i in range(steps):
    timer = getattr(getattr(task, 'buttons', None), 'timer', 0)
    action = rescale_action(seek_goal(env, rng, 0.5 if (i // 300) % 2 else 1.5),
                            env._low, env._high)  # pylint: disable=protected-access
    *_, terminated, truncated, info = env._env.step(action)  # pylint: disable=protected-access
    vec = coords.coords_obs(task, layout)
    for name, value in coords.cost_by_type(vec, layout, **params).items():
      if name == 'buttons' and (timer or info.get('goal_met')):
        continue  # buttons cost nothing while their timer runs; a press moves the goal
      counts = table.setdefault(name, np.zeros((2, 2), int))
      counts[int(info.get(COST_KEYS[name], 0) > 0), int(value > 0)] += 1
    if terminated or truncated:
      env.reset()
  env.close()
  return table


def test_hazard_cost_agrees_with_the_env():
  table = agreement('SafetyPointGoal1-v0', 1200)['hazards']
  assert table[1].sum() > 20  # the rollout does enter hazards
  assert table[1, 0] == 0  # every env hazard cost is seen (0.25 >= hazard size 0.2)
  assert table[0, 1] <= table[1, 1]  # false alarms only from the 0.05 margin: few


@pytest.mark.slow
def test_contact_costs_mostly_agree_with_the_env():
  for task_id in ('SafetyPointGoal2-v0', 'SafetyPointButton1-v0'):
    for name, table in agreement(task_id, 3000).items():
      accuracy = np.trace(table) / table.sum()
      assert accuracy > 0.9, (task_id, name, table)
      if table[1].sum() >= 20:
        assert table[1, 1] / table[1].sum() > 0.6, (task_id, name, table)


def test_coords_through_make_env():
  from safedreamer.config.schema import Config
  from safedreamer.envs import make_env
  config = Config()
  config.env.obs = 'coords'
  env = make_env('safetygym/SafetyPointGoal1-v0', config)
  assert env.obs_space == {'vector': ((29,), np.float32)}
  params = env.coords_params()  # forwarded through the ActionRepeat wrapper
  assert params['sizes']['hazards'] == pytest.approx(0.25)
  assert params['footprint'].shape == (2, 5)
  first = env.reset()
  again = make_env('safetygym/SafetyPointGoal1-v0', config).reset()
  np.testing.assert_array_equal(first['vector'], again['vector'])  # params kept the RNG
  env.close()
