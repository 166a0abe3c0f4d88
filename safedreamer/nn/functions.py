"""Pure scalar-transform math: symlog / symexp and two-hot discrete regression.

Two-hot regression (DreamerV3): a scalar y is predicted as a softmax over `bins`
points equally spaced in symlog space, standing for the values symexp(bin). The
target puts its weight on the two values around y, linearly interpolated in the
original space, so the expectation over the target equals y exactly (inside the
range), and the prediction's mean is the softmax's expectation of those values. A
head fitted to a stochastic target therefore predicts its mean: taking the
expectation in symlog space instead (DreamerV3 1.x, which the authors forked) gives
symexp(E[symlog y]) <= E[y], biased low by Jensen's inequality wherever the target
varies (a return that is 0 or 20 with even odds reads 3.6, not 10), which is how a
cost critic's lambda-returns look near hazards.

Hurdle regression (for rare non-negative costs, `model.cost_head='hurdle'`): two
outputs, the logit of P(y > 0) and symlog of the size of y when it is > 0; the mean
is P(y > 0) * size, computed in the original space.

Weighted costs (the authors weight the cost loss x10 on costly steps): a weight w on
the positive outcomes of a likelihood fit multiplies the fitted odds of "y > 0" by w
(p becomes w p / (1 + (w - 1) p)), so the means below take the same weight and divide
it back out of the fitted probability (a logit correction by -log w). The cost head's
predictions then estimate the true expected cost while its loss still emphasises the
rare costly steps. `twohot_cost_mean` counts a two-hot head's mass on negative
values as no cost.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from safedreamer.nn import dists


def symlog(x):
  """sign(x) * log(1 + |x|)."""
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x):
  """Inverse of symlog: sign(x) * (exp(|x|) - 1)."""
  return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def twohot_bins(num: int, limit: float = 20.0):
  """`num` bin positions equally spaced in symlog space over [-limit, limit]; bin b
  stands for the value symexp(b). They are symmetric about 0 (`twohot_mean` relies on
  it), and an odd `num` puts one on 0 exactly."""
  return jnp.linspace(-limit, limit, num, dtype=jnp.float32)


def twohot_encode(y, bins):
  """Two-hot target of values `y` (original space) over the values symexp(bins).

  y: [...] -> [..., len(bins)]. Bin b's weight is a tent that falls linearly from 1 at
  its own value to 0 at its neighbours' (widths differ left and right): linear
  interpolation between the two values around y, all weight on a value that y hits
  exactly, and on the nearest edge for y outside the range. One elementwise pass.
  """
  values = symexp(bins)
  gaps = values[1:] - values[:-1]
  inf = jnp.full((1,), jnp.inf, values.dtype)
  right, left = jnp.concatenate([gaps, inf]), jnp.concatenate([inf, gaps])
  y = jnp.clip(y, values[0], values[-1])[..., None]
  width = jnp.where(y >= values, right, left)
  return jax.nn.relu(1.0 - jnp.abs(y - values) / width)


def twohot_mean(logits, bins):
  """Predicted mean: the softmax's expectation of the values symexp(bins), summed as
  v_b * (p_b - p_-b) over the positive values of the symmetric bins, so that mirrored
  masses cancel exactly (a uniform softmax, a zero-initialised head's, gives 0 and not
  float32's rounding of +-symexp(20) / 255). It divides by the partition sum last, so
  the gradient p_b (+-v_b - mean) uses that mean too (softmax's own backward pass would
  sum p_c v_c unpaired, and its rounding would swamp the gradient of a fresh head)."""
  e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, -1, keepdims=True)))
  mirrored = jnp.sum(jnp.where(bins > 0, (e - e[..., ::-1]) * symexp(bins), 0.0), -1)
  return mirrored / jnp.sum(e, -1)


def twohot_nll(logits, target, bins, extra=None, extra_weight=1.0, bin_weights=None):
  """Negative log-likelihood of the two-hot encoding of `target`.

  With `extra` (a second target), returns NLL(target) + extra_weight * NLL(extra)
  from one log-softmax and one reduction over the bins. `bin_weights` [bins]
  weighs the target's mass bin by bin."""
  two = twohot_encode(target, bins)
  if extra is not None:
    two = two + extra_weight * twohot_encode(extra, bins)
  if bin_weights is not None:
    two = two * bin_weights
  two = jax.lax.stop_gradient(two)
  return -jnp.sum(two * jax.nn.log_softmax(logits, -1), -1)


def positive_bins(bins):
  """Bins that stand for y > 0 (the bin at 0 excluded, whatever its float rounding)."""
  return bins > 0.5 * (bins[1] - bins[0])


def cost_prior(bins, rate: float = 4.0):
  """Logit offsets -rate * |bin| [bins] under a two-hot head for rare non-negative
  costs: with all-zero outputs (a fresh, zero-initialised head) its mass is on small
  values. Read by `twohot_cost_mean`, a uniform head would predict a cost of
  tens of millions (its mass reaches symexp(20) = 4.9e8); on this prior a fresh head
  predicts ~0.001-0.02 per step (31-255 bins, cost weight 10). An offset changes what the
  head starts from, not what it can fit."""
  return -rate * jnp.abs(bins)


def twohot_weighted_nll(logits, target, bins, pos_weight=1.0):
  """Two-hot NLL with the target's mass on positive bins weighted by `pos_weight`.

  For targets that are 0 or land on positive bins only (costs >= the first positive
  bin, e.g. counts), this is the NLL times `pos_weight` on the costly steps. The fit
  it leads to, p_w(b) proportional to w_b p(b), is undone exactly by
  `twohot_cost_mean(..., pos_weight)`."""
  weights = jnp.where(positive_bins(bins), pos_weight, 1.0)
  return twohot_nll(logits, target, bins, bin_weights=weights)


def twohot_cost_mean(logits, bins, pos_weight=1.0):
  """Mean of a non-negative quantity from a two-hot head fitted with
  `twohot_weighted_nll(..., pos_weight)`: the expectation of the positive values,
  with the weight's log taken off the positive bins' logits first (mass on negative
  bins counts as 0)."""
  pos = positive_bins(bins)
  probs = jax.nn.softmax(logits - jnp.where(pos, jnp.log(pos_weight), 0.0), -1)
  return jnp.sum(jnp.where(pos, probs * symexp(bins), 0.0), -1)


def hurdle_mean(out, pos_weight=1.0):
  """[..., 2] (logit of P(y > 0), symlog size) -> P(y > 0) * size, >= 0, for a head
  fitted with `hurdle_nll(..., pos_weight)` (its logit is corrected by -log w)."""
  prob = jax.nn.sigmoid(out[..., 0] - jnp.log(pos_weight))
  return prob * jnp.maximum(symexp(out[..., 1]), 0.0)


def hurdle_nll(out, target, pos_weight=1.0):
  """Loss of a hurdle prediction [..., 2] for targets y >= 0 [...]: Bernoulli NLL of
  y > 0 (times `pos_weight` where y > 0) plus, where y > 0 only, the squared error of
  the size output against symlog(y)."""
  pos = target > 0
  bce = dists.bernoulli_nll(out[..., 0], pos) * jnp.where(pos, pos_weight, 1.0)
  size = jnp.where(pos, (out[..., 1] - jax.lax.stop_gradient(symlog(target))) ** 2, 0.0)
  return bce + size
