"""Gradient routing of the behaviour losses (behavior/actor_critic.py) on a hand-built
world model: a point that moves by 0.1 x its action, reward -|pos - goal|^2, cost the
first coordinate (so less cost means moving left)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.behavior.actor_critic import Behavior
from safedreamer.config.schema import Behavior as BehaviorCfg
from safedreamer.config.schema import Lagrangian as LagrangianCfg
from safedreamer.nn.functions import twohot_bins

GOAL = jnp.array([1.0, 1.0])


class PointRSSM:

  def feat(self, state):
    return state['pos']

  def img_step(self, params, state, action, key=None):
    return {'pos': state['pos'] + params['speed'] * action}


def point_model():
  bins = twohot_bins(31)
  return types.SimpleNamespace(
      rssm=PointRSSM(), bins=bins, feat_dim=2, cfg=types.SimpleNamespace(bins=31),
      reward=lambda p, f: -jnp.sum((f - GOAL) ** 2, -1),
      cost=lambda p, f: f[..., 0] + 2.0,
      cont_logit=lambda p, f: jnp.full(f.shape[:-1], 10.0))


def make(lag_cfg=LagrangianCfg(pessimistic=True)):
  cfg = BehaviorCfg(horizon=5, layers=1, units=16)
  beh = Behavior(cfg, point_model(), act_dim=2, cost_critic=True, lagrangian_cfg=lag_cfg,
                 cost_limit=0.5)
  params = beh.init(jax.random.PRNGKey(0))
  # critics with non-zero outputs, so that their values depend on the state
  for c in beh.critics:
    params[c] = jax.tree.map(lambda x: x + 0.1, params[c])
  slow = {c: params[c] for c in beh.critics}
  start = {'pos': jax.random.normal(jax.random.PRNGKey(1), (8, 2))}
  args = dict(slow=slow, wm_params={'rssm': {'speed': jnp.float32(0.1)}}, start=start,
              start_cont=jnp.ones(8), retnorm={'low': jnp.float32(0.0), 'high': jnp.float32(1.0)},
              lag={'lam': jnp.float32(1.0), 'mu': jnp.float32(0.1)}, key=jax.random.PRNGKey(2))
  return beh, params, args


def metric_grad(beh, params, args, name, wrt='params'):
  def f(params, wm_params):
    out = beh.loss(params, **dict(args, wm_params=wm_params))
    return out[1][0][name]
  grads = jax.grad(f, argnums=(0, 1))(params, args['wm_params'])
  return grads[0] if wrt == 'params' else grads[1]


def norms(tree):
  return {k: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(v))) for k, v in tree.items()}


@pytest.mark.parametrize('term,owner', [('actor/loss', 'actor'), ('critic/loss', 'critic'),
                                        ('cost_critic/loss', 'cost_critic'),
                                        ('lag/psi', 'actor')])
def test_each_loss_term_reaches_only_its_own_parameters(term, owner):
  beh, params, args = make()
  n = norms(metric_grad(beh, params, args, term))
  assert n[owner] > 1e-6, n
  assert all(v == 0.0 for k, v in n.items() if k != owner), n
  # and never the world model
  wm = metric_grad(beh, params, args, term, wrt='wm')
  assert float(jnp.abs(wm['rssm']['speed'])) == 0.0


def test_actor_input_is_a_stop_gradient():
  """Every Dreamer stops the gradient at the actor's input: the actions of an imagined
  trajectory do not depend on the start state through the actor's input (they do
  through nothing else: the sampling noise is fixed by the key)."""
  beh, params, args = make()
  def actions_sum(pos):
    _, actions, _ = beh.imagine(args['wm_params'], params['actor'], {'pos': pos}, args['key'])
    return actions.sum()
  grad = jax.grad(actions_sum)(args['start']['pos'])
  np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_lagrangian_gradient_lowers_the_imagined_cost():
  beh, params, args = make()
  cost = lambda p: float(beh.loss(p, **args)[1][0]['lag/cost_estimate'])
  before = cost(params)
  grad = metric_grad(beh, params, args, 'lag/psi')
  stepped = dict(params, actor=jax.tree.map(lambda p, g: p - 0.05 * g, params['actor'],
                                            grad['actor']))
  after = cost(stepped)
  assert after < before - 1e-3, (before, after)


def replay_args(args, cost_per_step=3.0):
  """The 8 start states as a replay batch of 2 sequences x 4 steps, every real step
  costly (the hand-built model's imagined cost is first coordinate + 2)."""
  shape = (2, 4)
  replay = {'reward': jnp.zeros(shape), 'cost': jnp.full(shape, cost_per_step),
            'cont': jnp.ones(shape), 'first': jnp.zeros(shape, bool)}
  return dict(args, replay=replay)


@pytest.mark.parametrize('term,owner', [('critic/replay_loss', 'critic'),
                                        ('cost_critic/replay_loss', 'cost_critic')])
def test_replay_critic_loss_reaches_only_its_critic(term, owner):
  beh, params, args = make()
  beh.cfg = beh.cfg.model_copy(update={'replay_critic': 0.3})
  n = norms(metric_grad(beh, params, replay_args(args), term))
  assert n[owner] > 1e-6, n
  assert all(v == 0.0 for k, v in n.items() if k != owner), n


def test_replay_critic_pulls_the_cost_value_towards_the_real_cost():
  """Real steps cost 3 each: descending the replay loss alone raises the cost critic's
  value on the replay states; with weight 0 the loss is absent."""
  beh, params, args = make()
  args = replay_args(args, cost_per_step=3.0)
  value = lambda p: float(beh.value(p['cost_critic'], args['start']['pos']).mean())
  assert 'cost_critic/replay_loss' not in beh.loss(params, **args)[1][0]
  beh.cfg = beh.cfg.model_copy(update={'replay_critic': 0.3})
  target = float(beh.loss(params, **args)[1][0]['cost_critic/replay_return'])
  before = value(params)
  assert target > before + 1.0, (target, before)
  for _ in range(30):
    grad = metric_grad(beh, params, args, 'cost_critic/replay_loss')
    params = dict(params, cost_critic=jax.tree.map(lambda p, g: p - 0.5 * g,
                                                   params['cost_critic'], grad['cost_critic']))
  assert value(params) > before + 0.5 * (target - before), (before, value(params), target)
