"""nn/: symlog, two-hot, unimix categoricals, KL with free bits, bounded normal."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.nn import dists
from safedreamer.nn.functions import (hurdle_mean, hurdle_nll, symexp, symlog, twohot_bins,
                                      twohot_cost_mean, twohot_encode, twohot_mean, twohot_nll,
                                      twohot_weighted_nll)

E = math.e


def test_symlog_symexp_by_hand():
  x = jnp.array([0.0, E - 1, -(E - 1), E ** 2 - 1])
  np.testing.assert_allclose(symlog(x), [0, 1, -1, 2], atol=1e-6)
  np.testing.assert_allclose(symexp(jnp.array([0.0, 1.0, -1.0, 2.0])), x, rtol=1e-6)
  y = jnp.array([-1e4, -3.3, 0.2, 7.0, 1e4])
  np.testing.assert_allclose(symexp(symlog(y)), y, rtol=1e-5)


BINS = twohot_bins(5, 2.0)  # positions [-2, -1, 0, 1, 2] in symlog space
V1, V2 = E - 1, E ** 2 - 1  # their values: [-V2, -V1, 0, V1, V2]


@pytest.mark.parametrize('y, target', [
    (V1 / 2, [0, 0, 0.5, 0.5, 0]),             # between values: linear in the value
    (V1 / 4, [0, 0, 0.75, 0.25, 0]),
    (-(V1 + V2) / 2, [0.5, 0.5, 0, 0, 0]),     # a wider gap further out, still halves
    (V1 + 0.25 * (V2 - V1), [0, 0, 0, 0.75, 0.25]),
    (V1, [0, 0, 0, 1, 0]),                     # exactly on a value
    (-V2, [1, 0, 0, 0, 0]),                    # exactly on the edges
    (V2, [0, 0, 0, 0, 1]),
    (100.0, [0, 0, 0, 0, 1]),                  # outside the range: the nearest edge
    (-1e4, [1, 0, 0, 0, 0]),
])
def test_twohot_encode_by_hand(y, target):
  np.testing.assert_allclose(twohot_encode(jnp.float32(y), BINS), target, atol=1e-6)


def test_twohot_encode_batched_and_expectation():
  y = jnp.array([[-5.7, 0.3], [6.3, -0.01]])
  two = twohot_encode(y, BINS)
  assert two.shape == (2, 2, 5)
  np.testing.assert_allclose(two.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_allclose((two * symexp(BINS)).sum(-1), y, atol=1e-5)  # exact in range


def test_twohot_mean_and_nll_by_hand():
  logits = jnp.log(jnp.array([0, 0, 0.75, 0.25, 0.0]))
  # the expectation of the values: 0.75 * 0 + 0.25 * (e - 1)
  np.testing.assert_allclose(twohot_mean(logits, BINS), 0.25 * V1, rtol=1e-6)
  np.testing.assert_allclose(twohot_mean(jnp.log(jnp.array([.1, .2, .3, .4, 1e-30])), BINS),
                             -.1 * V2 + .2 * V1, rtol=1e-5)
  # a uniform (zero-initialised) head predicts exactly 0, at any number of bins
  for num in (5, 31, 255):
    assert float(twohot_mean(jnp.zeros(num), twohot_bins(num))) == 0.0
  # and its gradient is p_b (v_b - mean) = v_b / 255, also near 0 where rounding in a
  # sum of +-symexp(20) / 255 terms would be of order 1
  bins = twohot_bins(255)
  np.testing.assert_allclose(jax.grad(twohot_mean)(jnp.zeros(255), bins), symexp(bins) / 255,
                             rtol=1e-5, atol=1e-6)
  # uniform logits: NLL of any target is log(5)
  np.testing.assert_allclose(twohot_nll(jnp.zeros(5), V1 / 4, BINS), math.log(5), rtol=1e-6)
  # logits = log(two-hot of the target): NLL = -(0.75 ln .75 + .25 ln .25)
  np.testing.assert_allclose(twohot_nll(jnp.log(jnp.array([1e-9, 1e-9, .75, .25, 1e-9])),
                                        V1 / 4, BINS),
                             -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), rtol=1e-4)


def test_twohot_fit_of_a_stochastic_target_predicts_its_mean():
  """The cross-entropy optimum for a target that is 0 or 20 with even odds is the
  average of their two-hot codes; its mean is 10. (The symlog-space mean of DreamerV3
  1.x read it as symexp(symlog(20) / 2) = 3.6, and a cost critic trained on such
  returns was ~3x below its own imagined costs.)"""
  bins = twohot_bins(255)
  fit = 0.5 * twohot_encode(jnp.float32(0.0), bins) + 0.5 * twohot_encode(jnp.float32(20.0), bins)
  np.testing.assert_allclose(twohot_mean(jnp.log(fit + 1e-30), bins), 10.0, rtol=1e-5)
  # and gradient descent on the NLL gets there from a zero-initialised head
  loss = lambda lg: 0.5 * (twohot_nll(lg, 0.0, bins) + twohot_nll(lg, 20.0, bins))
  logits = jax.lax.fori_loop(0, 1000, lambda _, lg: lg - jax.grad(loss)(lg), jnp.zeros(255))
  np.testing.assert_allclose(twohot_mean(logits, bins), 10.0, rtol=0.02)


def test_hurdle_mean_and_nll_by_hand():
  out = jnp.array([[0.0, math.log(4.0)],        # p 0.5, size 3
                   [math.log(3.0), math.log(2.0)],  # p 0.75, size 1
                   [5.0, -2.0]])                # a negative size counts as 0
  np.testing.assert_allclose(hurdle_mean(out), [1.5, 0.75, 0.0], rtol=1e-6)
  zeros = jnp.zeros(2)
  # y = 0: only the Bernoulli term, -log(1 - 0.5)
  np.testing.assert_allclose(hurdle_nll(zeros, 0.0), math.log(2), rtol=1e-6)
  # y = 3, pos_weight 2: 2 * -log 0.5 + (0 - log 4)^2
  np.testing.assert_allclose(hurdle_nll(zeros, 3.0, 2.0),
                             2 * math.log(2) + math.log(4) ** 2, rtol=1e-6)
  # the size output learns from costly steps only
  grad = jax.grad(lambda o, y: hurdle_nll(o, y).sum())
  assert float(grad(jnp.array([0.3, 0.7]), 0.0)[1]) == 0.0
  np.testing.assert_allclose(grad(jnp.array([0.0, 0.0]), 3.0), [-0.5, -2 * math.log(4)],
                             rtol=1e-6)


def test_weighted_cost_fit_is_undone_by_hand():
  # values [-V2, -V1, 0, V1, V2]: a cost of V1 is all on bin 3, weighted x4
  logits = jnp.zeros(5)
  np.testing.assert_allclose(twohot_weighted_nll(logits, jnp.float32(V1), BINS, 4.0),
                             4 * math.log(5), rtol=1e-6)
  np.testing.assert_allclose(twohot_weighted_nll(logits, 0.0, BINS, 4.0), math.log(5), rtol=1e-6)
  # the weighted fit of P(cost) = 0.2 of size V1 is p_w = 4 * 0.2 / (1 + 3 * 0.2) = 0.5
  fitted = jnp.log(jnp.array([1e-9, 1e-9, 0.5, 0.5, 1e-9]))
  np.testing.assert_allclose(twohot_cost_mean(fitted, BINS, 4.0), 0.2 * V1, rtol=1e-5)
  np.testing.assert_allclose(twohot_cost_mean(fitted, BINS), 0.5 * V1, rtol=1e-5)
  # mass on negative bins counts as no cost; the positive values are averaged as they are
  probs = jnp.array([0.3, 0.0, 0.3, 0.2, 0.2])
  np.testing.assert_allclose(twohot_cost_mean(jnp.log(probs + 1e-12), BINS),
                             0.2 * V1 + 0.2 * V2, rtol=1e-5)
  # hurdle: logit log(4) fitted at weight 4 is odds 1 -> P = 0.5; size 3
  out = jnp.array([math.log(4.0), math.log(4.0)])
  np.testing.assert_allclose(hurdle_mean(out, 4.0), 0.5 * 3.0, rtol=1e-6)


def test_unimix_by_hand():
  probs = dists.unimix_probs(jnp.array([0.0, math.log(3.0)]), 0.01)
  np.testing.assert_allclose(probs, [0.99 * 0.25 + 0.005, 0.99 * 0.75 + 0.005], rtol=1e-6)
  # even a hopeless class keeps unimix / C
  probs = dists.unimix_probs(jnp.array([0.0, -1e9, -1e9, -1e9]), 0.01)
  np.testing.assert_allclose(probs, [0.99 + 0.0025, 0.0025, 0.0025, 0.0025], rtol=1e-6)


def test_cat_kl_and_free_bits_by_hand():
  q, p = jnp.array([[0.5, 0.5]]), jnp.array([[0.9, 0.1]])  # K=1, C=2
  kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # 0.510826
  np.testing.assert_allclose(dists.cat_kl(q, p), kl, rtol=1e-6)
  # two latents sum
  np.testing.assert_allclose(dists.cat_kl(jnp.stack([q[0], q[0]]), jnp.stack([p[0], p[0]])),
                             2 * kl, rtol=1e-6)
  dyn, rep = dists.kl_free_bits(q, p, free=1.0)
  np.testing.assert_allclose([dyn, rep], [1.0, 1.0])  # clipped at the free nat
  dyn, rep = dists.kl_free_bits(q, p, free=0.1)
  np.testing.assert_allclose([dyn, rep], [kl, kl], rtol=1e-6)
  # below the free nats no gradient reaches either side
  g = jax.grad(lambda p: sum(dists.kl_free_bits(q, p, 1.0)))(p)
  np.testing.assert_allclose(g, 0.0)
  # above: dyn trains only the prior, rep only the posterior
  gq = jax.grad(lambda q: dists.kl_free_bits(q, p, 0.1)[0])(q)
  gp = jax.grad(lambda p: dists.kl_free_bits(q, p, 0.1)[1])(p)
  np.testing.assert_allclose(gq, 0.0)
  np.testing.assert_allclose(gp, 0.0)


def test_cat_sample_mode_and_straight_through():
  probs = jnp.broadcast_to(jnp.array([0.1, 0.2, 0.7]), (20000, 3))
  hot = dists.cat_sample(probs, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(hot.sum(-1), 1.0)
  assert set(np.unique(np.asarray(hot))) <= {0.0, 1.0}
  np.testing.assert_allclose(hot.mean(0), [0.1, 0.2, 0.7], atol=0.015)
  np.testing.assert_array_equal(dists.cat_mode(jnp.array([[0.1, 0.7, 0.2]])), [[0, 1, 0]])
  np.testing.assert_array_equal(dists.onehot_max(jnp.array([3.0, -1.0, 5.0])), [0, 0, 1])
  # straight-through: d/dprobs sum(c * sample) = c
  c = jnp.array([1.0, 2.0, 3.0])
  g = jax.grad(lambda p: (dists.cat_sample(p, jax.random.PRNGKey(1)) * c).sum())(probs[:1])
  np.testing.assert_allclose(g, c[None])


def test_bounded_normal_bounds():
  raw = jnp.array([[50.0, -50.0, 50.0, -50.0], [0.0, 0.0, 0.0, 0.0]])  # A = 2
  mean, std = dists.bounded_normal(raw, 0.1, 1.0)
  np.testing.assert_allclose(mean[0], [1.0, -1.0])
  np.testing.assert_allclose(std[0], [1.0, 0.1], rtol=1e-6)
  sig2 = 1 / (1 + math.exp(-2.0))
  np.testing.assert_allclose(std[1], 0.9 * sig2 + 0.1, rtol=1e-6)
  mean, std = dists.bounded_normal(jax.random.normal(jax.random.PRNGKey(0), (1000, 4)) * 10,
                                   0.1, 1.0)
  assert float(jnp.abs(mean).max()) <= 1.0
  assert 0.1 <= float(std.min()) and float(std.max()) <= 1.0
  ent = dists.normal_entropy(jnp.array([[1.0, 0.1]]))
  np.testing.assert_allclose(ent, [math.log(2 * math.pi * math.e) + math.log(0.1)], rtol=1e-6)


def test_normal_sample_clipped_with_straight_through_gradient():
  mean, std = jnp.full((5000, 1), 0.9), jnp.full((5000, 1), 1.0)
  x = dists.normal_sample(mean, std, jax.random.PRNGKey(0))
  assert float(x.max()) == 1.0 and float(x.min()) >= -1.0
  g = jax.grad(lambda m: dists.normal_sample(m, std, jax.random.PRNGKey(0)).sum())(mean)
  np.testing.assert_allclose(g, 1.0)


def test_bernoulli_nll():
  np.testing.assert_allclose(dists.bernoulli_nll(jnp.float32(0.0), 1.0), math.log(2), rtol=1e-6)
  np.testing.assert_allclose(dists.bernoulli_nll(jnp.float32(math.log(3)), 0.0), math.log(4),
                             rtol=1e-6)


def test_layer_norm_matches_reference_and_gradients():
  from safedreamer.nn.layers import layer_norm

  def ref(x, s, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + 1e-3) * s + b

  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 8)) * 3 + 1
  s, b = jnp.linspace(0.5, 1.5, 8), jnp.linspace(-1, 1, 8)
  eps = jnp.float32(1e-3)
  np.testing.assert_allclose(layer_norm(x, s, b, eps), ref(x, s, b), atol=1e-5)
  w = jax.random.normal(jax.random.PRNGKey(1), x.shape)
  g1 = jax.grad(lambda *a: (layer_norm(*a, eps) * w).sum(), argnums=(0, 1, 2))(x, s, b)
  g2 = jax.grad(lambda *a: (ref(*a) * w).sum(), argnums=(0, 1, 2))(x, s, b)
  for a, c in zip(g1, g2):
    np.testing.assert_allclose(a, c, atol=1e-4)


def test_twohot_nll_with_extra_target_is_the_weighted_sum():
  logits = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
  a, b = jnp.array([0.1, -3.0, 2.0, 0.0]), jnp.array([1.0, 0.5, -0.2, 9.0])
  both = twohot_nll(logits, a, BINS, extra=b, extra_weight=0.5)
  np.testing.assert_allclose(both, twohot_nll(logits, a, BINS) + 0.5 * twohot_nll(logits, b, BINS),
                             rtol=1e-6)


def test_up_conv_is_a_stride2_transposed_convolution():
  from safedreamer.nn.conv import up_conv
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4))
  k = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 4, 3))
  # out[2i + k - 1] += in[i] K[k] along both axes, by brute force
  xn, kn = np.asarray(x), np.asarray(k)
  ref = np.zeros((2, 8, 12, 3), np.float32)  # padded by 1 on each side
  for i in range(3):
    for j in range(5):
      for a in range(4):
        for b in range(4):
          ref[:, 2 * i + a, 2 * j + b] += xn[:, i, j] @ kn[a, b]
  np.testing.assert_allclose(up_conv(x, k), ref[:, 1:7, 1:11], atol=1e-4)
