"""The world model: encoder, RSSM, decoder, reward / cost / continue heads, loss.

Loss per step (averaged over the [B, T] batch):
  decoder NLL (symlog MSE / image MSE)
  + reward two-hot NLL
  + cost loss: two-hot NLL with the target's mass on positive bins times
    `cost_weight` (the authors' x10 on costly steps; `cost_head='twohot'`), or the
    hurdle loss (P(cost > 0) Bernoulli NLL, times `cost_weight` where cost > 0,
    + symlog size error there; `cost_head='hurdle'`)
  + continue Bernoulli NLL (target 1 - is_terminal)
  + (cost_overshoot K > 0) the cost loss of K-step prior rollouts along the recorded
    actions from every `overshoot_every`-th posterior state (RSSM.overshoot; PlaNet's
    overshooting, for the cost only), averaged over the valid rollout steps
  + dyn_scale * max(free, KL[sg(q) || p]) + rep_scale * max(free, KL[q || sg(p)])
Heads read the model state feature [h, z]. Reward and (two-hot) cost heads are
255-bin two-hot regressions over values equally spaced in symlog space, [-20, 20],
whose means are unbiased (nn/functions.py); their output layers
start at zero, so the first reward predictions are exactly 0. The cost is a rare,
non-negative quantity: a two-hot cost head's logits sit on a prior that puts a fresh
head's mass on small values (`cost_prior`; first predictions ~0.02 per step), a
hurdle head's size output starts at symlog 0. The cost weight emphasises costly
steps in the loss only: `cost` divides it back out of the fitted probability of a
cost (nn/functions.py), so predicted costs estimate the expected cost, unbiased.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from safedreamer.model.codec import Codec
from safedreamer.model.rssm import RSSM, ahead
from safedreamer.nn import dists
from safedreamer.nn.functions import (cost_prior, hurdle_mean, hurdle_nll, twohot_bins,
                                      twohot_cost_mean, twohot_mean, twohot_nll,
                                      twohot_weighted_nll)
from safedreamer.nn.layers import Head

sg = jax.lax.stop_gradient


class WorldModel:
  """Pure functions over a params dict {encoder, rssm, decoder, reward, cost, cont}."""

  def __init__(self, cfg, obs_space: dict, act_dim: int):
    self.cfg, self.act_dim = cfg, act_dim
    self.codec = Codec(obs_space, cfg.mlp_layers, cfg.mlp_units, cfg.cnn_depth)
    self.rssm = RSSM(cfg.deter, cfg.units, cfg.stoch, cfg.classes, cfg.unimix, act_dim)
    self.reward_head = Head(cfg.head_layers, cfg.units, cfg.bins, zero_init=True)
    self.hurdle = cfg.cost_head == 'hurdle'
    self.cost_head = Head(cfg.head_layers, cfg.units, 2 if self.hurdle else cfg.bins,
                          zero_init=True)
    self.cont_head = Head(cfg.head_layers, cfg.units, 1)
    self.bins = twohot_bins(cfg.bins)
    self.cost_prior = cost_prior(self.bins)   # a fresh two-hot cost head predicts ~0
    self.feat_dim = cfg.deter + cfg.stoch * cfg.classes

  def init(self, key):
    k = jax.random.split(key, 6)
    obs = self.codec.dummy_obs()
    embed_params = self.codec.encoder.init(k[0], obs)['params']
    embed = self.codec.encoder.apply({'params': embed_params}, obs)
    feat = jnp.zeros((1, self.feat_dim))
    return {
        'encoder': embed_params,
        'rssm': self.rssm.init(k[1], embed.shape[-1]),
        'decoder': self.codec.decoder.init(k[2], feat)['params'],
        'reward': self.reward_head.init(k[3], feat)['params'],
        'cost': self.cost_head.init(k[4], feat)['params'],
        'cont': self.cont_head.init(k[5], feat)['params'],
    }

  # --- heads (on features [..., F]) ----------------------------------------------
  def reward(self, params, feat):
    return twohot_mean(self.reward_head.apply({'params': params['reward']}, feat), self.bins)

  def cost(self, params, feat):
    return self.cost_mean(self.cost_head.apply({'params': params['cost']}, feat))

  def cost_mean(self, out):
    """Expected cost from the cost head's output (the loss's weight divided out)."""
    w = self.cfg.cost_weight
    if self.hurdle:
      return hurdle_mean(out, w)
    return twohot_cost_mean(out + self.cost_prior, self.bins, w)

  def cost_nll(self, out, cost):
    """The cost head's loss per step (costly steps weighted by `cost_weight`)."""
    w = self.cfg.cost_weight
    if self.hurdle:
      return hurdle_nll(out, cost, w)
    return twohot_weighted_nll(out + self.cost_prior, cost, self.bins, w)

  def cont_logit(self, params, feat):
    return self.cont_head.apply({'params': params['cont']}, feat)[..., 0]

  def encode(self, params, obs):
    return self.codec.encode(params['encoder'], obs)

  # --- loss --------------------------------------------------------------------------
  def loss(self, params, batch, key):
    """Returns (scalar loss, (metrics, posterior states {deter, stoch} [B, T, ..]))."""
    cfg, rssm = self.cfg, self.rssm
    embed = self.encode(params, batch)
    keys = jax.random.split(key, embed.shape[1])
    states, post_logits, _ = rssm.observe(
        params['rssm'], embed, batch['action'], batch['is_first'], keys)
    post = rssm.probs(post_logits)
    prior = rssm.probs(rssm.prior_logits(params['rssm'], states['deter']))
    dyn, rep = dists.kl_free_bits(post, prior, cfg.free_nats)
    feat = rssm.feat(states)

    dec, dec_parts = self.codec.loss(params['decoder'], feat, batch)
    rew_logits = self.reward_head.apply({'params': params['reward']}, feat)
    cost_logits = self.cost_head.apply({'params': params['cost']}, feat)
    rew = twohot_nll(rew_logits, batch['reward'], self.bins)
    cost = self.cost_nll(cost_logits, batch['cost'])
    cont_target = 1.0 - batch['is_terminal'].astype(jnp.float32)
    cont = dists.bernoulli_nll(self.cont_logit(params, feat), cont_target)

    total = dec + rew + cost + cont + cfg.dyn_scale * dyn + cfg.rep_scale * rep
    extra = {}
    if cfg.cost_overshoot:
      over, extra = self.overshoot_loss(params, states, batch, key)
      total = total + over
    kl = dists.cat_kl(post, prior)
    metrics = {
        'wm/loss': total.mean(), 'wm/dec': dec.mean(), 'wm/reward': rew.mean(),
        'wm/cost': cost.mean(), 'wm/cont': cont.mean(), 'wm/kl': kl.mean(),
        'wm/post_ent': dists.cat_entropy(post).mean(),
        'wm/prior_ent': dists.cat_entropy(prior).mean(),
        'wm/reward_pred': twohot_mean(rew_logits, self.bins).mean(),
        'wm/cost_pred': self.cost_mean(cost_logits).mean(),
    }
    metrics.update({f'wm/dec_{k}': v for k, v in dec_parts.items()})
    metrics.update(extra)
    return total.mean(), (metrics, sg(states))

  def overshoot_loss(self, params, states, batch, key):
    """The cost NLL of K-step prior predictions, a mean over the valid ones; it
    reaches the cost head, the dynamics and the posterior states it starts from."""
    K, every = self.cfg.cost_overshoot, self.cfg.overshoot_every
    rolled, valid = self.rssm.overshoot(params['rssm'], states, batch['action'],
                                        batch['is_first'], K, jax.random.fold_in(key, 7), every)
    target = ahead(batch['cost'], K, every)
    out = self.cost_head.apply({'params': params['cost']}, self.rssm.feat(rolled))
    valid = valid.astype(jnp.float32)
    mean = lambda x: (x * valid).sum() / jnp.maximum(valid.sum(), 1.0)
    loss = mean(self.cost_nll(out, target))
    return loss, {'wm/cost_overshoot': loss, 'wm/cost_overshoot_pred': mean(self.cost_mean(out)),
                  'wm/cost_overshoot_true': mean(target)}
