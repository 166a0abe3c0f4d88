"""make_env / register: names, one-line errors, user suites, action repeat."""
import functools

import gymnasium
import numpy as np
import pytest

from safedreamer.config.schema import Config
from safedreamer.envs import registry
from safedreamer.envs.registry import UnknownTaskError, make_env, register
from safedreamer.envs.toy import ToyHazard
from safedreamer.envs.wrappers import ActionRepeat


@pytest.fixture
def config():
  config = Config()
  config.env.action_repeat = 1
  return config


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
  monkeypatch.setattr(registry, '_SUITES', {})
  monkeypatch.setattr(registry, '_TASKS', {})


@pytest.mark.parametrize('task, fragment', [
    ('safetygym/SafetyPointGoal9-v0', "did you mean SafetyPointGoal"),
    ('nosuch/Thing-v0', "no suite 'nosuch'"),
    ('SafetyPointGoal1-v0', "'SUITE/ID'"),
    ('toy/hazzard', 'did you mean hazard'),
    ('gym/NoSuchEnv-v0', "gym has no 'NoSuchEnv-v0'"),
])
def test_unknown_tasks_give_one_line_errors(config, task, fragment):
  with pytest.raises(UnknownTaskError) as info:
    make_env(task, config)
  message = str(info.value)
  assert '\n' not in message and message.startswith(f"unknown task '{task}'")
  assert fragment in message
  assert isinstance(info.value, ValueError)


def test_builtin_toy_and_action_repeat(config):
  env = make_env('toy/hazard', config)
  assert isinstance(env, ToyHazard) and env.episode_length == 100
  config.env.action_repeat = 4
  env = make_env('toy/hazard', config, seed=3)
  assert isinstance(env, ActionRepeat) and env.episode_length == 25
  first = env.reset()
  np.testing.assert_array_equal(first['vector'], ToyHazard(seed=3).reset()['vector'])


def test_toy_refuses_vision(config):
  config.env.obs = 'vision'
  with pytest.raises(ValueError, match='no images'):
    make_env('toy/hazard', config)


def test_config_seed_is_the_default_seed(config):
  config.seed = 11
  a = make_env('toy/hazard', config).reset()['vector']
  np.testing.assert_array_equal(a, ToyHazard(seed=11).reset()['vector'])


class Pointless(gymnasium.Env):
  observation_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
  action_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

  def step(self, action):
    return np.zeros(3, np.float32), 0.5, False, False, {'cost': 2.0}


def test_register_a_task_returning_a_gymnasium_env(config):
  register('mine/Pointless-v0', Pointless)  # no arguments: any signature subset works
  env = make_env('mine/Pointless-v0', config, seed=4)
  first = env.reset()
  assert first['vector'].shape == (3,)
  assert env.step(np.zeros(2))['cost'] == 2.0
  again = make_env('mine/Pointless-v0', config, seed=4).reset()
  np.testing.assert_array_equal(first['vector'], again['vector'])  # seeded first reset
  with pytest.raises(UnknownTaskError):
    make_env('mine/Other-v0', config)


def test_register_a_suite_gets_id_config_seed(config):
  seen = {}

  def factory(task_id, config, seed):
    seen.update(task_id=task_id, seed=seed, repeat=config.env.action_repeat)
    return ToyHazard(seed=seed)

  register('lab', factory)
  config.env.action_repeat = 2
  env = make_env('lab/anything-v3', config, seed=7)
  assert seen == {'task_id': 'anything-v3', 'seed': 7, 'repeat': 2}
  assert env.episode_length == 50
  assert 'lab' in registry.registered()['suites']


def test_seedless_costenv_factory_is_seeded_on_first_reset(config):
  register('lab/toy', lambda: ToyHazard())
  a = make_env('lab/toy', config, seed=5).reset()['vector']
  np.testing.assert_array_equal(a, ToyHazard(seed=5).reset()['vector'])


def test_register_rejects_bad_names_and_builtins():
  with pytest.raises(ValueError, match='built in'):
    register('safetygym', ToyHazard)
  with pytest.raises(ValueError):
    register('a/b/c', ToyHazard)
  with pytest.raises(TypeError):
    register('x', 3)


def test_factory_returning_garbage(config):
  register('lab/bad', lambda: 42)
  with pytest.raises(TypeError, match='expected a CostEnv'):
    make_env('lab/bad', config)


def test_env_var_names_modules_to_import(config, tmp_path, monkeypatch):
  (tmp_path / 'my_lab_envs.py').write_text(
      'from safedreamer.envs import register\n'
      'from safedreamer.envs.toy import ToyHazard\n'
      "register('mylab', lambda seed: ToyHazard(seed=seed))\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setenv(registry.ENV_MODULES_VAR, 'my_lab_envs')
  assert make_env('mylab/Any-v0', config).reset()['is_first']
  monkeypatch.setenv(registry.ENV_MODULES_VAR, 'no_such_module_xyz')
  with pytest.raises(UnknownTaskError, match='no_such_module_xyz'):
    make_env('toy/hazard', config)


def test_env_batch_with_user_suite_in_subprocesses(config):
  register('lab', lambda task_id, seed: ToyHazard(seed=seed))
  config.run.num_envs = 2
  batch = registry.make_env_batch('lab/x', config, parallel=True)
  try:
    first = batch.reset()
    assert first['vector'].shape == (2, 8)
    np.testing.assert_array_equal(first['vector'][1], ToyHazard(seed=config.seed + 1).reset()['vector'])
  finally:
    batch.close()


def test_env_factory_is_picklable_for_builtins(config):
  import pickle
  factory = registry.env_factory('toy/hazard', config, seed=2)
  assert isinstance(factory, functools.partial)
  env = pickle.loads(pickle.dumps(factory))()
  np.testing.assert_array_equal(env.reset()['vector'], ToyHazard(seed=2).reset()['vector'])
