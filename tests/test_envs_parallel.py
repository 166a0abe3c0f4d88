"""EnvBatch: stacking, auto-reset, crash recovery in-process and in subprocesses."""
import functools
import os

import numpy as np
import pytest

from safedreamer.envs.parallel import EnvBatch, EnvCrashError
from safedreamer.envs.toy import ToyHazard


class Crashy(ToyHazard):
  """A toy env whose `crash_at`-th step (counted from its creation) fails.

  how: 'raise' (an exception) or 'exit' (the process dies, like a segfault).
  """

  def __init__(self, crash_at=5, how='raise', seed=0, episode_length=100):
    super().__init__(seed=seed, episode_length=episode_length)
    self.crash_at, self.how, self.count = crash_at, how, 0

  def step(self, action):
    self.count += 1
    if self.count == self.crash_at:
      if self.how == 'exit':
        os._exit(3)
      raise RuntimeError('boom')
    return super().step(action)


class BadReset(ToyHazard):
  def reset(self, seed=None):
    raise ValueError('cannot reset')


def toy(seed=0, length=100):
  return ToyHazard(seed=seed, episode_length=length)


@pytest.mark.parametrize('parallel', [False, True])
def test_stacked_steps_and_auto_reset(parallel):
  factories = [functools.partial(toy, 0, 3), functools.partial(toy, 1, 5)]
  with EnvBatch(factories, parallel=parallel) as batch:
    assert len(batch) == 2 and batch.act_dim == 2 and batch.episode_length == 3
    assert batch.obs_space == {'vector': ((8,), np.float32)}
    first = batch.reset()
    assert first['vector'].shape == (2, 8) and first['is_first'].tolist() == [True, True]
    assert first['reward'].dtype == np.float32 and first['is_last'].dtype == bool
    actions = np.ones((2, 2), np.float32)
    flags = []
    for _ in range(6):
      step = batch.step(actions)
      flags.append((step['is_first'].tolist(), step['is_last'].tolist()))
    # env 0: episode of 3 steps, then its next step is a reset step (action ignored).
    assert [f[0][0] for f in flags] == [False, False, False, True, False, False]
    assert [f[1][0] for f in flags] == [False, False, True, False, False, False]
    assert [f[1][1] for f in flags] == [False, False, False, False, True, False]
    assert flags[5][0][1]  # env 1 reset after its 5-step episode
    assert batch.crashed.tolist() == [0, 0]


def test_step_without_reset_returns_reset_steps():
  batch = EnvBatch([toy, toy])
  step = batch.step(np.zeros((2, 2)))
  assert step['is_first'].all() and (step['reward'] == 0).all()
  with pytest.raises(ValueError, match='shape'):
    batch.step(np.zeros((3, 2)))
  batch.close()


@pytest.mark.parametrize('parallel, how', [(False, 'raise'), (True, 'raise'), (True, 'exit')])
def test_crash_recreates_env_and_reports(parallel, how):
  factories = [toy, functools.partial(Crashy, 3, how)]
  with EnvBatch(factories, parallel=parallel, max_restarts=5) as batch:
    batch.reset()
    steps = [batch.step(np.ones((2, 2))) for _ in range(4)]
    # Env 1 fails at its 3rd step: that step comes back as a fresh reset step.
    assert [s['is_first'][1] for s in steps] == [False, False, True, False]
    assert not any(s['is_first'][0] for s in steps)
    assert batch.crashed.tolist() == [0, 1] and batch.num_crashes == 1
    assert 'env 1' in batch.errors[-1]
    if how == 'raise':
      assert 'RuntimeError: boom' in batch.errors[-1]
    else:
      assert 'died' in batch.errors[-1]
    assert steps[2]['reward'][1] == 0 and steps[2]['cost'][1] == 0


def _ignores_sigint(pid):
  with open(f'/proc/{pid}/status') as f:
    mask = int(next(l for l in f if l.startswith('SigIgn:')).split()[1], 16)
  return bool(mask & (1 << (2 - 1)))   # SIGINT is signal 2


def test_a_restarted_worker_still_ignores_sigint():
  factories = [toy, functools.partial(Crashy, 3, 'exit')]
  with EnvBatch(factories, parallel=True, max_restarts=5) as batch:
    batch.reset()
    first = batch._envs[1].process.pid
    assert _ignores_sigint(first)
    for _ in range(4):
      batch.step(np.ones((2, 2)))
    assert batch.num_crashes == 1 and batch._envs[1].process.pid != first
    assert _ignores_sigint(batch._envs[1].process.pid)


@pytest.mark.parametrize('parallel', [False, True])
def test_too_many_crashes_raise(parallel):
  batch = EnvBatch([functools.partial(Crashy, 2)], parallel=parallel, max_restarts=2)
  batch.reset()
  with pytest.raises(EnvCrashError, match='max_restarts=2'):
    for _ in range(20):
      batch.step(np.zeros((1, 2)))
  assert batch.num_crashes == 3
  batch.close()


@pytest.mark.parametrize('parallel', [False, True])
def test_reset_failures_count_as_crashes(parallel):
  batch = EnvBatch([toy, BadReset], parallel=parallel, max_restarts=3)
  with pytest.raises(EnvCrashError, match='cannot reset'):
    batch.reset()
  assert batch.crashed.tolist() == [0, 4]
  batch.close()


def test_call_reaches_the_env_in_a_subprocess():
  with EnvBatch([functools.partial(toy, 4)], parallel=True) as batch:
    batch.reset()
    state = batch.call(0, 'get_state')
    assert state['t'] == 0
    batch.step(np.ones((1, 2)))
    assert batch.call(0, 'get_state')['t'] == 1
    batch.call(0, 'set_state', state)
    assert batch.call(0, 'get_state')['t'] == 0
    with pytest.raises(RuntimeError, match='no_such_method'):
      batch.call(0, 'no_such_method')


def test_lambda_factories_work_in_subprocesses():
  with EnvBatch([lambda: ToyHazard(seed=9)], parallel=True) as batch:
    np.testing.assert_array_equal(batch.reset()['vector'][0], ToyHazard(seed=9).reset()['vector'])


@pytest.mark.slow
@pytest.mark.parametrize('obs', ['lidar', 'vision'])
def test_safety_gym_in_subprocesses(obs):
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env_batch
  config = Config()
  config.env.obs = obs
  config.run.num_envs = 2
  with make_env_batch('safetygym/SafetyPointGoal1-v0', config, parallel=True) as batch:
    first = batch.reset()
    key = 'vector' if obs == 'lidar' else 'image_rear'
    assert first[key].shape[0] == 2 and first['is_first'].all()
    assert not np.array_equal(first[key][0], first[key][1])  # seeds config.seed + i
    step = batch.step(np.zeros((2, 2), np.float32))
    assert not step['is_first'].any() and batch.episode_length == 250


@pytest.mark.parametrize('parallel', [False, True])
def test_a_factory_that_cannot_build_fails_at_once(parallel):
  def broken():
    raise OSError('no simulator here')
  with pytest.raises((OSError, RuntimeError), match='no simulator here'):
    EnvBatch([broken], parallel=parallel)
