"""Observation encoder and decoder over a dict observation space.

Vector keys (1-D float entries) are symlog-squashed, concatenated and fed to one
MLP; image keys (H x W x C uint8 entries of the same H x W) are scaled to
[-0.5, 0.5], concatenated along channels and fed to one CNN. The embedding is the
concatenation of both. Keys starting with 'log_' and anything else are ignored.

The decoder mirrors it: vector predictions are regressed in symlog space (MSE
summed over dimensions), image predictions against the scaled image (MSE summed
over pixels and channels). `Codec.loss` returns the per-step sum over keys.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from safedreamer.nn.conv import ConvDecoder, ConvEncoder
from safedreamer.nn.functions import symlog
from safedreamer.nn.layers import MLP, Dense


def split_keys(obs_space: dict) -> tuple[dict, dict]:
  """({vector key: dim}, {image key: (H, W, C)}) in sorted key order."""
  vec, img = {}, {}
  for key in sorted(obs_space):
    shape, dtype = obs_space[key]
    if key.startswith('log_'):
      continue
    dtype = np.dtype(dtype)
    if len(shape) == 1 and np.issubdtype(dtype, np.floating):
      vec[key] = int(shape[0])
    elif len(shape) == 3 and dtype == np.uint8:
      img[key] = tuple(int(s) for s in shape)
  if not vec and not img:
    raise ValueError(f'no usable observation keys in {sorted(obs_space)}')
  sizes = {s[:2] for s in img.values()}
  if len(sizes) > 1:
    raise ValueError(f'image keys must share one size, got {sorted(sizes)}')
  return vec, img


def _scale_image(x):
  """uint8 pixels -> floats in [-0.5, 0.5] (the decoder predicts this space)."""
  return x.astype(jnp.float32) / 255.0 - 0.5


def _image_input(obs, keys):
  return _scale_image(jnp.concatenate([obs[k] for k in keys], -1))


class _CodecModule(nn.Module):
  """Fields shared by the encoder and the decoder."""
  vec: dict
  img: dict
  mlp_layers: int
  mlp_units: int
  cnn_depth: int


class Encoder(_CodecModule):

  @nn.compact
  def __call__(self, obs):
    outs = []
    if self.vec:
      x = jnp.concatenate([symlog(obs[k].astype(jnp.float32)) for k in self.vec], -1)
      outs.append(MLP(self.mlp_layers, self.mlp_units, name='mlp')(x))
    if self.img:
      outs.append(ConvEncoder(self.cnn_depth, name='cnn')(_image_input(obs, self.img)))
    return jnp.concatenate(outs, -1)


class Decoder(_CodecModule):

  @nn.compact
  def __call__(self, feat):
    out = {}
    if self.vec:
      x = MLP(self.mlp_layers, self.mlp_units, name='mlp')(feat)
      x = Dense(sum(self.vec.values()), name='vec_out')(x)
      out.update(zip(self.vec, jnp.split(x, np.cumsum(list(self.vec.values()))[:-1], -1)))
    if self.img:
      h, w, _ = next(iter(self.img.values()))
      chans = [s[2] for s in self.img.values()]
      x = ConvDecoder((h, w, sum(chans)), self.cnn_depth, name='cnn')(feat)
      out.update(zip(self.img, jnp.split(x, np.cumsum(chans)[:-1], -1)))
    return out


class Codec:
  """Encoder + decoder modules for one observation space, with their loss."""

  def __init__(self, obs_space, mlp_layers, mlp_units, cnn_depth):
    self.vec, self.img = split_keys(obs_space)
    args = (self.vec, self.img, mlp_layers, mlp_units, cnn_depth)
    self.encoder, self.decoder = Encoder(*args), Decoder(*args)
    self.keys = list(self.vec) + list(self.img)

  def dummy_obs(self, n=1):
    obs = {k: jnp.zeros((n, d)) for k, d in self.vec.items()}
    obs.update({k: jnp.zeros((n,) + s, jnp.uint8) for k, s in self.img.items()})
    return obs

  def encode(self, params, obs):
    return self.encoder.apply({'params': params}, obs)

  def decode(self, params, feat):
    return self.decoder.apply({'params': params}, feat)

  def loss(self, params, feat, obs):
    """Summed reconstruction loss per step [...] (and per-key means for logs)."""
    pred = self.decode(params, feat)
    total, parts = 0.0, {}
    for k in self.vec:
      err = jnp.sum(jnp.square(pred[k] - symlog(obs[k].astype(jnp.float32))), -1)
      total, parts[k] = total + err, err.mean()
    for k in self.img:
      target = _scale_image(obs[k])
      err = jnp.sum(jnp.square(pred[k] - target), (-3, -2, -1))
      total, parts[k] = total + err, err.mean()
    return total, parts
