"""The CCEM planner on the real world model (DreamerAgent.plan_model, tiny preset):
built from traced parameters inside one jitted function, batched over environments,
compiled once for every value of the traced arguments."""
import jax
import jax.numpy as jnp
import numpy as np

from safedreamer.agents.dreamer import DreamerAgent
from safedreamer.behavior import ccem
from safedreamer.config.load import load_config


def test_plans_with_the_world_model_and_compiles_once():
  config = load_config(['tiny'], {'method': 'osrp_lag', 'planner.mixture': 0.25})
  agent = DreamerAgent(config, {'vector': ((7,), np.float32)}, 2)
  cfg = ccem.CCEMConfig.from_config(config)
  assert cfg.lagrangian and cfg.actor_samples == 8
  traces = []

  @jax.jit
  def policy(params, latent, means, resets, keys, multiplier, sample):
    traces.append(1)
    model = agent.plan_model(params)
    return ccem.plan_batch(model, cfg, latent, means, resets, keys, config.cost_limit,
                           250.0, multiplier, sample)

  num_envs = 3
  latent = agent.init_policy_state(num_envs)['latent']
  means = ccem.initial_means(num_envs, cfg, 2)
  keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
  out = policy(agent.params, latent, means, jnp.ones(num_envs, bool), keys, 0.0, True)
  assert out.action.shape == (num_envs, 2) and out.mean.shape == (num_envs, cfg.horizon, 2)
  assert all(v.shape == (num_envs,) for v in out.metrics.values())
  assert np.all(np.isfinite(out.mean)) and np.all(np.abs(out.action) <= 1)
  params = jax.tree_util.tree_map(lambda x: x * 1.01, agent.params)
  again = policy(params, latent, out.mean, jnp.array([False, True, False]), keys, 0.05, False)
  np.testing.assert_allclose(again.action, again.mean[:, 0])
  assert len(traces) == 1
