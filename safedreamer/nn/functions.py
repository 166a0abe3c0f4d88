"""Pure scalar-transform math: symlog / symexp and two-hot discrete regression.

Two-hot regression (DreamerV3): a scalar y is predicted as a softmax over `bins`
equally spaced points in symlog space; the target puts its weight on the two bins
around symlog(y), linearly interpolated, so the expectation over the target equals
symlog(y) exactly (inside the bin range). The prediction's mean is symexp of the
expected bin value.

Hurdle regression (for rare non-negative costs, `model.cost_head='hurdle'`): two
outputs, the logit of P(y > 0) and symlog of the size of y when it is > 0; the mean
is P(y > 0) * size, computed in the original space. Two-hot's mean, symexp of an
expectation taken in symlog space, is biased low for a mixture of many zeros and a
few large values (p = 0.1 of y = 3.3 gives 0.16, not 0.33).

Weighted costs (the authors weight the cost loss x10 on costly steps): a weight w on
the positive outcomes of a likelihood fit multiplies the fitted odds of "y > 0" by w
(p becomes w p / (1 + (w - 1) p)), so the means below take the same weight and divide
it back out of the fitted probability (a logit correction by -log w). The cost head's
predictions then estimate the true expected cost while its loss still emphasises the
rare costly steps. `twohot_cost_mean` reads a two-hot head as a hurdle: P(y > 0) from
the mass on the positive bins, the size from their symlog-space mean.
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


def twohot_bins(num: int, low: float = -20.0, high: float = 20.0):
  """`num` equally spaced bin centres in symlog space (two-hot needs equal spacing)."""
  return jnp.linspace(low, high, num, dtype=jnp.float32)


def twohot_encode(y, bins):
  """Two-hot target over equally spaced `bins` for values `y` already in bin space.

  y: [...] -> [..., len(bins)]. The weight of bin b is the tent max(0, 1 - |b - y| /
  spacing): linear interpolation between the two bins around y, all weight on a bin
  that y hits exactly, and on the nearest edge bin for y outside the range. (One
  elementwise pass, no comparisons or reductions over the bins.)
  """
  step = bins[1] - bins[0]
  y = jnp.clip(y, bins[0], bins[-1])
  return jax.nn.relu(1.0 - jnp.abs(bins - y[..., None]) / step)


def twohot_mean(logits, bins):
  """Predicted mean in the original space: symexp(E_softmax[bin])."""
  return symexp(jnp.sum(jax.nn.softmax(logits, -1) * bins, -1))


def twohot_nll(logits, target, bins, extra=None, extra_weight=1.0, bin_weights=None):
  """Negative log-likelihood of the two-hot encoding of symlog(target).

  With `extra` (a second target), returns NLL(target) + extra_weight * NLL(extra)
  from one log-softmax and one reduction over the bins. `bin_weights` [bins]
  weighs the target's mass bin by bin."""
  two = twohot_encode(symlog(target), bins)
  if extra is not None:
    two = two + extra_weight * twohot_encode(symlog(extra), bins)
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
  thousands (the positive bins' symlog mean is ~10); on this prior a fresh head
  predicts ~0.01-0.02 per step (255 bins, cost weight 10). An offset changes what the
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
  `twohot_weighted_nll(..., pos_weight)`: P(y > 0) * symexp(E[bin | bin > 0]), with
  the weight's log taken off the positive bins' logits first (mass on negative bins
  counts as 0)."""
  pos = positive_bins(bins)
  probs = jax.nn.softmax(logits - jnp.where(pos, jnp.log(pos_weight), 0.0), -1)
  p_pos = jnp.sum(jnp.where(pos, probs, 0.0), -1)
  size = jnp.sum(jnp.where(pos, probs * bins, 0.0), -1) / jnp.maximum(p_pos, 1e-20)
  return p_pos * symexp(size)


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
