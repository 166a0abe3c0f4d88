"""model.cost_overshoot: K-step prior rollouts along the recorded actions (RSSM.overshoot)
and their cost loss in the world-model loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.config.load import ConfigError, load_config
from safedreamer.model.world_model import WorldModel

OBS = {'vec': ((5,), np.float32)}
B, T, K = 3, 8, 3


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  is_first = np.zeros((B, T), bool)
  is_first[:, 0] = True
  is_first[1, 5] = True                       # an episode starts inside row 1
  cost = (rng.uniform(size=(B, T)) < 0.3) * rng.uniform(1, 3, (B, T))
  return {'vec': jnp.asarray(rng.normal(size=(B, T, 5)), jnp.float32),
          'action': jnp.asarray(rng.uniform(-1, 1, (B, T, 2)), jnp.float32),
          'reward': jnp.asarray(rng.normal(size=(B, T)), jnp.float32),
          'cost': jnp.asarray(cost, jnp.float32),
          'is_first': jnp.asarray(is_first), 'is_terminal': jnp.zeros((B, T), bool)}


def _wm(k, every=1):
  cfg = load_config(['tiny'], {'model.cost_overshoot': k, 'model.overshoot_every': every})
  wm = WorldModel(cfg.model, OBS, act_dim=2)
  return wm, wm.init(jax.random.PRNGKey(0))


def test_rollout_valid_mask_and_first_step_match_the_posterior():
  wm, params = _wm(K)
  batch = _batch()
  embed = wm.encode(params, batch)
  keys = jax.random.split(jax.random.PRNGKey(1), T)
  states, _, _ = wm.rssm.observe(params['rssm'], embed, batch['action'], batch['is_first'], keys)
  rolled, valid = wm.rssm.overshoot(params['rssm'], states, batch['action'], batch['is_first'],
                                    K, jax.random.PRNGKey(2))
  assert rolled['deter'].shape == (K, B, T, 32) and valid.shape == (K, B, T)
  first = np.asarray(batch['is_first'])
  expect = np.array([[[t + k < T and not first[b, t + 1:t + k + 1].any()
                       for t in range(T)] for b in range(B)] for k in range(1, K + 1)])
  np.testing.assert_array_equal(np.asarray(valid), expect)
  assert not valid[0, 1, 4] and valid[0, 1, 5] and not valid[2, 1, 3]
  # one step ahead the deterministic state is the posterior's next one: h_{t+1} =
  # GRU(h_t, z_t, a_{t+1}) either way, before any prior sample enters
  got, want = np.asarray(rolled['deter'][0, :, :-1]), np.asarray(states['deter'][:, 1:])
  ok = expect[0, :, :-1]
  np.testing.assert_allclose(got[ok], want[ok], atol=1e-5)
  assert not np.allclose(got[1, 4], want[1, 4], atol=1e-3)   # row 1 restarts at t = 5
  # every 3rd start: the same mask's columns 0, 3, 6 and the same first step
  sub, sub_valid = wm.rssm.overshoot(params['rssm'], states, batch['action'],
                                     batch['is_first'], K, jax.random.PRNGKey(2), every=3)
  np.testing.assert_array_equal(np.asarray(sub_valid), expect[:, :, ::3])
  np.testing.assert_allclose(sub['deter'][0], rolled['deter'][0, :, ::3], atol=1e-6)


def test_loss_adds_the_mean_valid_cost_nll_and_trains_the_dynamics():
  batch, key = _batch(1), jax.random.PRNGKey(3)
  wm0, params = _wm(0)
  wmk, _ = _wm(K)
  base, (m0, _) = wm0.loss(params, batch, key)
  total, (mk, _) = wmk.loss(params, batch, key)
  assert 'wm/cost_overshoot' not in m0
  np.testing.assert_allclose(float(total), float(base) + float(mk['wm/cost_overshoot']),
                             rtol=1e-5)
  cost, first = np.asarray(batch['cost']), np.asarray(batch['is_first'])
  targets = [cost[b, t + k] for k in range(1, K + 1) for b in range(B) for t in range(T)
             if t + k < T and not first[b, t + 1:t + k + 1].any()]
  np.testing.assert_allclose(float(mk['wm/cost_overshoot_true']), np.mean(targets), rtol=1e-5)
  _, (m2, _) = _wm(K, every=2)[0].loss(params, batch, key)
  targets = [cost[b, t + k] for k in range(1, K + 1) for b in range(B) for t in range(0, T, 2)
             if t + k < T and not first[b, t + 1:t + k + 1].any()]
  np.testing.assert_allclose(float(m2['wm/cost_overshoot_true']), np.mean(targets), rtol=1e-5)
  # the rollout's loss reaches the dynamics (the GRU), not only the cost head (whose
  # output layer starts at zero, so it is randomised first: else no gradient leaves it)
  leaves, tree = jax.tree.flatten(params['cost'])
  rand = [0.3 * jax.random.normal(jax.random.PRNGKey(i), x.shape) for i, x in enumerate(leaves)]
  params = dict(params, cost=jax.tree.unflatten(tree, rand))
  grads = jax.grad(lambda p: wmk.overshoot_loss(p, jax.lax.stop_gradient(
      wm0.rssm.observe(p['rssm'], wm0.encode(p, batch), batch['action'], batch['is_first'],
                       jax.random.split(key, T))[0]), batch, key)[0])(params)
  gru = jax.tree.leaves(grads['rssm']['gru'])
  assert max(float(jnp.abs(g).max()) for g in gru) > 0
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads['decoder']))


def test_overshoot_must_leave_steps_to_predict():
  with pytest.raises(ConfigError, match='cost_overshoot'):
    load_config(['tiny'], {'model.cost_overshoot': 16})   # tiny's batch_length is 16
