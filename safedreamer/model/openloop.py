"""Open-loop video prediction (the paper's: 25 steps of context, then 45 predicted).

The world model sees the first `context` observations (posterior states), then rolls
its prior forward on the recorded actions alone and decodes every state. Drawn by
safedreamer/report/openloop.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from safedreamer.nn.functions import symexp

CONTEXT = 25


def openloop_predict(wm, params, batch: dict, key, context: int = CONTEXT) -> dict:
  """Predictions for replay windows `batch` ([B, T] arrays, T > context).

  Returns {obs key: [B, T, ...], 'reward': [B, T], 'cost': [B, T]}: steps [:context]
  are posterior reconstructions, steps [context:] open-loop predictions (prior
  mode). Vectors are mapped back from symlog space; images are in [0, 1].
  """
  rssm, codec = wm.rssm, wm.codec
  past = {k: v[:, :context] for k, v in batch.items()}
  embed = wm.encode(params, past)
  keys = jax.random.split(key, context)
  states, _, last = rssm.observe(params['rssm'], embed, past['action'], past['is_first'], keys)

  def step(state, action):
    state = rssm.img_step(params['rssm'], state, action)
    return state, state

  _, future = jax.lax.scan(step, last, jnp.swapaxes(batch['action'][:, context:], 0, 1))
  future = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), future)
  states = jax.tree.map(lambda a, b: jnp.concatenate([a, b], 1), states, future)
  feat = rssm.feat(states)
  decoded = codec.decode(params['decoder'], feat)
  out = {k: symexp(decoded[k]) for k in codec.vec}
  out.update({k: jnp.clip(decoded[k] + 0.5, 0.0, 1.0) for k in codec.img})
  out['reward'] = wm.reward(params, feat)
  out['cost'] = wm.cost(params, feat)
  return out
