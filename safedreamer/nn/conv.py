"""Convolutional image encoder and transposed-convolution decoder.

Encoder: stride-2 4x4 convolutions of depth d, 2d, 4d, ... until the image is
`min_res` wide (64x64 -> 4x4 in four stages), each followed by LayerNorm + SiLU
over channels, then flattened. Decoder: the mirror image, from a linear map of the
feature to the smallest grid, ending in a transposed conv with C output channels.
Leading batch axes [...] are flattened for the convolutions and restored after.
"""
from __future__ import annotations

import math

import flax.linen as nn

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
      x = nn.ConvTranspose(out, (4, 4), strides=(2, 2), padding='SAME', use_bias=last,
                           kernel_init=INIT, name=f'deconv{i}')(x)
      if not last:
        x = norm_act(x, name=f'norm{i}')
    return x.reshape(lead + (h, w, c))
