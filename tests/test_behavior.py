"""behavior/: lambda-returns, discount weights, return normaliser, augmented Lagrangian."""
import jax
import jax.numpy as jnp
import numpy as np

from safedreamer.behavior import lagrangian as lag
from safedreamer.behavior import returns as ret


def test_lambda_returns_three_steps_by_hand():
  # r_1..r_3, V_0..V_3, c_1..c_3; gamma = return_lambda = 0.5
  reward = jnp.array([1.0, 2.0, 3.0])
  value = jnp.array([10.0, 20.0, 30.0, 40.0])
  cont = jnp.array([1.0, 0.0, 1.0])
  # R_3 = V_3 = 40
  # R_2 = 3 + .5 * 1 * (.5 * 40 + .5 * 40) = 23
  # R_1 = 2 + .5 * 0 * (...)              = 2     (terminated after s_2)
  # R_0 = 1 + .5 * 1 * (.5 * 20 + .5 * 2)  = 6.5
  out = ret.lambda_returns(reward, value, cont, gamma=0.5, return_lambda=0.5)
  np.testing.assert_allclose(out, [6.5, 2.0, 23.0])
  # batched along a second axis
  out = ret.lambda_returns(reward[:, None].repeat(2, 1), value[:, None].repeat(2, 1),
                           cont[:, None].repeat(2, 1), 0.5, 0.5)
  np.testing.assert_allclose(out[:, 1], [6.5, 2.0, 23.0])


def test_lambda_returns_limits():
  r, v, c = jnp.array([1.0, 1.0]), jnp.array([0.0, 5.0, 7.0]), jnp.ones(2)
  # return_lambda = 0: one-step TD targets r + gamma V'
  np.testing.assert_allclose(ret.lambda_returns(r, v, c, 0.9, 0.0), [1 + 4.5, 1 + 6.3], rtol=1e-6)
  # return_lambda = 1: Monte Carlo with a bootstrap at the end
  np.testing.assert_allclose(ret.lambda_returns(r, v, c, 0.9, 1.0), [1 + 0.9 * (1 + 6.3), 1 + 6.3],
                             rtol=1e-6)


def test_discount_weights_by_hand():
  w = ret.discount_weights(jnp.array([1.0, 1.0, 0.0, 1.0]), 0.5)
  np.testing.assert_allclose(w, [1.0, 0.5, 0.0, 0.0])
  w = ret.discount_weights(jnp.array([0.0, 1.0]), 0.5)  # start state is terminal
  np.testing.assert_allclose(w, [0.0, 0.0])


def test_retnorm_ema_by_hand():
  x = jnp.arange(101.0)  # P5 = 5, P95 = 95
  s = ret.retnorm_init()
  s = ret.retnorm_update(s, x, decay=0.99)
  np.testing.assert_allclose([s['low'], s['high']], [0.05, 0.95], rtol=1e-5)
  np.testing.assert_allclose(ret.retnorm_scale(s), 1.0)  # max(1, 0.9)
  s = ret.retnorm_update(s, x, decay=0.99)
  np.testing.assert_allclose([s['low'], s['high']], [0.0995, 1.8905], rtol=1e-5)
  np.testing.assert_allclose(ret.retnorm_scale(s), 1.791, rtol=1e-5)
  s = ret.retnorm_update(s, x, decay=0.0)
  np.testing.assert_allclose(ret.retnorm_scale(s), 90.0, rtol=1e-5)


def test_retnorm_floor_by_hand():
  s = {'low': jnp.asarray(-0.1), 'high': jnp.asarray(0.2)}  # range 0.3
  np.testing.assert_allclose(ret.retnorm_scale(s), 1.0)
  np.testing.assert_allclose(ret.retnorm_scale(s, floor=0.1), 0.3, rtol=1e-6)
  np.testing.assert_allclose(ret.retnorm_scale(s, floor=0.5), 0.5)


def test_psi_both_branches_by_hand():
  # active: lam + mu g = 1 + 2 * 0.5 = 2 > 0 -> lam g + mu/2 g^2 = 0.5 + 0.25
  np.testing.assert_allclose(lag.psi(jnp.float32(0.5), 1.0, 2.0), 0.75)
  np.testing.assert_allclose(jax.grad(lag.psi)(jnp.float32(0.5), 1.0, 2.0), 2.0)
  # inactive: lam + mu g = 1 - 2 <= 0 -> -lam^2 / (2 mu) = -0.25, no gradient
  np.testing.assert_allclose(lag.psi(jnp.float32(-1.0), 1.0, 2.0), -0.25)
  np.testing.assert_allclose(jax.grad(lag.psi)(jnp.float32(-1.0), 1.0, 2.0), 0.0)
  # continuous at the switch g = -lam / mu
  np.testing.assert_allclose(lag.psi(jnp.float32(-0.5), 1.0, 2.0), -0.25)


def test_lagrangian_update_by_hand():
  s = {'lam': jnp.float32(1.0), 'mu': jnp.float32(2.0)}
  s1 = lag.lagrangian_update(s, jnp.float32(0.5), power=0.1, penalty_max=10.0)
  np.testing.assert_allclose([s1['lam'], s1['mu']], [2.0, 2.2], rtol=1e-6)
  s2 = lag.lagrangian_update(s, jnp.float32(-1.0), power=0.1, penalty_max=2.0)
  np.testing.assert_allclose([s2['lam'], s2['mu']], [0.0, 2.0])  # lam >= 0, mu capped
  init = lag.lagrangian_init(1e-6, 5e-9)
  np.testing.assert_allclose([init['lam'], init['mu']], [1e-6, 5e-9])


def test_cost_estimate_sum_or_mean():
  rets = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # [H=2, N=2]
  np.testing.assert_allclose(lag.cost_estimate(rets, pessimistic=True), 5.0)   # mean(4, 6)
  np.testing.assert_allclose(lag.cost_estimate(rets, pessimistic=False), 2.5)  # mean(2, 3)


def test_lambda_returns_cut_at_episode_starts_by_hand():
  # real r_0..r_4 (r_t for arriving at s_t), bootstraps B_0..B_4, c_t, first f_t;
  # gamma = return_lambda = 0.5; s_3 starts a new episode, s_2 is terminal
  reward = jnp.array([9.0, 1.0, 2.0, 9.0, 4.0])
  boot = jnp.array([10.0, 20.0, 30.0, 40.0, 50.0])
  cont = jnp.array([1.0, 1.0, 0.0, 1.0, 1.0])
  first = jnp.array([True, False, False, True, False])
  # R_4 = B_4 = 50 (not returned)
  # R_3 = 4 + .5 * 1 * (.5 * 50 + .5 * 50) = 29
  # R_2 = B_2 = 30                           (s_3 starts a new episode)
  # R_1 = 2 + .5 * 0 * (...)        = 2      (s_2 is terminal)
  # R_0 = 1 + .5 * (.5 * 20 + .5 * 2) = 6.5
  out = ret.lambda_returns(reward[1:], boot, cont[1:], gamma=0.5, return_lambda=0.5,
                           cut=first[1:])
  np.testing.assert_allclose(out, [6.5, 2.0, 30.0, 29.0])
  # without cuts or terminals it is the uncut recursion on the real signal
  ones, none = jnp.ones(4), jnp.zeros(4, bool)
  np.testing.assert_allclose(ret.lambda_returns(reward[1:], boot, ones, 0.9, 0.7, cut=none),
                             ret.lambda_returns(reward[1:], boot, ones, 0.9, 0.7), rtol=1e-6)
