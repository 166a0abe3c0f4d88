"""agents/mpc_sim.py: MPC:sim plans in simulator copies from snapshots of the real
environments, which it never changes; it avoids toy/hazard's hazard; it trains,
evaluates and resumes through the normal train loop."""
import json

import numpy as np
import pytest

from safedreamer.agents import make_agent
from safedreamer.agents.mpc_sim import MPCSimAgent
from safedreamer.config.load import load_config
from safedreamer.envs.registry import env_factory, make_env_batch
from safedreamer.envs.toy import HAZARD_RADIUS
from safedreamer.run.train import train

SMALL = {'planner.samples': 32, 'planner.elites': 4, 'planner.iterations': 2}


def setup(task, num_envs=1, seed=0, **overrides):
  config = load_config(['mpc_sim'], {'task': task, 'env.action_repeat': 1, **SMALL, **overrides})
  envs = make_env_batch(config.task, config, num_envs=num_envs, parallel=False)
  agent = make_agent(config, envs.obs_space, envs.act_dim,
                     env_factory=env_factory(config.task, config, seed + 999))
  assert isinstance(agent, MPCSimAgent)
  agent.attach(envs)
  return config, envs, agent


def same(a, b):
  """Deep equality of snapshots (dicts, tuples, arrays)."""
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
  if isinstance(a, (list, tuple)):
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
  if isinstance(a, np.ndarray):
    return np.array_equal(a, b)
  return a == b


def test_real_environments_are_untouched_on_toy():
  _, envs, agent = setup('toy/hazard', num_envs=2)
  _, twins, _ = setup('toy/hazard', num_envs=2)
  obs = envs.reset([1, 2])
  twins.reset([1, 2])
  for batch in (envs, twins):
    obs = batch.step(np.full((2, 2), 0.5, np.float32))
  before = [envs.call(i, 'get_state') for i in range(2)]
  state = agent.init_policy_state(2)
  action, state = agent.policy(obs, state, 'train')
  assert action.shape == (2, 2) and state['mean'].shape == (2, agent.cfg.horizon, 2)
  assert all(same(before[i], envs.call(i, 'get_state')) for i in range(2))
  copies = agent._copies[envs]  # pylint: disable=protected-access
  assert len(copies) == 2 and all(same(copies[i][1].get_state(), before[i]) for i in range(2))
  a, b = envs.step(action), twins.step(action)     # the same future as an untouched twin
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert agent.episode_end(0.0, 0.0, 'train')['plan/safe_frac'] >= 0.0


def drive(limit, steps=40):
  """(cost, return, closest approach to the hazard's centre) over `steps` steps."""
  _, envs, agent = setup('toy/hazard', cost_limit=limit, **{
      'planner.samples': 64, 'planner.elites': 8, 'planner.iterations': 3})
  assert agent.cfg.horizon == 15
  obs, state = envs.reset([3]), agent.init_policy_state(1)
  cost = ret = 0.0
  closest = np.inf
  for _ in range(steps):
    action, state = agent.policy(obs, state, 'eval')
    obs = envs.step(action)
    cost += float(obs['cost'][0])
    ret += float(obs['reward'][0])
    closest = min(closest, float(np.hypot(*obs['vector'][0, 2:4])))
  return cost, ret, closest


def test_goes_around_the_hazard_on_toy():
  cost, ret, closest = drive(limit=1.0)
  assert cost == 0.0 and closest >= HAZARD_RADIUS
  assert ret > 1.5, ret   # it got past the hazard to the goal (arrival bonus 1)
  cost, ret, _ = drive(limit=1000.0)   # unconstrained, the same planner cuts through
  assert cost > 5 and ret > 1.5


def test_safety_gym_copy_follows_the_real_env_across_episodes():
  _, envs, agent = setup('safetygym/SafetyPointGoal1-v0', **{
      'env.episode_length': 6, 'planner.samples': 4, 'planner.elites': 2,
      'planner.iterations': 1, 'planner.horizon': 2})
  obs, state = envs.reset([5]), agent.init_policy_state(1)
  checked = 0
  for _ in range(13):  # two episode boundaries: the copy rebuilds the new worlds
    if not obs['is_last'][0]:
      before = envs.call(0, 'get_state')
    action, state = agent.policy(obs, state, 'train')
    if obs['is_last'][0]:
      obs = envs.step(action)
      continue
    assert same(before, envs.call(0, 'get_state'))
    copy = agent._copies[envs][0][1]  # pylint: disable=protected-access
    predicted = copy.step(action[0])   # the copy was left at the real env's state
    obs = envs.step(action)
    np.testing.assert_allclose(predicted['vector'], obs['vector'][0], rtol=1e-6, atol=1e-6)
    checked += 1
  assert checked >= 10
  envs.close()
  agent.close()


def test_trains_evaluates_and_resumes(tmp_path):
  overrides = {'task': 'toy/hazard', 'env.action_repeat': 1, 'run.progress': False,
               'run.steps': 300, 'run.eval_every': 200, 'run.prefill': 0, 'run.train_ratio': 0,
               'planner.samples': 16, 'planner.elites': 4, 'planner.iterations': 1,
               'planner.horizon': 5}
  config = load_config(['mpc_sim', 'tiny'], overrides)
  counters = train(config, tmp_path)
  assert counters['step'] >= 300 and counters['episodes'] >= 3
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  keys = set().union(*rows)
  assert {'plan/safe_frac', 'eval/EpCost', 'episode/EpRet'} <= keys, keys
  config = load_config(['mpc_sim', 'tiny'], dict(overrides, **{'run.steps': 400}))
  counters = train(config, tmp_path)
  assert counters['resumes'] == 1 and counters['step'] >= 400


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_needs_attach(mode):
  config = load_config(['mpc_sim'], {'task': 'toy/hazard'})
  agent = MPCSimAgent(config, lambda: None, 2)
  with pytest.raises(RuntimeError, match='attach'):
    agent.policy({'is_first': np.ones(1, bool), 'is_last': np.zeros(1, bool)},
                 agent.init_policy_state(1), mode)
