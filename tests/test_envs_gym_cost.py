"""GymCostEnv: cost from info, rescaled Box actions, vector and image observations."""
import gymnasium
import numpy as np
import pytest

from safedreamer.envs.gym_cost import GymCostEnv


class CostlyLine(gymnasium.Env):
  """x moves by the action; cost 1 while x > 1; info has no cost when x < -1."""

  def __init__(self, image=False, dict_obs=False):
    self.action_space = gymnasium.spaces.Box(np.float32([-2.0]), np.float32([4.0]), dtype=np.float32)
    vec = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    img = gymnasium.spaces.Box(0, 255, (32, 48, 3), np.uint8)
    if dict_obs:
      self.observation_space = gymnasium.spaces.Dict(
          {'pos': vec, 'cam': img, 'mode': gymnasium.spaces.Discrete(3)})
    else:
      self.observation_space = img if image else vec
    self.image, self.dict_obs = image, dict_obs
    self.x, self.t, self.last_action = 0.0, 0, None

  def _obs(self):
    vec = np.array([self.x, self.t], np.float64)
    img = np.full((32, 48, 3), self.t % 256, np.uint8)
    if self.dict_obs:
      return {'pos': vec, 'cam': img, 'mode': 2}
    return img if self.image else vec

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.x, self.t = float(self.np_random.uniform(-0.1, 0.1)), 0
    return self._obs(), {}

  def step(self, action):
    self.last_action = np.array(action)
    self.x += float(action[0])
    self.t += 1
    info = {} if self.x < -1 else {'cost': float(self.x > 1)}
    return self._obs(), 1.0, self.x > 10, self.t >= 6, info


def test_cost_from_info_and_action_rescaling():
  env = GymCostEnv(CostlyLine(), seed=0)
  assert env.obs_space == {'vector': ((2,), np.float32)} and env.act_dim == 1
  first = env.reset()
  assert first['is_first'] and first['vector'].dtype == np.float32
  step = env.step(np.array([1.0]))  # -> +4 (the Box's high)
  assert env.env.last_action[0] == pytest.approx(4.0) and env.env.last_action.dtype == np.float32
  assert step['cost'] == 1 and step['reward'] == 1
  env.step(np.array([-1.0]))  # -> -2: x ~ 2
  step = env.step(np.array([-1.0]))  # x ~ 0
  assert step['cost'] == 0
  env.step(np.array([-1.0]))
  step = env.step(np.array([-1 / 3]))  # -> 0: x ~ -2, info has no cost -> 0
  assert env.env.last_action[0] == pytest.approx(0.0, abs=1e-6) and step['cost'] == 0


def test_truncation_and_termination():
  env = GymCostEnv(CostlyLine())
  env.reset(seed=1)
  steps = [env.step(np.array([-0.5])) for _ in range(6)]  # action 0.5: never terminal
  assert [s['is_last'] for s in steps] == [False] * 5 + [True]
  assert not any(s['is_terminal'] for s in steps)
  env.reset()
  step = {'is_last': False}
  while not step['is_last']:
    step = env.step(np.array([1.0]))
  assert step['is_terminal']


def test_seeded_first_reset():
  a = GymCostEnv(CostlyLine(), seed=3).reset()['vector']
  b = GymCostEnv(CostlyLine(), seed=3).reset()['vector']
  np.testing.assert_array_equal(a, b)


def test_image_observation_resized():
  env = GymCostEnv(CostlyLine(image=True), image_size=16)
  assert env.obs_space == {'image': ((16, 16, 3), np.uint8)}
  env.reset(seed=0)
  step = env.step(np.zeros(1))
  assert step['image'].shape == (16, 16, 3) and step['image'].dtype == np.uint8
  assert (step['image'] == 1).all()
  native = GymCostEnv(CostlyLine(image=True))
  assert native.obs_space == {'image': ((32, 48, 3), np.uint8)}


def test_dict_observation_split():
  env = GymCostEnv(CostlyLine(dict_obs=True), image_size=8)
  assert env.obs_space == {'image': ((8, 8, 3), np.uint8), 'vector': ((5,), np.float32)}
  step = env.reset(seed=0)
  # Gymnasium sorts Dict keys: 'mode' (Discrete -> one-hot) comes before 'pos'.
  np.testing.assert_array_equal(step['vector'][:3], [0, 0, 1])


def test_gymnasium_id_and_spec_length():
  env = GymCostEnv('Pendulum-v1', seed=0)
  assert env.episode_length == 200 and env.act_dim == 1
  assert env.reset()['vector'].shape == (3,)
  assert env.step(np.zeros(1))['cost'] == 0


def test_discrete_actions_refused():
  with pytest.raises(ValueError, match='Box'):
    GymCostEnv('CartPole-v1')
