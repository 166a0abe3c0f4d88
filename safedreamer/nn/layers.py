"""Small flax.linen building blocks: dense + LayerNorm + SiLU stacks and heads.

Dense flattens all leading axes into one before its matmul: on XLA's CPU backend
the weight gradient of a contraction over two batch axes was measured 2-3x slower
than the same contraction over one.

Dense layers followed by a LayerNorm carry no bias (the norm has one). Kernels use
a truncated-normal fan-average initialiser; heads may zero their output layer so
that initial predictions are exactly 0 (reward, cost, critics).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

INIT = nn.initializers.variance_scaling(1.0, 'fan_avg', 'truncated_normal')
NORM_EPS = 1e-3


class Dense(nn.Module):
  features: int
  use_bias: bool = True
  kernel_init: object = INIT

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], self.features))
    y = x.reshape(-1, x.shape[-1]) @ kernel
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y.reshape(x.shape[:-1] + (self.features,))


def layer_norm(x, scale, bias, eps=NORM_EPS):
  """(x - mean) / sqrt(var + eps) * scale + bias over the last axis."""
  xc = x - jnp.mean(x, -1, keepdims=True)
  return xc * jax.lax.rsqrt(jnp.mean(xc * xc, -1, keepdims=True) + eps) * scale + bias


class LayerNorm(nn.Module):
  eps: float = NORM_EPS

  @nn.compact
  def __call__(self, x):
    n = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (n,))
    bias = self.param('bias', nn.initializers.zeros, (n,))
    return layer_norm(x, scale, bias, self.eps)


def norm_act(x, name=None):
  """LayerNorm then SiLU (call inside a compact module)."""
  return nn.silu(LayerNorm(name=name)(x))


class MLP(nn.Module):
  """`layers` x (Dense(units) -> LayerNorm -> SiLU) on the last axis."""
  layers: int
  units: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.layers):
      x = norm_act(Dense(self.units, use_bias=False, name=f'dense{i}')(x), name=f'norm{i}')
    return x


class Head(nn.Module):
  """MLP followed by a linear output of size `out` (zero-initialised if asked)."""
  layers: int
  units: int
  out: int
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    x = MLP(self.layers, self.units, name='mlp')(x)
    init = nn.initializers.zeros if self.zero_init else INIT
    return Dense(self.out, kernel_init=init, name='out')(x)
