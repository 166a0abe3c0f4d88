"""toy/hazard: hazard costs, shortcut vs detour, determinism, speed."""
import time

import numpy as np

from safedreamer.envs import toy
from safedreamer.envs.toy import ToyHazard, scripted_policy


def run(env, policy, seed):
  step = env.reset(seed=seed)
  ret = cost = 0.0
  steps = [step]
  while not step['is_last']:
    step = env.step(policy(env))
    ret += float(step['reward'])
    cost += float(step['cost'])
    steps.append(step)
  return ret, cost, steps


def test_spaces_and_first_step():
  env = ToyHazard(seed=0)
  step = env.reset()
  assert step['vector'].shape == (8,) and step['vector'].dtype == np.float32
  assert step['is_first'] and not step['is_last'] and step['reward'] == 0 and step['cost'] == 0
  assert env.obs_space == {'vector': ((8,), np.float32)} and env.act_dim == 2
  assert env.episode_length == toy.EPISODE_LENGTH == 100
  x, y = env.pos
  assert x < -0.5  # starts on the left, goal on the right
  assert env.goal_pos[0] > 0.5


def test_hazard_costs_one_per_step_inside():
  env = ToyHazard(seed=0)
  env.reset(seed=0)
  hx, hy = env.hazard_pos
  env.set_state({**env.get_state(), 'pos': (hx, hy)})
  step = env.step(np.zeros(2))  # stays at the hazard centre
  assert step['cost'] == 1.0
  env.set_state({**env.get_state(), 'pos': (hx, hy + toy.HAZARD_RADIUS + 0.05)})
  step = env.step(np.zeros(2))
  assert step['cost'] == 0.0


def test_shortcut_pays_more_return_and_cost_than_detour():
  env = ToyHazard()
  for seed in range(3):
    ret_s, cost_s, _ = run(env, lambda e: scripted_policy(e, detour=False), seed)
    ret_d, cost_d, _ = run(env, lambda e: scripted_policy(e, detour=True), seed)
    assert cost_s > 20 and cost_d == 0  # well above a limit of 2 vs none
    assert ret_s > ret_d + 1.5 > 0  # the shortcut pays, the detour still earns
    assert ret_d > 10


def test_oracle_returns_unconstrained_by_hand_and_safe_optimum():
  """Straight at full speed, every step gains 0.1 of progress: 100 x 0.1 + 5 arrivals
  = 15 exactly. The edge-hugging detour is the best zero-cost return (~13.07): it
  beats every detour with a margin, and never enters the hazard."""
  oracle = toy.oracle_returns(episodes=10)
  np.testing.assert_allclose(oracle['unconstrained']['EpRet'], 15.0, atol=1e-4)
  assert oracle['unconstrained']['EpCost'] > 40
  safe = oracle['safe']
  assert safe['EpCost'] == 0.0 and 13.0 < safe['EpRet'] < 13.15
  for margin in (0.005, 0.05):
    rets = [run(ToyHazard(), lambda e: scripted_policy(e, True, margin), seed)[0]
            for seed in range(10)]
    assert np.mean(rets) < safe['EpRet']
  # the shortest path around the disc (tangent, arc, tangent) between two spots 2 apart
  # with the hazard (radius 0.5) midway is 2 sqrt(0.75) + 0.5 pi / 3 = 2.256, 12.8%
  # longer than 2: the safe optimum pays about that share of its 10 units of progress
  geodesic = 2 * np.sqrt(0.75) + 0.5 * np.pi / 3
  assert abs((15.0 - safe['EpRet']) - 10 * (1 - 2 / geodesic) - 1.0) < 0.3


def test_truncation_not_termination():
  env = ToyHazard(seed=1)
  _, _, steps = run(env, lambda e: np.zeros(2), None)
  assert len(steps) == 101
  assert steps[-1]['is_last'] and not steps[-1]['is_terminal']
  assert not any(s['is_last'] for s in steps[:-1])


def test_deterministic_given_seed():
  rng = np.random.default_rng(0)
  actions = rng.uniform(-1, 1, (100, 2))
  a, b = ToyHazard(seed=5), ToyHazard(seed=5)
  sa, sb = a.reset(), b.reset()
  np.testing.assert_array_equal(sa['vector'], sb['vector'])
  for action in actions:
    sa, sb = a.step(action), b.step(action)
    np.testing.assert_array_equal(sa['vector'], sb['vector'])
    assert sa['reward'] == sb['reward'] and sa['cost'] == sb['cost']
  assert not np.array_equal(ToyHazard().reset(seed=1)['vector'], ToyHazard().reset(seed=2)['vector'])


def test_state_roundtrip():
  env = ToyHazard(seed=3)
  env.reset()
  for _ in range(10):
    env.step(np.array([1.0, 0.1]))
  state = env.get_state()
  first = [env.step(np.array([1.0, -0.2])) for _ in range(30)]
  env.set_state(state)
  second = [env.step(np.array([1.0, -0.2])) for _ in range(30)]
  for x, y in zip(first, second):
    np.testing.assert_array_equal(x['vector'], y['vector'])
    assert x['reward'] == y['reward'] and x['cost'] == y['cost']


def test_fast_enough():
  env = ToyHazard(seed=0)
  env.reset()
  action = np.array([0.3, 0.1], np.float32)
  start = time.perf_counter()
  for _ in range(20000):
    if env.step(action)['is_last']:
      env.reset()
  rate = 20000 / (time.perf_counter() - start)
  assert rate > 20000, rate
