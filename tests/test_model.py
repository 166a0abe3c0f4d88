"""model/: RSSM resets, encoder/decoder shapes (vector and image), world-model loss."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from safedreamer.agents.dreamer_core import compiler_options
from safedreamer.config.load import load_config
from safedreamer.model.codec import Codec, split_keys
from safedreamer.model.world_model import WorldModel

OBS = {'vec': ((5,), np.float32), 'other': ((3,), np.float32), 'log_x': ((1,), np.float32),
       'count': ((), np.int32)}


def test_split_keys_vector_and_image():
  space = dict(OBS, image_front=((64, 64, 3), np.uint8), image_rear=((64, 64, 3), np.uint8))
  vec, img = split_keys(space)
  assert vec == {'other': 3, 'vec': 5}  # 1-D floats; 'log_' and scalars ignored
  assert list(img) == ['image_front', 'image_rear']
  with pytest.raises(ValueError):
    split_keys({'a': ((64, 64, 3), np.uint8), 'b': ((32, 32, 3), np.uint8)})


def test_rssm_is_first_resets_state():
  cfg = load_config(['tiny'])
  rssm = WorldModel(cfg.model, OBS, act_dim=2).rssm
  B, T, E = 3, 8, 7
  rng = np.random.default_rng(0)
  embed = jnp.asarray(rng.normal(size=(B, T, E)), jnp.float32)
  action = jnp.asarray(rng.uniform(-1, 1, (B, T, 2)), jnp.float32)  # non-zero at the reset too
  is_first = np.zeros((B, T), bool)
  is_first[:, T // 2] = True
  keys = jax.random.split(jax.random.PRNGKey(1), T)
  p = rssm.init(jax.random.PRNGKey(2), E)
  full, full_logits, _ = rssm.observe(p, embed, action, jnp.asarray(is_first), keys)
  half, half_logits, _ = rssm.observe(p, embed[:, T // 2:], action[:, T // 2:],
                                      jnp.asarray(is_first[:, T // 2:]), keys[T // 2:])
  for k in ('deter', 'stoch'):
    np.testing.assert_allclose(full[k][:, T // 2:], half[k], atol=1e-6)
  np.testing.assert_allclose(full_logits[:, T // 2:], half_logits, atol=1e-5)
  # without the flag the second half would depend on the first
  no_reset, _, _ = rssm.observe(p, embed, action, jnp.zeros((B, T), bool), keys)
  assert not np.allclose(no_reset['deter'][:, T // 2], half['deter'][:, 0], atol=1e-3)


def test_codec_round_trip_shapes_vector_and_images():
  space = {'vec': ((5,), np.float32), 'image_front': ((64, 64, 3), np.uint8),
           'image_rear': ((64, 64, 3), np.uint8)}
  codec = Codec(space, mlp_layers=1, mlp_units=16, cnn_depth=4)
  B, T, F = 2, 3, 24
  obs = {'vec': jnp.ones((B, T, 5)),
         'image_front': jnp.full((B, T, 64, 64, 3), 255, jnp.uint8),
         'image_rear': jnp.zeros((B, T, 64, 64, 3), jnp.uint8)}
  enc = codec.encoder.init(jax.random.PRNGKey(0), obs)['params']
  embed = codec.encode(enc, obs)
  # MLP 16 + CNN 4x4 x 8d (d = 4) = 16 + 512
  assert embed.shape == (B, T, 16 + 4 * 4 * 32)
  dec = codec.decoder.init(jax.random.PRNGKey(1), jnp.zeros((B, T, F)))['params']
  pred = codec.decode(dec, jnp.zeros((B, T, F)))
  assert {k: v.shape for k, v in pred.items()} == {
      'vec': (B, T, 5), 'image_front': (B, T, 64, 64, 3), 'image_rear': (B, T, 64, 64, 3)}
  loss, parts = codec.loss(dec, jnp.zeros((B, T, F)), obs)
  assert loss.shape == (B, T) and set(parts) == {'vec', 'image_front', 'image_rear'}
  # a 96x96 image stops at 6x6
  codec = Codec({'image': ((96, 96, 3), np.uint8)}, 1, 16, 4)
  enc = codec.encoder.init(jax.random.PRNGKey(0), codec.dummy_obs())['params']
  assert codec.encode(enc, codec.dummy_obs()).shape == (1, 6 * 6 * 32)


@pytest.mark.parametrize('cost_head', ['twohot', 'hurdle'])
def test_world_model_loss_decreases_on_fixed_batch(cost_head):
  cfg = load_config(['tiny'], {'model.lr': 1e-3, 'model.cost_head': cost_head})
  wm = WorldModel(cfg.model, OBS, act_dim=2)
  params = wm.init(jax.random.PRNGKey(0))
  B, T = 4, 16
  rng = np.random.default_rng(0)
  t = np.arange(T)[None, :, None]
  batch = {
      'vec': jnp.asarray(np.sin(t * 0.3 + rng.normal(size=(B, 1, 5))), jnp.float32),
      'other': jnp.asarray(rng.normal(size=(B, T, 3)), jnp.float32),
      'action': jnp.asarray(rng.uniform(-1, 1, (B, T, 2)), jnp.float32),
      'reward': jnp.asarray(np.cos(t[..., 0] * 0.3).repeat(B, 0), jnp.float32),
      'cost': jnp.asarray((rng.uniform(size=(B, T)) < 0.2), jnp.float32),
      'is_first': jnp.zeros((B, T), bool).at[:, 0].set(True),
      'is_terminal': jnp.zeros((B, T), bool),
  }
  opt = optax.adam(cfg.model.lr)
  state = opt.init(params)

  @partial(jax.jit, compiler_options=compiler_options())
  def step(params, state, key):
    (loss, (metrics, _)), grads = jax.value_and_grad(wm.loss, has_aux=True)(params, batch, key)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state, metrics

  losses, cost_losses = [], []
  for i in range(60):
    params, state, metrics = step(params, state, jax.random.PRNGKey(i))
    losses.append(float(metrics['wm/loss']))
    cost_losses.append(float(metrics['wm/cost']))
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
  assert np.mean(cost_losses[-5:]) < 0.9 * np.mean(cost_losses[:5]), cost_losses
  # the cost prediction is the head's mean: non-negative, one per step
  feat = jnp.zeros((B, T, wm.feat_dim))
  assert wm.cost(params, feat).shape == (B, T)
  if cost_head == 'hurdle':
    assert wm.cost_head.apply({'params': params['cost']}, feat).shape == (B, T, 2)
    assert float(wm.cost(params, feat).min()) >= 0
  # the posterior / prior states of the loss have the batch layout
  _, (_, post) = wm.loss(params, batch, jax.random.PRNGKey(0))
  assert post['deter'].shape == (B, T, cfg.model.deter)
  assert post['stoch'].shape == (B, T, cfg.model.stoch * cfg.model.classes)
