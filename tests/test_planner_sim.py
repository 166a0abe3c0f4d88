"""MPC:sim (behavior/mpc_sim.py) on a fake simulator with get_state / set_state."""
import numpy as np

from safedreamer.behavior import mpc_sim

LO, HI = 1.7, 2.3


class FakeSim:
  """1-D point: x' = x + a; reward = minus the distance to x = 10; cost 1 inside
  (LO, HI); episodes last `episode_length` steps. Counts every step taken."""
  act_dim, episode_length = 1, 50

  def __init__(self):
    self.x, self.t, self.steps_taken = 0.0, 0, 0

  def reset(self):
    self.x, self.t = 0.0, 0
    return self._step(0.0, 0.0, True)

  def step(self, action):
    self.steps_taken += 1
    self.x += float(np.clip(action[0], -1, 1))
    self.t += 1
    return self._step(-abs(10 - self.x), float(LO < self.x < HI), False)

  def _step(self, reward, cost, first):
    return {'x': np.float32(self.x), 'reward': np.float32(reward), 'cost': np.float32(cost),
            'is_first': first, 'is_last': self.t >= self.episode_length,
            'is_terminal': False}

  def get_state(self):
    return (self.x, self.t)

  def set_state(self, state):
    self.x, self.t = state


CFG = mpc_sim.SimPlannerConfig(horizon=5, samples=60, elites=8, iterations=4)


def test_leaves_the_real_environment_untouched():
  env, twin = FakeSim(), FakeSim()
  for e in (env, twin):
    e.reset()
    e.step(np.array([0.3]))
  planner = mpc_sim.SimPlanner(env, cost_limit=0.5, cfg=CFG, seed=0)
  action, metrics = planner.act(is_first=False)
  assert env.steps_taken > CFG.samples * CFG.iterations      # it did plan in `env`
  assert env.get_state() == twin.get_state()
  assert env.step(action) == twin.step(action)               # same future as the twin
  assert 0.0 <= metrics['safe_frac'] <= 1.0


def test_restores_the_state_on_errors():
  env = FakeSim()
  env.reset()
  def broken(action):
    env.x += 1.0
    raise RuntimeError('simulator crashed')
  env.step = broken
  try:
    mpc_sim.plan_in_sim(env, np.zeros((5, 1)), True, np.random.default_rng(0), CFG, 0.5, 50)
  except RuntimeError:
    pass
  assert env.get_state() == (0.0, 0)


def test_plans_around_the_interval_in_a_separate_copy():
  real, sim = FakeSim(), FakeSim()
  real.reset()
  planner = mpc_sim.SimPlanner(sim, cost_limit=0.5, cfg=CFG, seed=1,
                               episode_length=CFG.horizon)   # J_C' = visits
  xs = []
  for t in range(6):
    action, _ = planner.act(is_first=t == 0, state=real.get_state())
    xs.append(float(real.step(action)['x']))
  xs = np.array(xs)
  assert real.steps_taken == 6
  assert not np.any((xs > LO) & (xs < HI)) and xs[-1] > HI + 1.0, xs


def test_goes_around_the_hazard_of_the_toy_task():
  """On `toy/hazard` (the straight line to the goal crosses a hazard) MPC:sim with a
  cost limit goes around at zero cost; without one it cuts straight through."""
  from safedreamer.envs.toy import ToyHazard
  cfg = mpc_sim.SimPlannerConfig(horizon=12, samples=60, elites=8, iterations=3)
  result = {}
  for limit in (2.0, np.inf):
    env = ToyHazard(seed=0)
    env.reset()
    planner = mpc_sim.SimPlanner(env, cost_limit=limit, cfg=cfg, seed=0)
    ret = cost = 0.0
    for t in range(40):
      before = env.get_state()
      action, _ = planner.act(is_first=t == 0)
      assert env.get_state() == before
      step = env.step(action)
      ret, cost = ret + step['reward'], cost + step['cost']
    result[limit] = (ret, cost)
  assert result[2.0][1] == 0 and result[2.0][0] > 2.0, result
  assert result[np.inf][1] > 0, result
