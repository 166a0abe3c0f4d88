"""Convolutional image encoder and transposed-convolution decoder.

Encoder: stride-2 4x4 convolutions of depth d, 2d, 4d, ... until the image is
`min_res` wide (64x64 -> 4x4 in four stages), each followed by LayerNorm + SiLU
over channels, then flattened. Decoder: the mirror image, from a linear map of the
feature to the smallest grid, through stride-2 4x4 transposed convolutions
(`up_conv`), ending with C output channels.
Leading batch axes [...] are flattened for the convolutions and restored after.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from safedreamer.nn.layers import INIT, Dense, norm_act


def num_stages(size: int, min_res: int = 4) -> int:
  """Number of stride-2 stages that bring `size` down to about `min_res`."""
  stages = max(1, int(math.log2(size // min_res)))
  if size % (2 ** stages):
    raise ValueError(f'image size {size} is not divisible by 2^{stages}')
  return stages


class ConvEncoder(nn.Module):
  depth: int
  min_res: int = 4

  @nn.compact
  def __call__(self, x):  # [..., H, W, C] float
    lead, hwc = x.shape[:-3], x.shape[-3:]
    x = x.reshape((-1,) + hwc)
    for i in range(num_stages(hwc[0], self.min_res)):
      x = nn.Conv(self.depth * 2 ** i, (4, 4), strides=2, padding='SAME', use_bias=False,
                  kernel_init=INIT, name=f'conv{i}')(x)
      x = norm_act(x, name=f'norm{i}')
    return x.reshape(lead + (-1,))


# Stride-2 4x4 transposed convolution, out[2i + k - 1] += in[i] K[k] along each axis,
# computed as its four output phases: output 2m + p reads input m + d through kernel
# tap k = p + 1 - 2d, i.e. the (d, k) pairs below. Same result as the direct
# (input-dilated) form, whose gradient XLA:CPU runs ~10x slower than these four
# stride-1 2x2 convolutions.
_UP_TAPS = {0: ((-1, 3), (0, 1)), 1: ((0, 2), (1, 0))}
_DN = ('NHWC', 'HWIO', 'NHWC')


def up_conv(x, kernel):
  """[N, H, W, C] x [4, 4, C, O] -> [N, 2H, 2W, O] (stride-2 transposed conv)."""
  n, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = []
  for p in (0, 1):
    cols = []
    for q in (0, 1):
      (dy, _), (dx, _) = _UP_TAPS[p][0], _UP_TAPS[q][0]
      window = xp[:, 1 + dy:1 + dy + h + 1, 1 + dx:1 + dx + w + 1]
      taps = kernel[np.array([k for _, k in _UP_TAPS[p]])][:, np.array([k for _, k in _UP_TAPS[q]])]
      cols.append(jax.lax.conv_general_dilated(window, taps, (1, 1), 'VALID',
                                               dimension_numbers=_DN))
    rows.append(jnp.stack(cols, 3))               # [N, H, W, 2 (q), O]
  return jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, kernel.shape[-1])  # [N, H, 2 (p), W, 2, O]


class UpConv(nn.Module):
  features: int
  use_bias: bool = False

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', INIT, (4, 4, x.shape[-1], self.features))
    y = up_conv(x, kernel)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y


class ConvDecoder(nn.Module):
  shape: tuple  # (H, W, C) of the output
  depth: int
  min_res: int = 4

  @nn.compact
  def __call__(self, feat):  # [..., F] -> [..., H, W, C]
    h, w, c = self.shape
    stages = num_stages(h, self.min_res)
    lead = feat.shape[:-1]
    ch = self.depth * 2 ** (stages - 1)
    x = Dense(ch * (h >> stages) * (w >> stages), name='proj')(feat)
    x = x.reshape((-1, h >> stages, w >> stages, ch))
    for i in reversed(range(stages)):
      last = i == 0
      out = c if last else self.depth * 2 ** (i - 1)
      x = UpConv(out, use_bias=last, name=f'deconv{i}')(x)
      if not last:
        x = norm_act(x, name=f'norm{i}')
    return x.reshape(lead + (h, w, c))
