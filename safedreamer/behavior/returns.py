"""Lambda-returns and percentile return normalisation (pure functions).

Time axis first. For imagined states s_0..s_H with values V_0..V_H, rewards
r_1..r_H (r_t is predicted for arriving at s_t) and continuation flags c_1..c_H:

  R_H = V_H
  R_t = r_{t+1} + gamma * c_{t+1} * ((1 - return_lambda) * V_{t+1} + return_lambda * R_{t+1}),
        t < H

On a replay sequence s_0..s_{T-1} (real rewards r_t for arriving at s_t, c_t = 1 -
is_terminal_t, f_t = is_first_t) with bootstraps B_t (the imagined return from s_t),
`replay_returns` gives the same recursion on the real signal (DreamerV3's replay
critic loss), cut where the next step starts a new episode:

  R_{T-1} = B_{T-1}
  R_t = B_t                                                          if f_{t+1}
      = r_{t+1} + gamma * c_{t+1} * ((1 - lambda) * B_{t+1} + lambda * R_{t+1})  else

Return normalisation tracks the 5th and 95th percentile of the returns with an
EMA (no bias correction, both start at 0) and divides advantages by
S = max(1, P95 - P5), so small returns are not scaled up.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def lambda_returns(reward, value, cont, gamma: float, return_lambda: float):
  """reward [H, ...], value [H+1, ...], cont [H, ...] -> returns R_0..R_{H-1} [H, ...]."""
  disc = gamma * cont
  interm = reward + disc * (1.0 - return_lambda) * value[1:]

  def step(nxt, inp):
    interm_t, disc_t = inp
    ret = interm_t + disc_t * return_lambda * nxt
    return ret, ret

  _, rets = jax.lax.scan(step, value[-1], (interm, disc), reverse=True)
  return rets


def replay_returns(reward, boot, cont, first, gamma: float, return_lambda: float):
  """reward, boot, cont, first [T, ...] (time first) -> R_0..R_{T-2} [T-1, ...]."""
  interm = reward[1:] + gamma * cont[1:] * (1.0 - return_lambda) * boot[1:]
  disc = gamma * cont[1:] * return_lambda

  def step(nxt, inp):
    interm_t, disc_t, cut, own = inp
    ret = jnp.where(cut, own, interm_t + disc_t * nxt)
    return ret, ret

  _, rets = jax.lax.scan(step, boot[-1], (interm, disc, first[1:], boot[:-1]), reverse=True)
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
