"""Recurrent state-space model (DreamerV3 RSSM).

State s = {deter: h [.., D], stoch: flattened one-hots z [.., K*C]}.
  h_t   = GRU(h_{t-1}, MLP([z_{t-1}, a_t]))          (a_t: the action that led to t)
  prior p(z_t | h_t)       = unimix categorical from MLP(h_t)
  post  q(z_t | h_t, e_t)  = unimix categorical from MLP([h_t, e_t])
Where is_first, (h, z, a) are replaced by the learned initial state and a zero
action before the step. The GRU normalises its gate pre-activations (computed from
[x, h]) with a LayerNorm.

For speed the posterior's input layer is split into W_h h + W_e e so that W_e e
is computed for the whole [B, T] batch before the time scan, and the prior (not
needed inside the scan) is computed afterwards on all [B, T] states at once.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from safedreamer.nn import dists
from safedreamer.nn.layers import Dense, LayerNorm


class RSSMNet(nn.Module):
  deter: int
  units: int
  stoch: int
  classes: int

  def setup(self):
    dense = lambda n, bias=False: Dense(n, use_bias=bias)
    norm = LayerNorm
    self.img_in, self.img_in_norm = dense(self.units), norm()
    self.gru, self.gru_norm = dense(3 * self.deter), norm()
    self.img_out, self.img_out_norm = dense(self.units), norm()
    self.img_stats = dense(self.stoch * self.classes, True)
    self.obs_h, self.obs_e, self.obs_norm = dense(self.units), dense(self.units), norm()
    self.obs_stats = dense(self.stoch * self.classes, True)
    self.init_deter = self.param('init_deter', nn.initializers.zeros, (self.deter,))

  def _logits(self, x):
    return x.reshape(x.shape[:-1] + (self.stoch, self.classes))

  def core(self, deter, stoch, action):
    """One GRU step: h' = GRU(h, MLP([z, a]))."""
    x = nn.silu(self.img_in_norm(self.img_in(jnp.concatenate([stoch, action], -1))))
    parts = self.gru_norm(self.gru(jnp.concatenate([x, deter], -1)))
    reset, cand, update = jnp.split(parts, 3, -1)
    cand = jnp.tanh(jax.nn.sigmoid(reset) * cand)
    update = jax.nn.sigmoid(update - 1.0)
    return update * cand + (1.0 - update) * deter

  def prior(self, deter):
    return self._logits(self.img_stats(nn.silu(self.img_out_norm(self.img_out(deter)))))

  def embed_proj(self, embed):
    return self.obs_e(embed)

  def post(self, deter, eproj):
    return self._logits(self.obs_stats(nn.silu(self.obs_norm(self.obs_h(deter) + eproj))))

  def initial_deter(self):
    return jnp.tanh(self.init_deter)

  def init_all(self, embed, action):
    """Touch every layer once (used only to create the parameters)."""
    n = embed.shape[0]
    deter = jnp.zeros((n, self.deter))
    stoch = jnp.zeros((n, self.stoch * self.classes))
    deter = self.core(deter, stoch, action) + self.initial_deter()
    return self.prior(deter), self.post(deter, self.embed_proj(embed))


class RSSM:
  """Pure functions over an RSSMNet's params (usable inside jit)."""

  def __init__(self, deter, units, stoch, classes, unimix, act_dim):
    self.net = RSSMNet(deter, units, stoch, classes)
    self.unimix, self.act_dim = unimix, act_dim
    self.deter, self.stoch_size = deter, stoch * classes

  def init(self, key, embed_dim):
    return self.net.init(key, jnp.zeros((1, embed_dim)), jnp.zeros((1, self.act_dim)),
                         method='init_all')['params']

  def _call(self, params, method, *args):
    return self.net.apply({'params': params}, *args, method=method)

  def probs(self, logits):
    return dists.unimix_probs(logits, self.unimix)

  def _flat(self, onehot):
    return onehot.reshape(onehot.shape[:-2] + (self.stoch_size,))

  def initial(self, params, n):
    """The learned initial state for a batch of n (deter = tanh(w), z = prior mode)."""
    deter = self._call(params, 'initial_deter')
    deter = jnp.broadcast_to(deter, (n, self.deter))
    stoch = self._flat(dists.cat_mode(self.probs(self._call(params, 'prior', deter))))
    return {'deter': deter, 'stoch': stoch}

  def prior_logits(self, params, deter):
    return self._call(params, 'prior', deter)

  def embed_proj(self, params, embed):
    return self._call(params, 'embed_proj', embed)

  def feat(self, state):
    return jnp.concatenate([state['deter'], state['stoch']], -1)

  def reset(self, params, state, action, is_first):
    """Replace rows with is_first by the initial state and a zero action."""
    init = self.initial(params, is_first.shape[0])
    f = is_first[:, None]
    state = {k: jnp.where(f, init[k], v) for k, v in state.items()}
    return state, jnp.where(f, 0.0, action)

  def obs_step(self, params, state, action, eproj, is_first, key):
    """Posterior step for one time step of a batch; returns (state, post logits)."""
    state, action = self.reset(params, state, action, is_first)
    deter = self._call(params, 'core', state['deter'], state['stoch'], action)
    logits = self._call(params, 'post', deter, eproj)
    stoch = self._flat(dists.cat_sample(self.probs(logits), key))
    return {'deter': deter, 'stoch': stoch}, logits

  def img_step(self, params, state, action, key=None):
    """Prior step; samples z with `key`, or takes the prior's mode if key is None."""
    deter = self._call(params, 'core', state['deter'], state['stoch'], action)
    probs = self.probs(self._call(params, 'prior', deter))
    hot = dists.cat_mode(probs) if key is None else dists.cat_sample(probs, key)
    return {'deter': deter, 'stoch': self._flat(hot)}

  def observe(self, params, embed, action, is_first, keys, state=None):
    """Posterior states for [B, T] inputs; `keys` [T, 2] (one per time step).

    Returns (states {deter, stoch} [B, T, ..], post logits [B, T, K, C], last state).
    """
    batch = embed.shape[0]
    if state is None:
      state = self.initial(params, batch)
    eproj = self.embed_proj(params, embed)
    tmajor = lambda x: jnp.swapaxes(x, 0, 1)

    def step(carry, inp):
      eproj_t, action_t, first_t, key_t = inp
      carry, logits = self.obs_step(params, carry, action_t, eproj_t, first_t, key_t)
      return carry, (carry, logits)

    last, (states, logits) = jax.lax.scan(
        step, state, (tmajor(eproj), tmajor(action), tmajor(is_first), keys))
    states = jax.tree.map(tmajor, states)
    return states, tmajor(logits), last

  def overshoot(self, params, states, action, is_first, steps, key, every=1):
    """Prior rollouts along the recorded actions from posterior states.

    states {deter, stoch} [B, T, ..], action / is_first [B, T, ..]; rollouts start at
    t = 0, every, 2 every, .. (S = ceil(T / every) starts per row). Rollout k (1..K)
    from (b, t) applies a_{t+1}..a_{t+k} through `img_step` (sampled z), so it stands
    for time t+k. Returns (states [K, B, S, ..], valid [K, B, S]): valid where t+k < T
    and no episode starts in (t, t+k].
    """
    acts = ahead(action, steps, every)
    # rollout k leaves the recorded episode where step t+k starts one or lies past T
    starts = ahead(is_first, steps, every) | ~ahead(jnp.ones_like(is_first), steps, every)

    def step(carry, inp):
      state, valid = carry
      act, start, step_key = inp
      state = self.img_step(params, state, act, step_key)
      valid = valid & ~start
      return (state, valid), (state, valid)

    states = jax.tree.map(lambda x: x[:, ::every], states)
    valid0 = jnp.ones(states['deter'].shape[:2], bool)
    _, (out, valid) = jax.lax.scan(step, (states, valid0),
                                   (acts, starts, jax.random.split(key, steps)))
    return out, valid


def ahead(x, steps, every=1):
  """x [B, T, ..] seen 1..K steps ahead from every `every`-th step: out [K, B, S, ..] with
  out[k - 1, :, s] = x[:, s * every + k], zeros past the end."""
  shift = lambda k: jnp.concatenate([x[:, k:], jnp.zeros_like(x[:, :k])], 1)[:, ::every]
  return jnp.stack([shift(k) for k in range(1, steps + 1)])
