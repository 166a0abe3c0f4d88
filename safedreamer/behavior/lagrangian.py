"""Augmented Lagrangian of BSRP-Lag (paper eq. 7-8), as pure functions.

With g = C - b (estimated cost return minus the cost limit), multiplier lam >= 0
and penalty mu > 0:

  Psi(g; lam, mu) = lam * g + mu / 2 * g^2     if lam + mu * g > 0
                  = -lam^2 / (2 * mu)          otherwise

Psi is added to the actor loss with lam, mu held constant, so its gradient
(lam + mu * g) * dg/dtheta reaches the actor through the cost returns in the first
branch and vanishes in the second. After each update:

  lam <- max(0, lam + mu * g),   mu <- min(mu_max, mu * (1 + power))
"""
from __future__ import annotations

import jax.numpy as jnp


def lagrangian_init(multiplier: float, penalty: float):
  return {'lam': jnp.asarray(multiplier, jnp.float32), 'mu': jnp.asarray(penalty, jnp.float32)}


def psi(g, lam, mu):
  active = lam + mu * g > 0
  # the inactive branch's constant must not send gradients (nor NaNs) through g
  g_active = jnp.where(active, g, 0.0)
  return jnp.where(active, lam * g_active + 0.5 * mu * jnp.square(g_active),
                   -jnp.square(lam) / (2.0 * mu))


def lagrangian_update(state, g, power: float, penalty_max: float):
  lam, mu = state['lam'], state['mu']
  return {'lam': jnp.maximum(0.0, lam + mu * g),
          'mu': jnp.minimum(penalty_max, mu * (1.0 + power))}


def cost_estimate(cost_returns, pessimistic: bool):
  """C from cost lambda-returns [H, N]: summed (pessimistic) or averaged over the
  horizon, then averaged over the N start states."""
  per_start = cost_returns.sum(0) if pessimistic else cost_returns.mean(0)
  return per_start.mean()
