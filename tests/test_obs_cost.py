"""Cost from decoded observations (behavior/obs_cost.py): planner.cost_source='obs'
and behavior.cost_source='obs' (cost critic and BSRP-Lag's actor)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.agents.dreamer import DreamerAgent
from safedreamer.agents.planner import PlannerAgent
from safedreamer.behavior import obs_cost
from safedreamer.config.load import load_config
from safedreamer.envs import coords
from safedreamer.envs.toy import HAZARD_RADIUS, ToyHazard
from safedreamer.nn.functions import symlog


class NoCoordsEnvs:
  episode_length = 100

  def call(self, index, method, *args):
    raise RuntimeError(f'env {index}: {method} failed')


class CoordsEnvs(NoCoordsEnvs):
  """Answers like a wrapped Safety-Gymnasium env (layout through __getattr__)."""

  def __init__(self, layout, params):
    self.layout, self.params = layout, params

  def call(self, index, method, *args):
    if method == 'coords_params':
      return self.params
    if method == '__getattr__' and args == ('coords_layout',):
      return self.layout
    return super().call(index, method, *args)


def fake_world_model(size):
  """decode(feat) = symlog(feat): the 'model state' is the observation itself."""
  codec = types.SimpleNamespace(vec={'vector': size},
                                decode=lambda params, feat: {'vector': symlog(feat)})
  return types.SimpleNamespace(codec=codec, rssm=types.SimpleNamespace(feat=lambda s: s))


def test_toy_cost_counts_the_decoded_hazard_offset():
  spec = obs_cost.coords_spec(NoCoordsEnvs(), 'toy/hazard')
  cost = jax.jit(lambda f: obs_cost.feat_cost(fake_world_model(8), spec)({'decoder': None}, f))
  obs = np.zeros((5, 8), np.float32)
  obs[:, 2:4] = [[0.3, 0.0], [0.6, 0.0], [-0.2, -0.4], [3.0, 0.2], [0.0, -0.49]]
  obs[:, 0:2] = 5.0          # the goal (unused for hazards)
  np.testing.assert_array_equal(cost(jnp.asarray(obs)), [1, 0, 1, 0, 1])
  # ... which is the environment's own rule: cost 1 inside the hazard's radius
  assert np.array_equal(np.hypot(obs[:, 2], obs[:, 3]) < HAZARD_RADIUS, [1, 0, 1, 0, 1])


def test_spec_from_the_environments_and_errors():
  layout = {'goal': slice(0, 2), 'hazards': slice(2, 6), 'vases': slice(6, 8)}
  params = {'sizes': {'hazards': 0.35}, 'footprint': coords.POINT_FOOTPRINT}
  spec = obs_cost.coords_spec(CoordsEnvs(layout, params), 'safetygym/Whatever-v0')
  assert spec.layout == layout and spec.size == 8
  assert spec.sizes['hazards'] == 0.35 and spec.sizes['vases'] == coords.DEFAULT_SIZES['vases']
  moved = spec._replace(footprint=spec.footprint + 0.01)   # e.g. a Car's turning wheels
  assert moved.key() == spec.key()                         # no new compiled policy
  assert spec._replace(sizes=dict(spec.sizes, hazards=0.3)).key() != spec.key()
  with_layout = dict(params, layout=layout)   # an env that includes the layout itself
  assert obs_cost.coords_spec(CoordsEnvs(None, with_layout), 'x/y').layout == layout
  with pytest.raises(ValueError, match='cost_source'):
    obs_cost.coords_spec(NoCoordsEnvs(), 'gym/CartPole-v1')
  with pytest.raises(ValueError, match='numbers'):
    obs_cost.feat_cost(fake_world_model(9), spec)


def test_safety_gym_envs_give_their_layout():
  from safedreamer.envs.registry import make_env_batch
  for repeat in (1, 2):   # a bare env and one behind the ActionRepeat wrapper
    config = load_config(['osrp_vector'], {'task': 'safetygym/SafetyPointGoal1-v0',
                                           'env.action_repeat': repeat})
    envs = make_env_batch(config.task, config, num_envs=1, parallel=False)
    try:
      spec = obs_cost.coords_spec(envs, config.task)
    finally:
      envs.close()
    assert spec.size == 29 and spec.layout['hazards'] == slice(9, 25)
    assert spec.sizes['hazards'] == pytest.approx(0.25)


def test_planner_agent_plans_with_the_decoded_cost():
  config = load_config(['osrp_vector', 'tiny'], {'task': 'toy/hazard'})
  assert config.planner.cost_source == 'obs' and config.cost_limit == 0.0
  agent = PlannerAgent(config, ToyHazard.obs_space, 2)
  with pytest.raises(RuntimeError, match='attach'):
    agent.plan_model()
  agent.attach(NoCoordsEnvs())
  latent = agent.init_policy_state(3)['latent']
  latent = jax.tree.map(lambda x: x + jax.random.normal(jax.random.PRNGKey(0), x.shape), latent)
  got = agent.plan_model().cost(latent)
  feat = agent.wm.rssm.feat(latent)
  decoded = np.asarray(agent.wm.codec.decode(agent.params['wm']['decoder'], feat)['vector'])
  vec = np.sign(decoded) * np.expm1(np.abs(decoded))
  # per agent step: the count x action repeat, as in imagination
  want = config.env.action_repeat * (np.hypot(vec[:, 2], vec[:, 3]) <= 0.5).astype(np.float32)
  np.testing.assert_array_equal(got, want)
  env = ToyHazard(seed=0)
  obs = {k: np.asarray(v)[None] for k, v in env.reset().items()}
  action, state = agent.policy(obs, agent.init_policy_state(1), 'train')
  assert action.shape == (1, 2) and np.all(np.isfinite(state['mean']))
  agent.attach(NoCoordsEnvs())       # same layout: the compiled policy is kept
  agent.policy(obs, state, 'eval')
  assert agent.trace_counts['plan'] == 1


def test_obs_cost_needs_coordinate_observations():
  from safedreamer.config.load import ConfigError
  with pytest.raises(ConfigError, match='coords'):   # refused before anything runs
    load_config(['osrp_lag', 'tiny'], {'planner.cost_source': 'obs'})
  config = load_config(['osrp_lag', 'tiny'])      # and by the agent, for a config built in code
  config = config.model_copy(update={'planner': config.planner.model_copy(
      update={'cost_source': 'obs'})})
  with pytest.raises(ValueError, match='coords'):
    PlannerAgent(config, {'vector': ((60,), np.float32)}, 2)


@pytest.mark.slow
def test_osrp_vector_trains_on_safety_gym(tmp_path):
  import json
  from safedreamer.run.train import train
  config = load_config(['osrp_vector', 'tiny'], {
      'task': 'safetygym/SafetyPointGoal1-v0', 'run.steps': 1200, 'run.prefill': 400,
      'run.progress': False, 'env.episode_length': 200})
  counters = train(config, tmp_path)
  assert counters['step'] >= 1200 and counters['updates'] > 0
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  planned = [r for r in rows if 'plan/elite_cost' in r]
  assert planned and all(np.isfinite(r['plan/elite_cost']) for r in planned)
  assert all(r['plan/safe_frac'] == 0 for r in planned)   # cost limit 0: never "safe"


def test_soft_count_by_hand():
  layout = {'goal': slice(0, 2), 'hazards': slice(2, 6)}
  obs = np.zeros((3, 6), np.float32)
  obs[:, 2:6] = [[0.25, 0.0, 9, 9], [0.35, 0.0, 9, 9], [0.0, -0.15, 0.0, 0.25]]
  soft = coords.cost_by_type(obs, layout, softness=0.05)['hazards']
  # sigmoid(margin / 0.05): on the 0.25 threshold 1/2; 0.1 outside sigmoid(-2) = 0.1192;
  # 0.1 inside one hazard (0.8808) and on the threshold of the other (0.5)
  np.testing.assert_allclose(soft, [0.5, 0.1192, 1.3808], atol=1e-4)
  np.testing.assert_array_equal(coords.cost_by_type(obs, layout)['hazards'], [1, 0, 2])


def test_feat_cost_counts_and_passes_the_smooth_gradient():
  spec = obs_cost.coords_spec(NoCoordsEnvs(), 'toy/hazard')   # hazard radius 0.5
  cost = obs_cost.feat_cost(fake_world_model(8), spec, softness=0.05, scale=4.0)
  obs = np.zeros((2, 8), np.float32)
  obs[:, 2:4] = [[0.6, 0.0], [0.3, -0.35]]   # 0.1 outside; 0.039 inside (|x| = 0.4610)
  value = cost({'decoder': None}, jnp.asarray(obs))
  np.testing.assert_allclose(value, [0.0, 4.0])   # scale x the hard count
  grad = jax.grad(lambda f: cost({'decoder': None}, f).sum())(jnp.asarray(obs))
  # d/dx 4 sigmoid(z), z = (0.5 - |x|) / 0.05:  -4 sigmoid'(z) / 0.05 * x / |x|
  for row, z_want in ((0, -2.0), (1, 0.7805)):
    x = obs[row, 2:4].astype(np.float64)
    z = (0.5 - np.hypot(*x)) / 0.05
    assert z == pytest.approx(z_want, abs=1e-3)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(grad[row, 2:4], -4 * s * (1 - s) / 0.05 * x / np.hypot(*x),
                               rtol=1e-4, atol=1e-6)
  assert np.all(grad[:, [0, 1, 4, 5, 6, 7]] == 0)   # only the hazard offset matters
  hard = obs_cost.feat_cost(fake_world_model(8), spec, softness=0.0)
  assert np.all(jax.grad(lambda f: hard({'decoder': None}, f).sum())(jnp.asarray(obs)) == 0)


def test_bsrp_lag_imagines_the_decoded_cost():
  from test_agent import make_batch
  config = load_config(['bsrp_lag', 'tiny', 'toy'], {'env.obs': 'coords',
                                                    'behavior.cost_source': 'obs'})
  agent = DreamerAgent(config, ToyHazard.obs_space, 2)
  batch = make_batch(config, ToyHazard.obs_space)
  with pytest.raises(RuntimeError, match='attach'):
    agent.train(batch)
  agent.attach(NoCoordsEnvs())
  metrics = agent.train(batch)
  assert np.isfinite(metrics['actor/loss']) and 'lag/cost_estimate' in metrics
  traces = agent.trace_counts['update']   # (another test may have compiled this core)
  agent.attach(NoCoordsEnvs())       # the same layout: the compiled update is kept
  agent.train(batch)
  assert agent.trace_counts['update'] == traces
  feat = agent.wm.rssm.feat(agent.init_policy_state(4)['latent'])
  decoded = agent.wm.codec.decode(agent.params['wm']['decoder'], feat)['vector']
  vec = np.sign(decoded) * np.expm1(np.abs(decoded))
  want = config.env.action_repeat * (np.hypot(vec[:, 2], vec[:, 3]) <= 0.5)
  np.testing.assert_allclose(agent.behavior.cost_fn(agent.params['wm'], feat), want)
  with pytest.raises(ValueError, match='coords'):
    DreamerAgent(config.model_copy(update={'env': config.env.model_copy(
        update={'obs': 'lidar'})}), ToyHazard.obs_space, 2)


@pytest.mark.parametrize('cost_source', ['obs', 'head'])
def test_planner_and_imagination_count_the_same_episode_cost(cost_source):
  """The same imagined trajectory costs the same in the planner (J_C' = sum * L / H)
  and in imagination (the cost the cost critic learns), in one unit: per agent step,
  i.e. summed over its action_repeat simulator steps."""
  config = load_config(['osrp_vector', 'tiny'], {
      'task': 'toy/hazard', 'env.action_repeat': 3, 'planner.cost_source': cost_source,
      'behavior.cost_source': cost_source})
  agent = PlannerAgent(config, ToyHazard.obs_space, 2)
  agent.attach(NoCoordsEnvs())
  start = agent.init_policy_state(16)['latent']
  start = jax.tree.map(lambda x: x + 2 * jax.random.normal(jax.random.PRNGKey(1), x.shape), start)
  _, actions, _ = agent.behavior.imagine(agent.params['wm'], agent.params['actor'], start,
                                         jax.random.PRNGKey(2))
  model, states = agent.plan_model(), start
  planned, imagined = [], []
  for t in range(actions.shape[0]):      # the planner's (deterministic) rollout
    states = model.step(states, actions[t])
    planned.append(model.cost(states))
    imagined.append(agent.behavior.cost_fn(agent.params['wm'], agent.wm.rssm.feat(states)))
  planned, imagined = jnp.stack(planned).sum(0), jnp.stack(imagined).sum(0)
  assert float(imagined.max()) > 0       # some states are costly
  np.testing.assert_allclose(planned, imagined, rtol=1e-5, atol=1e-5)
