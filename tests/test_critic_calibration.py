"""A critic trained in imagination predicts the mean of its lambda-returns, also where
they are stochastic (a cost critic near hazards). Defect: the two-hot mean was taken
in symlog space (DreamerV3 1.x), symexp(E[symlog R]) <= E[R], and on SafetyPointGoal1
the cost critic read 3.4 against ~10 implied by its own imagined costs."""
import types

import jax
import jax.numpy as jnp
import optax

from safedreamer.behavior.actor_critic import Behavior
from safedreamer.config.schema import Behavior as BehaviorCfg
from safedreamer.nn.functions import twohot_bins


class Walk:
  """A random walk: the state moves by the action; the actor's noise makes it random."""

  def feat(self, state):
    return state['pos']

  def img_step(self, params, state, action, key=None):
    return {'pos': state['pos'] + action}


def hazard_model(bins=255):
  # cost 20 whenever the first coordinate is past 0.5: from the origin, with the actor's
  # noise, each imagined step is costly or not by chance (a bimodal cost return)
  return types.SimpleNamespace(
      rssm=Walk(), bins=twohot_bins(bins), feat_dim=1, cfg=types.SimpleNamespace(bins=bins),
      reward=lambda p, f: jnp.zeros(f.shape[:-1]),
      cost=lambda p, f: 20.0 * (f[..., 0] > 0.5),
      cont_logit=lambda p, f: jnp.full(f.shape[:-1], 10.0))


def test_cost_critic_predicts_the_mean_of_stochastic_cost_returns():
  cfg = BehaviorCfg(horizon=3, gamma=0.5, layers=1, units=32, min_std=0.9, max_std=1.0)
  beh = Behavior(cfg, hazard_model(), act_dim=1, cost_critic=True)
  params = beh.init(jax.random.PRNGKey(0))
  start = {'pos': jnp.zeros((256, 1))}          # every imagined trajectory starts at 0
  opt = optax.adam(3e-3)

  def terms(critic, key):
    """(cost lambda-returns R_0 from the start [N], the critic's value there [N], loss)"""
    feat, _, _ = beh.imagine({'rssm': {}}, params['actor'], start, key)
    cont = jnp.ones(feat.shape[:2])
    p = dict(params, cost_critic=critic)
    rets, value, loss = beh._critic_terms(p, {'cost_critic': critic}, 'cost_critic', feat,
                                          beh.cost_fn({}, feat)[1:], cont[1:], cont)
    return rets[0], value[0], loss

  @jax.jit
  def step(critic, state, key):
    grad = jax.grad(lambda c: terms(c, key)[2])(critic)
    updates, state = opt.update(grad, state)
    return optax.apply_updates(critic, updates), state

  critic, state = params['cost_critic'], opt.init(params['cost_critic'])
  for i in range(600):
    critic, state = step(critic, state, jax.random.PRNGKey(i))
  held_out = [terms(critic, jax.random.PRNGKey(10**6 + i))[:2] for i in range(8)]
  ret = float(jnp.mean(jnp.stack([r for r, _ in held_out])))
  value = float(jnp.mean(jnp.stack([v for _, v in held_out])))
  # from 0 the first imagined steps are costly (20) or not by chance: the returns'
  # mean is several units, and the critic's value at the start matches it
  assert 3.0 < ret < 30.0, ret
  assert abs(value / ret - 1) < 0.1, (value, ret)
