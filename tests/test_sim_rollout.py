"""envs/sim_rollout.py: MuJoCo's batched rollout scores action sequences exactly as
stepping the env does (mpc_sim.rollout), goals reached, hazards, the episode's end
and the planner's output included."""
import numpy as np
import pytest

from safedreamer.behavior import mpc_sim
from safedreamer.config.load import load_config
from safedreamer.envs.registry import env_factory
from safedreamer.envs.sim_rollout import BatchedScorer

TASK = 'safetygym/SafetyPointGoal1-v0'


def envs(**overrides):
  config = load_config(['mpc_sim'], {'task': TASK, **overrides})
  real, sim = env_factory(TASK, config, 0)(), env_factory(TASK, config, 999)()
  sim.reset()
  return real, sim


@pytest.fixture(scope='module', name='pair')
def fixture_pair():
  """A real env and a planner's copy (built once: Safety-Gymnasium builds are slow)."""
  real, sim = envs()
  yield real, sim
  real.close()
  sim.close()


def sequences(n, seed=0):
  """Nearly constant actions (drives and turns of every kind), horizon 15."""
  g = np.random.default_rng(seed)
  return np.clip(np.repeat(g.uniform(-1, 1, (n, 1, 2)), 15, 1)
                 + 0.2 * g.standard_normal((n, 15, 2)), -1, 1).astype(np.float32)


def both(sim, state, actions):
  scorer = BatchedScorer.for_env(sim)
  assert scorer is not None
  fast = np.stack(scorer.score(state, actions), axis=1)
  after = sim.get_state()   # the copy is left at the snapshot
  assert np.array_equal(after['physics'], state['physics']) and after['task'] == state['task']
  assert np.array_equal(after['rng'][1], state['rng'][1]) and after['rng'][2] == state['rng'][2]
  slow = np.array([mpc_sim.rollout(sim, state, a) for a in actions])
  return fast, slow


@pytest.mark.parametrize('seed,warmup', [(39, 0), (3, 6)])
def test_scores_equal_stepping_the_env(pair, seed, warmup):
  """seed 39 starts 0.71 m from the goal (some sequences reach it and the env draws a
  new one); seed 3 after 6 steps has sequences crossing hazards."""
  real, sim = pair
  real.reset(seed=seed)
  for _ in range(warmup):
    real.step(np.array([0.3, 0.5], np.float32))
  state = real.get_state()
  fast, slow = both(sim, state, sequences(12))
  np.testing.assert_array_equal(fast, slow)       # bit for bit
  if seed == 39:
    assert (slow[:, 0] > 0.9).sum() >= 1          # the goal bonus (1) was earned
  else:
    assert (slow[:, 1] > 0).sum() >= 1


def test_the_episode_end_cuts_the_sequences(pair):
  """9 simulator steps left: two whole agent steps and one of the four repeats."""
  real, sim = pair
  real.reset(seed=39)
  state = real.get_state()
  steps, terminated, truncated, cost = state['builder']
  state['builder'] = (sim.unwrapped._task.num_steps - 9, terminated, truncated, cost)  # pylint: disable=protected-access
  fast, slow = both(sim, state, sequences(6, seed=1))
  np.testing.assert_array_equal(fast, slow)
  assert np.any(slow[:, 0] != 0)


def test_the_planner_plans_the_same_with_and_without_it(pair):
  real, sim = pair
  real.reset(seed=39)
  cfg = mpc_sim.SimPlannerConfig(horizon=15, samples=12, elites=3, iterations=2)
  out = []
  for scorer in (BatchedScorer.for_env(sim), None):
    out.append(mpc_sim.plan_in_sim(sim, np.zeros((15, 2), np.float32), True,
                                   np.random.default_rng(5), cfg, 2.0, 250,
                                   state=real.get_state(), scorer=scorer))
  np.testing.assert_array_equal(out[0][0], out[1][0])
  np.testing.assert_array_equal(out[0][1], out[1][1])
  assert out[0][2] == out[1][2]


def test_tasks_it_does_not_cover_are_left_to_the_env():
  config = load_config(['mpc_sim'], {'task': 'toy/hazard'})
  assert BatchedScorer.for_env(env_factory('toy/hazard', config, 0)()) is None
  config = load_config(['mpc_sim'], {'task': 'safetygym/SafetyPointGoal2-v0'})
  goal2 = env_factory('safetygym/SafetyPointGoal2-v0', config, 0)()  # vases cost
  assert BatchedScorer.for_env(goal2) is None
