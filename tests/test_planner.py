"""CCEM planner (behavior/ccem.py) on a 1-D analytic world model.

The toy world: a point x, action a in [-1, 1], x' = x + a; reward = minus the
distance to a goal at x = 10 (so getting closer sooner is better); cost 1 while x
lies inside an open forbidden interval (lo, hi).
Critics are zero unless a test says otherwise; nothing ever terminates.
"""
import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.behavior import ccem

# The PlanModel contract (behavior/plan_model.py), restated locally so these tests
# do not depend on the world model.
PlanModel = collections.namedtuple(
    'PlanModel', 'step reward cost cont value cost_value actor')
GOAL = 10.0


def toy_model(lo, hi, cost_value=None, actor=None):
  step = lambda s, a: {'x': s['x'] + a[:, 0]}
  zero = lambda s: jnp.zeros_like(s['x'])
  return PlanModel(
      step=step, reward=lambda s: -jnp.abs(GOAL - s['x']),
      cost=lambda s: ((s['x'] > lo) & (s['x'] < hi)).astype(jnp.float32),
      cont=lambda s: jnp.ones_like(s['x']), value=zero,
      cost_value=cost_value or zero, actor=actor)


def start(x, n=1):
  return {'x': jnp.full((n,), x, jnp.float32)}


def rollout(x, actions, lo, hi):
  """Positions and cost of a plan [H, A] executed open loop from x."""
  xs = x + np.cumsum(np.asarray(actions)[:, 0])
  return xs, int(((xs > lo) & (xs < hi)).sum())


CFG = ccem.CCEMConfig(horizon=5, samples=300, elites=30, iterations=6, mixture=0.0,
                      gamma=0.99, return_lambda=0.95)
H = CFG.horizon


def closed_loop(model, x0, lo, hi, steps, cfg=CFG, cost_limit=0.5, seed=0):
  """Run the planner as MPC (acting with mu_1) in the toy world itself."""
  planner = ccem.make_planner(model, cfg)
  x, mean, key, xs = x0, ccem.initial_means(1, cfg, 1), jax.random.PRNGKey(seed), []
  for t in range(steps):
    key, sub = jax.random.split(key)
    out = planner(start(x), mean, jnp.array([t == 0]), sub[None], cost_limit, float(H))
    mean, x = out.mean, x + float(out.action[0, 0])
    xs.append(x)
  xs = np.array(xs)
  return xs, int(((xs > lo) & (xs < hi)).sum())


# ------------------------------------------------------------------- helpers

def test_warm_start_shifts_and_resets():
  mean = jnp.arange(8.0).reshape(4, 2)
  np.testing.assert_array_equal(
      ccem.warm_start(mean, jnp.array(False)), [[2, 3], [4, 5], [6, 7], [6, 7]])
  np.testing.assert_array_equal(ccem.warm_start(mean, jnp.array(True)), np.zeros((4, 2)))


def test_scores_by_hand():
  # Two sequences, H = 2: rewards, costs, continuations and critic values of s_1, s_2.
  cfg = ccem.CCEMConfig(horizon=2, gamma=0.9, return_lambda=0.8, lagrangian=True)
  outs = {'reward': np.array([[1., 0.], [2., 0.]]), 'cost': np.array([[0., 1.], [3., 1.]]),
          'cont': np.array([[1., 1.], [.5, 1.]]), 'value': np.array([[10., 0.], [20., 0.]]),
          'cost_value': np.array([[0., 4.], [1., 4.]])}
  g, lam = 0.9, 0.8
  def by_hand(r, v, c):   # G_1 = r_2 + g c_2 v_2;  G_0 = r_1 + g c_1 ((1-lam) v_1 + lam G_1)
    g1 = r[1] + g * c[1] * v[1]
    return r[0] + g * c[0] * ((1 - lam) * v[0] + lam * g1)
  c = outs['cont'][:, 0]
  ret, episode_cost, cost_ret = ccem._score(
      {k: jnp.asarray(v) for k, v in outs.items()}, cfg, 100.0)
  np.testing.assert_allclose(ret[0], by_hand(outs['reward'][:, 0], outs['value'][:, 0], c), rtol=1e-6)
  np.testing.assert_allclose(ret[1], 0.0)
  np.testing.assert_allclose(episode_cost, [3 * 50., 2 * 50.])        # sum * L / H
  np.testing.assert_allclose(cost_ret[0], by_hand([0., 3.], [0., 1.], c), rtol=1e-6)
  np.testing.assert_allclose(cost_ret[1], 1 + 0.9 * (0.2 * 4 + 0.8 * (1 + 0.9 * 4)), rtol=1e-6)


def test_select_elites_masks_unsafe_sequence_zero():
  # Sequence 0 has by far the best objective but is unsafe; 4 safe ones exist.
  objective = jnp.array([100., 1., 2., 3., 50., 4.])
  cost = jnp.array([9., 0., 0., 0., 9., 0.])
  idx, num_safe = ccem.select_elites(objective, cost, 1.0, 3)
  assert int(num_safe) == 4
  assert sorted(np.asarray(idx).tolist()) == [2, 3, 5]
  # Exactly E safe: all of them, still never 0.
  idx, _ = ccem.select_elites(objective, cost.at[5].set(9.), 1.0, 3)
  assert sorted(np.asarray(idx).tolist()) == [1, 2, 3]


def test_select_elites_fallback_lowest_cost_ties_by_objective():
  objective = jnp.array([5., 1., 9., 3., 7.])
  cost = jnp.array([2., 1., 3., 1., 2.])
  idx, num_safe = ccem.select_elites(objective, cost, 1.0, 3)   # none is < 1
  assert int(num_safe) == 0
  assert np.asarray(idx).tolist() == [3, 1, 4]
  # Cost limit 0 (never safe): zero-cost sequences still come first, by objective.
  idx, _ = ccem.select_elites(objective, cost.at[2].set(0.).at[4].set(0.), 0.0, 2)
  assert np.asarray(idx).tolist() == [2, 4]


def test_refit_momentum_and_std():
  elites = jnp.array([[[0.], [1.]], [[1.], [1.]]])   # [E=2, H=2, A=1]
  mean, std = ccem.refit(jnp.ones((2, 1)), elites, 0.1)
  np.testing.assert_allclose(mean[:, 0], [0.1 + 0.9 * 0.5, 1.0])
  np.testing.assert_allclose(std[:, 0], [0.5, 0.0])


# ------------------------------------------------------------------- planning

@pytest.mark.parametrize('seed', [0, 1])
def test_jumps_over_the_interval_when_a_safe_plan_exists(seed):
  lo, hi = 1.7, 2.3         # greedy 0 -> 1 -> 2 lands inside; ... 1.68 -> 2.68 jumps it
  model = toy_model(lo, hi)
  xs, cost = closed_loop(model, 0.0, lo, hi, steps=6, seed=seed)
  assert cost == 0 and xs[-1] > hi + 1.0, xs
  # Without the constraint the same planner walks straight through it.
  xs, cost = closed_loop(model, 0.0, lo, hi, steps=6, cost_limit=np.inf, seed=seed)
  assert cost > 0, xs


def test_waits_when_the_interval_cannot_be_crossed():
  lo, hi = 1.5, 6.0         # wider than any horizon-5 jump: safe = stay at or below 1.5
  xs, cost = closed_loop(toy_model(lo, hi), 0.0, lo, hi, steps=8)
  assert cost == 0 and 1.0 < xs[-1] <= lo, xs


def test_minimises_cost_when_no_safe_plan_exists():
  # Starting inside (1.2, 5.5) at 3: any plan pays; leaving left pays 1 step
  # (3 -> 2 -> <=1.2), leaving right pays 2 (3 -> 4 -> 5 -> 6). Reward says right.
  lo, hi = 1.2, 5.5
  planner = ccem.make_planner(toy_model(lo, hi), CFG)
  out = planner(start(3.0), ccem.initial_means(1, CFG, 1), jnp.array([True]),
                jax.random.PRNGKey(0)[None], 0.5, float(H))
  _, cost = rollout(3.0, out.mean[0], lo, hi)
  assert cost == 1 and float(out.action[0, 0]) < 0
  assert float(out.metrics['safe_frac'][0]) == 0.0
  np.testing.assert_allclose(out.metrics['elite_cost'][0], 1.0)  # L = H: J_C' = count


def test_episode_scaling_of_the_cost_estimate():
  lo, hi = 1.2, 5.5
  planner = ccem.make_planner(toy_model(lo, hi), CFG)
  out = planner(start(3.0), ccem.initial_means(1, CFG, 1), jnp.array([True]),
                jax.random.PRNGKey(0)[None], 0.5, 100.0)
  np.testing.assert_allclose(out.metrics['elite_cost'][0], 100.0 / H)


def test_lagrangian_ranks_safe_plans_by_cost_return():
  # No instantaneous cost anywhere (all plans safe), but the cost critic says
  # "beyond x = 3 is risky". OSRP ignores it; OSRP-Lag with a large multiplier obeys.
  cost_value = lambda s: (s['x'] > 3.0).astype(jnp.float32)
  model = toy_model(100., 101., cost_value=cost_value)
  final = {}
  for lag in (False, True):
    cfg = dataclasses.replace(CFG, lagrangian=lag)
    planner = ccem.make_planner(model, cfg)
    out = planner(start(0.0), ccem.initial_means(1, cfg, 1), jnp.array([True]),
                  jax.random.PRNGKey(0)[None], 0.5, float(H), 100.0)
    final[lag] = rollout(0.0, out.mean[0], 100., 101.)[0][-1]
  assert final[False] > 4.0 and final[True] <= 3.0, final


def test_actor_sequences_and_momentum():
  # Gaussian samples barely move (init_std tiny, mean 0); the actor always says +1.
  # The actor sequences are the elites: mean = 0.1 * 0 + 0.9 * 1 everywhere.
  cfg = ccem.CCEMConfig(horizon=3, samples=8, elites=4, iterations=1, init_std=1e-3,
                        mixture=0.5, gamma=0.99, return_lambda=0.95)
  actor = lambda key, s: jnp.ones((s['x'].shape[0], 1))
  out = ccem.make_planner(toy_model(100., 101., actor=actor), cfg)(
      start(0.0), ccem.initial_means(1, cfg, 1), jnp.array([True]),
      jax.random.PRNGKey(0)[None], 0.5, 3.0)
  np.testing.assert_allclose(out.mean[0, :, 0], 0.9, rtol=1e-6)
  np.testing.assert_allclose(out.metrics['std'][0], 0.0, atol=1e-6)


def test_batched_equals_alone_and_sampling():
  lo, hi = 1.7, 2.3
  planner = ccem.make_planner(toy_model(lo, hi), CFG)
  keys = jax.random.split(jax.random.PRNGKey(3), 2)
  starts = {'x': jnp.array([0.0, 1.5])}
  means = jnp.stack([jnp.zeros((H, 1)), jnp.full((H, 1), 0.5)])
  resets = jnp.array([True, False])
  both = planner(starts, means, resets, keys, 0.5, float(H), 0.0, True)
  for b in range(2):
    one = planner(jax.tree_util.tree_map(lambda v: v[b:b + 1], starts), means[b:b + 1],
                  resets[b:b + 1], keys[b:b + 1], 0.5, float(H), 0.0, True)
    np.testing.assert_allclose(one.mean[0], both.mean[b], atol=1e-6)
    np.testing.assert_allclose(one.action[0], both.action[b], atol=1e-6)
  # sample=True draws around mu_1; sample=False returns mu_1 itself.
  det = planner(starts, means, resets, keys, 0.5, float(H), 0.0, False)
  np.testing.assert_allclose(det.action, det.mean[:, 0], atol=1e-7)
  np.testing.assert_allclose(det.mean, both.mean, atol=1e-7)
  assert np.all(np.abs(both.action) <= 1.0)


@pytest.mark.parametrize('lagrangian', [False, True])
def test_heads_after_the_rollout_equal_heads_in_the_loop(lagrangian):
  """Where the heads run is a speed choice only: same plan, same scores."""
  cfg = dataclasses.replace(CFG, mixture=0.1, lagrangian=lagrangian)
  actor = lambda key, s: jnp.clip(0.5 + 0.1 * jax.random.normal(key, (s['x'].shape[0], 1)), -1, 1)
  model = toy_model(1.7, 2.3, cost_value=lambda s: 0.1 * s['x'], actor=actor)
  args = ({'x': jnp.array(0.5)}, jnp.full((H, 1), 0.3), jnp.array(False),
          jax.random.PRNGKey(4), 0.5, float(H), 0.2, True)
  after = jax.jit(lambda *a: ccem.plan(model, cfg, *a, heads_in_loop=False))(*args)
  inside = jax.jit(lambda *a: ccem.plan(model, cfg, *a, heads_in_loop=True))(*args)
  for x, y in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(inside)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
  # with CFG one environment runs the heads after the rollout and two run them inside
  # the loop, so test_batched_equals_alone_and_sampling compares the two paths too
  assert 1 * CFG.samples <= ccem.HEADS_AFTER_ROLLOUT_MAX_ROWS < 2 * CFG.samples
