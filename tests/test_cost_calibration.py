"""The world model's cost head predicts the expected cost, unbiased, although its loss
weights costly steps x `model.cost_weight` (defect: the weight used to multiply the
fitted odds of a cost by 10, 0.5% reading as 4.8%)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from safedreamer.config.schema import Model
from safedreamer.model.world_model import WorldModel

FEAT = 16


def sequences(seed, batch, length=32):
  """Synthetic sequences of model features [B, T, F]; about 1% of steps are costly,
  with a cost of 1-4 (counts of hazard steps within one agent step), more likely
  where feature 0 is high. Returns features, expected cost and sampled cost."""
  kx, kc, ks = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, (batch, length, FEAT))
  prob = jax.nn.sigmoid(3.0 * (x[..., 0] - 2.4))
  size = jax.random.randint(ks, x.shape[:-1], 1, 5).astype(jnp.float32)
  costly = jax.random.uniform(kc, x.shape[:-1]) < prob
  return x, prob * 2.5, jnp.where(costly, size, 0.0)


@pytest.mark.parametrize('cost_head', ['twohot', 'hurdle'])
def test_cost_head_at_the_default_weight_predicts_the_mean_cost(cost_head):
  cfg = Model(cost_head=cost_head)
  assert cfg.cost_weight == 10.0          # the default, the authors' weight
  wm = WorldModel(cfg, {'vector': ((3,), np.float32)}, act_dim=2)
  head = wm.cost_head
  params = head.init(jax.random.PRNGKey(0), jnp.zeros((1, FEAT)))['params']
  opt = optax.adam(1e-3)

  @jax.jit
  def step(params, state, seed):
    x, _, cost = sequences(seed, 16)
    loss = lambda p: wm.cost_nll(head.apply({'params': p}, x), cost).mean()
    updates, state = opt.update(jax.grad(loss)(params), state)
    return optax.apply_updates(params, updates), state

  state = opt.init(params)
  for i in range(1500):
    params, state = step(params, state, i)
  x, expected, cost = sequences(10**6, 512)   # held-out steps
  pred = wm.cost_mean(head.apply({'params': params}, x))
  assert 0.005 < float((cost > 0).mean()) < 0.02
  assert abs(float(pred.mean()) / float(expected.mean()) - 1) < 0.15, (
      float(pred.mean()), float(expected.mean()))
  # it also ranks: costly-looking steps are predicted costlier than the rest
  hot = x[..., 0] > 2.4
  assert float(pred[hot].mean()) > 10 * float(pred[~hot].mean())


@pytest.mark.parametrize('cost_head', ['twohot', 'hurdle'])
@pytest.mark.parametrize('bins', [31, 255])
def test_a_fresh_cost_head_predicts_no_cost(cost_head, bins):
  """Read as P(cost > 0) x size, a uniform two-hot head would predict thousands (the
  positive bins' symlog mean is ~10): the prior keeps a fresh head near 0, so
  imagination does not start with a huge cost (and a Lagrange multiplier that climbs
  on it, as it did to 460 on toy/hazard)."""
  wm = WorldModel(Model(cost_head=cost_head, bins=bins), {'vector': ((3,), np.float32)}, 2)
  out = jnp.zeros((5, 2 if cost_head == 'hurdle' else bins))   # a zero-initialised output
  assert float(jnp.abs(wm.cost_mean(out)).max()) < 0.03
