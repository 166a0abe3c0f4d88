"""Distributions as pure functions on raw network outputs.

Categorical latents: K independent categoricals of C classes given as logits
[..., K, C]; every one is mixed with 1% uniform ("unimix") before use. Samples are
one-hot with straight-through gradients. One-hots are built by comparison
(x == max(x), or a CDF interval test) instead of argmax, which is slow on CPU.

Bounded normal (actor): mean = tanh(m), std = (max - min) * sigmoid(s + 2) + min.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

sg = jax.lax.stop_gradient


# --- unimix categoricals -----------------------------------------------------

def unimix_probs(logits, unimix: float):
  """(1 - unimix) * softmax(logits) + unimix / C over the last axis."""
  probs = jax.nn.softmax(logits, -1)
  return (1.0 - unimix) * probs + unimix / logits.shape[-1]


def onehot_max(x):
  """One-hot of the maximum along the last axis (ties are measure zero)."""
  return (x == jnp.max(x, -1, keepdims=True)).astype(x.dtype)


def cat_sample(probs, key):
  """Straight-through one-hot sample of categoricals probs [..., K, C].

  One uniform per categorical; the class whose CDF interval contains it is chosen.
  Forward value: the one-hot; gradient: that of `probs`.
  """
  u = jax.random.uniform(key, probs.shape[:-1] + (1,), probs.dtype)
  cdf = jnp.cumsum(probs, -1)
  cdf = cdf / cdf[..., -1:]  # last edge exactly 1: the intervals tile [0, 1)
  lower = jnp.concatenate([jnp.zeros_like(cdf[..., :1]), cdf[..., :-1]], -1)
  hot = ((u >= lower) & (u < cdf)).astype(probs.dtype)
  return hot + probs - sg(probs)


def cat_mode(probs):
  """Straight-through one-hot of the most likely class."""
  return onehot_max(probs) + probs - sg(probs)


def cat_kl(probs_q, probs_p):
  """KL[q || p] summed over the K categoricals: [..., K, C] -> [...]."""
  return jnp.sum(probs_q * (jnp.log(probs_q) - jnp.log(probs_p)), (-2, -1))


def cat_entropy(probs):
  return -jnp.sum(probs * jnp.log(probs), (-2, -1))


def kl_free_bits(probs_q, probs_p, free: float):
  """(dyn, rep) KL terms with free bits: max(free, KL[sg(q)||p]) and
  max(free, KL[q||sg(p)]) per sample. Below `free` the gradient is zero."""
  dyn = cat_kl(sg(probs_q), probs_p)
  rep = cat_kl(probs_q, sg(probs_p))
  return jnp.maximum(dyn, free), jnp.maximum(rep, free)


# --- Bernoulli ---------------------------------------------------------------

def bernoulli_nll(logits, target):
  """-log p(target) for a Bernoulli with `logits`; target in {0, 1}."""
  return -(target * jax.nn.log_sigmoid(logits) + (1 - target) * jax.nn.log_sigmoid(-logits))


# --- bounded normal (actor) ------------------------------------------------------

def bounded_normal(raw, min_std: float, max_std: float):
  """Split raw actor output [..., 2A] into (mean in (-1, 1), std in (min, max))."""
  m, s = jnp.split(raw, 2, -1)
  mean = jnp.tanh(m)
  std = (max_std - min_std) * jax.nn.sigmoid(s + 2.0) + min_std
  return mean, std


def normal_sample(mean, std, key):
  """Reparameterised sample clipped to [-1, 1]; the clip passes gradients straight
  through so actions at the bound still tell the actor which way to move."""
  x = mean + std * jax.random.normal(key, mean.shape, mean.dtype)
  return x + sg(jnp.clip(x, -1.0, 1.0) - x)


def normal_entropy(std):
  """Entropy of a diagonal normal, summed over the action dimensions."""
  return jnp.sum(0.5 * math.log(2 * math.pi * math.e) + jnp.log(std), -1)
