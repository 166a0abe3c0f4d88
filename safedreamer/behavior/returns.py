"""Lambda-returns and percentile return normalisation (pure functions).

Time axis first. For imagined states s_0..s_H with values V_0..V_H, rewards
r_1..r_H (r_t is predicted for arriving at s_t) and continuation flags c_1..c_H:

  R_H = V_H
  R_t = r_{t+1} + gamma * c_{t+1} * ((1 - return_lambda) * V_{t+1} + return_lambda * R_{t+1}),
        t < H

With `cut` (flags cut_1..cut_H), R_t = V_t where cut_{t+1}: the recursion stops where
the next state starts another episode. The critics' replay loss runs it on a replay
sequence s_0..s_{T-1} (real rewards, c_t = 1 - is_terminal_t, cut_t = is_first_t) with
the imagined return from each state as V_t (DreamerV3's replay critic loss).

Return normalisation tracks the 5th and 95th percentile of the returns with an
EMA (no bias correction, both start at 0) and divides advantages by
S = max(1, P95 - P5), so small returns are not scaled up.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def lambda_returns(reward, value, cont, gamma: float, return_lambda: float, cut=None):
  """reward [H, ...], value [H+1, ...], cont [H, ...] (cut [H, ...] bool, optional)
  -> returns R_0..R_{H-1} [H, ...]."""
  disc = gamma * cont
  interm = reward + disc * (1.0 - return_lambda) * value[1:]

  def step(nxt, inp):
    interm_t, disc_t, cut_t, value_t = inp
    ret = interm_t + disc_t * return_lambda * nxt
    if cut_t is not None:
      ret = jnp.where(cut_t, value_t, ret)
    return ret, ret

  own = None if cut is None else value[:-1]   # the imagination's scan stays as it was
  _, rets = jax.lax.scan(step, value[-1], (interm, disc, cut, own), reverse=True)
  return rets


def discount_weights(cont, gamma: float):
  """w_t = prod_{i<=t} (gamma * c_i) / gamma for cont [H+1, ...] (c_0: the start's).

  w_0 = c_0; a state after a predicted termination gets weight 0."""
  return jnp.cumprod(gamma * cont, 0) / gamma


def retnorm_init():
  return {'low': jnp.zeros((), jnp.float32), 'high': jnp.zeros((), jnp.float32)}


def retnorm_update(state, returns, decay: float, low_pct: float = 5.0, high_pct: float = 95.0):
  """EMA of the low / high percentiles of `returns` (all entries)."""
  x = jax.lax.stop_gradient(returns).reshape(-1)
  low, high = jnp.percentile(x, jnp.array([low_pct, high_pct]))
  return {'low': decay * state['low'] + (1 - decay) * low,
          'high': decay * state['high'] + (1 - decay) * high}


def retnorm_scale(state, floor: float = 1.0):
  """S = max(floor, high - low); DreamerV3's floor is 1."""
  return jnp.maximum(floor, state['high'] - state['low'])
