"""Actor, reward critic and cost critic trained in imagination (background planning).

From every posterior state of the batch (N = B*T starts) the actor imagines H
steps through the prior with gradients through the dynamics (continuous actions).
On the trajectory s_0..s_H:
  rewards r_1..r_H, costs k_1..k_H      reward / cost head means (or the cost of
                                        the decoded observation: `cost_fn`)
  continuation c_0 = 1 - is_terminal, c_1..c_H = continue-head mode
  weights w_t = prod_{i<=t} gamma c_i / gamma          (sg)
  R = lambda-returns of r with the reward critic V,  C_R likewise with the cost critic
Actor loss = mean_t,n w_t * (-(R_t - V_t) / S - eta * entropy_t)  [+ BSRP-Lag's term]
  with S the percentile return scale and g = C - b, C = cost_estimate(C_R). BSRP-Lag
  adds Psi(g; lam, mu) (multiplier 'augmented', the paper) or lam * C / max(S, 1)
  (multiplier 'pid': lam from the real episodes' cost, in units of the scaled return).
Critic losses = mean w_t * (NLL(sg(R_t)) + slow_reg * NLL(slow critic mean)), plus
  (behavior.replay_critic > 0) that weight x the same NLL on the replay batch's states
  against the lambda-returns of its real rewards / costs, bootstrapped with R_0 of the
  imagination from each state and cut at episode starts (returns.lambda_returns).

One function computes all three losses; stop-gradients route each to its own
parameters (the actor loss sees critic parameters as constants, the critics see
the trajectory as data). The critic forward pass on the trajectory is written the
same way for both, so XLA computes it once.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from safedreamer.behavior import lagrangian as lag_fns
from safedreamer.behavior import returns as ret_fns
from safedreamer.nn import dists
from safedreamer.nn.functions import twohot_mean, twohot_nll
from safedreamer.nn.layers import Head

sg = jax.lax.stop_gradient


class Behavior:
  """Pure functions over params {actor, critic[, cost_critic]}."""

  def __init__(self, cfg, wm, act_dim: int, cost_critic: bool, lagrangian_cfg=None,
               cost_limit: float = 0.0):
    self.cfg, self.wm, self.act_dim = cfg, wm, act_dim
    self.use_cost_critic = cost_critic
    self.lag_cfg, self.cost_limit = lagrangian_cfg, cost_limit  # lag_cfg None: no Lagrangian
    self.actor_net = Head(cfg.layers, cfg.units, 2 * act_dim)
    self.critic_net = Head(cfg.layers, cfg.units, wm.cfg.bins, zero_init=True)
    self.critics = ['critic', 'cost_critic'] if cost_critic else ['critic']
    # (wm_params, feat) -> cost of imagined states; None until set for cost_source 'obs'
    self.cost_fn = wm.cost if cfg.cost_source == 'head' else None

  def init(self, key):
    feat = jnp.zeros((1, self.wm.feat_dim))
    ka, *kc = jax.random.split(key, 1 + len(self.critics))
    params = {'actor': self.actor_net.init(ka, feat)['params']}
    params.update({n: self.critic_net.init(k, feat)['params'] for n, k in zip(self.critics, kc)})
    return params

  def actor(self, actor_params, feat):
    """(mean, std) of the bounded normal policy."""
    raw = self.actor_net.apply({'params': actor_params}, feat)
    return dists.bounded_normal(raw, self.cfg.min_std, self.cfg.max_std)

  def critic_logits(self, critic_params, feat):
    return self.critic_net.apply({'params': critic_params}, feat)

  def value(self, critic_params, feat):
    return twohot_mean(self.critic_logits(critic_params, feat), self.wm.bins)

  # --- imagination -------------------------------------------------------------------
  def imagine(self, wm_params, actor_params, start, key):
    """Roll the actor through the prior for H steps from `start` states [N, ..].

    Returns feats [H+1, N, F] (s_0..s_H), actions [H, N, A], entropies [H, N]."""
    rssm = self.wm.rssm

    def step(state, key):
      ka, kz = jax.random.split(key)
      # the actor sees its input as data: gradients reach it through its actions only
      mean, std = self.actor(actor_params, sg(rssm.feat(state)))
      action = dists.normal_sample(mean, std, ka)
      nxt = rssm.img_step(wm_params['rssm'], state, action, kz)
      return nxt, (rssm.feat(nxt), action, dists.normal_entropy(std))

    keys = jax.random.split(key, self.cfg.horizon)
    _, (feats, actions, ent) = jax.lax.scan(step, start, keys)
    feats = jnp.concatenate([rssm.feat(start)[None], feats], 0)
    return feats, actions, ent

  def _critic_terms(self, params, slow, name, feat, signal, cont, weight):
    """Lambda-returns of `signal` bootstrapped with critic `name`, and its loss."""
    cfg, bins = self.cfg, self.wm.bins
    value = self.value(sg(params[name]), feat)            # grads reach feat only
    rets = ret_fns.lambda_returns(signal, value, cont, cfg.gamma, cfg.return_lambda)
    logits = self.critic_logits(params[name], sg(feat))  # grads reach params only
    slow_mean = sg(self.value(slow[name], sg(feat)))
    # all H+1 states, the last with weight 0 (slicing the inputs would copy them)
    target = jnp.concatenate([sg(rets), jnp.zeros_like(rets[:1])], 0)
    nll = twohot_nll(logits, target, bins, extra=slow_mean, extra_weight=cfg.slow_reg)
    weight = jnp.concatenate([weight[:-1], jnp.zeros_like(weight[:1])], 0)
    return rets, value, (weight * nll).sum() / rets.size

  def _replay_critic_loss(self, params, slow, name, feat0, rets, real, replay):
    """Critic `name` on the replay states [B*T, F] against returns of the real signal
    `real` [B, T]; `rets` [H, B*T] are the imagined returns (R_0 bootstraps)."""
    cfg, bins = self.cfg, self.wm.bins
    b, t = real.shape
    tm = lambda x: jnp.swapaxes(x.reshape(b, t, *x.shape[1:]), 0, 1)   # [N, ..] -> [T, B, ..]
    seq = lambda x: jnp.swapaxes(x, 0, 1)                                 # [B, T] -> [T, B]
    target = ret_fns.lambda_returns(seq(real)[1:], tm(sg(rets[0])), seq(replay['cont'])[1:],
                                    cfg.gamma, cfg.return_lambda, cut=seq(replay['first'])[1:])
    feat = tm(sg(feat0))[:-1]
    slow_mean = sg(self.value(slow[name], feat))
    nll = twohot_nll(self.critic_logits(params[name], feat), sg(target), bins,
                     extra=slow_mean, extra_weight=cfg.slow_reg)
    return target, cfg.replay_critic * nll.mean()

  def loss(self, params, slow, wm_params, start, start_cont, retnorm, lag, key, replay=None):
    """All behaviour losses; returns (total, (metrics, new retnorm, violation g)).

    `replay` (used where behavior.replay_critic > 0): the batch's real 'reward' (x reward_scale),
    'cost', 'cont' (1 - is_terminal) and 'first' (is_first), each [B, T] with
    B * T = N, the start states' order."""
    cfg, wm = self.cfg, self.wm
    wm_params = sg(wm_params)
    # heads see all H+1 states and their outputs are sliced: slicing the [H+1, N, F]
    # features instead would copy them
    feat, _, ent = self.imagine(wm_params, params['actor'], start, key)
    cont = (wm.cont_logit(wm_params, sg(feat)) > 0).astype(jnp.float32)
    cont = jnp.concatenate([start_cont[None], cont[1:]], 0)
    weight = sg(ret_fns.discount_weights(cont, cfg.gamma))

    reward = wm.reward(wm_params, feat)[1:]
    rets, value, critic_loss = self._critic_terms(
        params, slow, 'critic', feat, reward, cont[1:], weight)
    retnorm = ret_fns.retnorm_update(retnorm, rets, cfg.retnorm_decay,
                                     cfg.retnorm_low, cfg.retnorm_high)
    scale = ret_fns.retnorm_scale(retnorm, cfg.retnorm_floor)
    adv = (rets - value[:-1]) / sg(scale)
    actor_loss = (weight[:-1] * (-adv - cfg.entropy * ent)).mean()
    total = actor_loss + critic_loss
    use_replay = replay is not None and cfg.replay_critic > 0
    if use_replay:
      target, rep_loss = self._replay_critic_loss(params, slow, 'critic', feat[0], rets,
                                                  replay['reward'], replay)
      total = total + rep_loss
    metrics = {
        'actor/loss': actor_loss, 'actor/entropy': ent.mean(), 'critic/loss': critic_loss,
        'critic/value': value.mean(), 'critic/return': rets.mean(),
        'critic/retnorm_scale': scale, 'imag/reward': reward.mean(), 'imag/cont': cont.mean(),
    }
    if use_replay:
      metrics.update({'critic/replay_loss': rep_loss, 'critic/replay_return': target.mean()})
    g = jnp.zeros(())
    if self.use_cost_critic:
      if self.cost_fn is None:
        raise RuntimeError("behavior.cost_source 'obs': attach the agent to its "
                           'environments before training (the coordinate layout)')
      cost = self.cost_fn(wm_params, feat)[1:]
      cost_rets, cost_value, cost_loss = self._critic_terms(
          params, slow, 'cost_critic', feat, cost, cont[1:], weight)
      total = total + cost_loss
      metrics.update({'cost_critic/loss': cost_loss, 'cost_critic/value': cost_value.mean(),
                      'cost_critic/return': cost_rets.mean(), 'imag/cost': cost.mean()})
      if use_replay:
        target, rep_loss = self._replay_critic_loss(params, slow, 'cost_critic', feat[0],
                                                    cost_rets, replay['cost'], replay)
        total = total + rep_loss
        metrics.update({'cost_critic/replay_loss': rep_loss,
                        'cost_critic/replay_return': target.mean()})
      if self.lag_cfg is not None:
        estimate = lag_fns.cost_estimate(cost_rets, self.lag_cfg.pessimistic)
        g = estimate - self.cost_limit
        if self.lag_cfg.multiplier == 'pid':
          # S >= 1 here: below 1 (the floor is lower, for small rewards) dividing would
          # magnify the cost term before the actor has any return to weigh it against
          penalty = sg(lag['lam']) * estimate / sg(jnp.maximum(scale, 1.0))
        else:
          penalty = lag_fns.psi(g, sg(lag['lam']), sg(lag['mu']))
        total = total + penalty
        metrics.update({'lag/cost_estimate': estimate, 'lag/violation': g, 'lag/psi': penalty})
    return total, (metrics, retnorm, sg(g))
