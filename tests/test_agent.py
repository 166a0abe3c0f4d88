"""agents/dreamer.py: the compiled update and policy, checkpoints, methods, planning API."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safedreamer.agents.dreamer import DreamerAgent
from safedreamer.behavior.plan_model import PlanModel
from safedreamer.config.load import load_config

OBS = {'vec': ((6,), np.float32), 'log_pos': ((2,), np.float32)}
ACT = 2


def make_batch(cfg, obs_space=OBS, seed=0):
  B, T = cfg.replay.batch_size, cfg.replay.batch_length
  rng = np.random.default_rng(seed)
  batch = {}
  for k, (shape, dtype) in obs_space.items():
    if np.dtype(dtype) == np.uint8:
      batch[k] = rng.integers(0, 256, (B, T) + shape, np.uint8)
    else:
      batch[k] = rng.normal(size=(B, T) + shape).astype(dtype)
  is_first = np.zeros((B, T), bool)
  is_first[:, 0] = is_first[0, T // 2] = True
  batch['action'] = np.where(is_first[..., None], 0, rng.uniform(-1, 1, (B, T, ACT)))
  batch['reward'] = rng.normal(size=(B, T)).astype(np.float32)
  batch['cost'] = (rng.uniform(size=(B, T)) < 0.2).astype(np.float32)
  batch['is_first'] = is_first
  batch['is_last'] = np.zeros((B, T), bool)
  batch['is_terminal'] = np.zeros((B, T), bool)
  batch['is_last'][1, -3] = batch['is_terminal'][1, -3] = True
  return batch


@pytest.fixture(scope='module')
def agent():
  return DreamerAgent(load_config(['tiny', 'bsrp_lag']), OBS, ACT)


def shapes(tree):
  return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


def test_update_shapes_metrics_and_single_compile(agent):
  cfg = agent.config
  before = shapes(agent.state)
  metrics = [agent.train(make_batch(cfg, seed=0))]
  traces = dict(agent.trace_counts)
  metrics += [agent.train(make_batch(cfg, seed=i)) for i in (1, 2)]
  assert shapes(agent.state) == before
  assert int(agent.state['step']) == 3
  for m in metrics:
    assert all(isinstance(v, float) and np.isfinite(v) for v in m.values()), m
  for key in ('wm/loss', 'actor/loss', 'critic/loss', 'cost_critic/loss', 'lag/lambda', 'lag/mu',
              'lag/cost_estimate', 'lag/violation'):
    assert key in metrics[-1]
  # lam, mu follow the update rule from the logged violation
  lam0, mu0 = metrics[0]['lag/lambda'], metrics[0]['lag/mu']
  g = metrics[1]['lag/violation']
  np.testing.assert_allclose(metrics[1]['lag/lambda'], max(0.0, lam0 + mu0 * g), rtol=1e-5)
  np.testing.assert_allclose(metrics[1]['lag/mu'], mu0 * (1 + cfg.lagrangian.penalty_power),
                             rtol=1e-6)
  # the policy: train (sample) and eval (mode) share one compiled program
  state = agent.init_policy_state(3)
  obs = {'vec': np.zeros((3, 6), np.float32), 'is_first': np.ones(3, bool)}
  for i, mode in enumerate(('train', 'eval', 'train', 'eval')):
    action, state = agent.policy(obs, state, mode)
    obs['is_first'] = np.zeros(3, bool)
    assert action.shape == (3, ACT) and np.abs(action).max() <= 1.0
    if i == 0:
      traces['policy'] = agent.trace_counts['policy']
  # later updates and policy steps (either mode) reuse the compiled programs
  assert agent.trace_counts == traces


def test_eval_policy_is_the_actor_mode_and_is_first_resets(agent):
  params = agent.params
  obs = {'vec': jnp.ones((2, 6)), 'is_first': jnp.array([True, False])}
  fresh = agent.init_policy_state(2)
  junk = jax.tree.map(lambda x: x + 3.0, fresh)
  key = jax.random.PRNGKey(0)
  _, s_fresh, _ = agent.core._policy(params, fresh, obs, key, False)
  a_junk, s_junk, _ = agent.core._policy(params, junk, obs, key, False)
  np.testing.assert_allclose(s_fresh['latent']['deter'][0], s_junk['latent']['deter'][0], atol=1e-6)
  assert not np.allclose(s_fresh['latent']['deter'][1], s_junk['latent']['deter'][1])
  mean, _ = agent.behavior.actor(params['actor'], agent.wm.rssm.feat(s_junk['latent']))
  np.testing.assert_allclose(a_junk, mean, atol=1e-6)


def test_save_load_continues_identically():
  cfg = load_config(['tiny', 'bsrp_lag'])
  a = DreamerAgent(cfg, OBS, ACT)
  a.train(make_batch(cfg, seed=0))
  saved = a.save()
  leaves = jax.tree.leaves(saved)
  assert all(isinstance(x, (np.ndarray, np.generic)) for x in leaves)
  b = DreamerAgent(load_config(['tiny', 'bsrp_lag'], {'seed': 7}), OBS, ACT)
  b.load(saved)
  batch = make_batch(cfg, seed=1)
  ma, mb = a.train(batch), b.train(batch)
  assert ma == mb
  jax.tree.map(np.testing.assert_array_equal, a.save(), b.save())
  obs = {'vec': np.ones((2, 6), np.float32), 'is_first': np.ones(2, bool)}
  np.testing.assert_array_equal(a.policy(obs, a.init_policy_state(2), 'train')[0],
                                b.policy(obs, b.init_policy_state(2), 'train')[0])


def test_dreamerv3_ignores_costs():
  cfg = load_config(['tiny', 'dreamerv3'])
  agent = DreamerAgent(cfg, OBS, ACT)
  assert set(agent.params) == {'wm', 'actor', 'critic'}
  metrics = agent.train(make_batch(cfg))
  assert 'wm/cost' in metrics  # the cost head is still trained for reports
  assert not any(k.startswith(('lag/', 'cost_critic/')) for k in metrics)
  assert np.allclose(agent.plan_model().cost_value(agent.init_policy_state(3)['latent']), 0.0)


def test_plan_model_inside_jit(agent):
  N = 5

  @jax.jit
  def rollout(params, key):
    pm = agent.plan_model(params)
    assert isinstance(pm, PlanModel)
    s = agent.wm.rssm.initial(params['wm']['rssm'], N)
    a = pm.actor(key, s)
    s2 = pm.step(s, a)
    return a, s2, pm.reward(s2), pm.cost(s2), pm.cont(s2), pm.value(s2), pm.cost_value(s2)

  a, s2, *scalars = rollout(agent.params, jax.random.PRNGKey(0))
  assert a.shape == (N, ACT) and np.abs(a).max() <= 1
  assert s2['deter'].shape == (N, agent.config.model.deter)
  assert all(x.shape == (N,) for x in scalars)
  assert np.all((scalars[2] >= 0) & (scalars[2] <= 1))


def test_vision_agent_updates():
  space = {'image_front': ((64, 64, 3), np.uint8), 'image_rear': ((64, 64, 3), np.uint8),
           'vec': ((4,), np.float32)}
  cfg = load_config(['tiny', 'bsrp_lag'], {'replay.batch_size': 2, 'replay.batch_length': 8})
  agent = DreamerAgent(cfg, space, ACT)
  m = agent.train(make_batch(cfg, space))
  assert np.isfinite(m['wm/loss']) and 'wm/dec_image_front' in m and 'wm/dec_image_rear' in m
  obs = {k: np.zeros((2,) + s, d) for k, (s, d) in space.items()}
  action, _ = agent.policy(dict(obs, is_first=np.ones(2, bool)), agent.init_policy_state(2), 'eval')
  assert action.shape == (2, ACT)


def test_reward_scale_trains_on_scaled_rewards_and_reports_env_units():
  """An agent with reward_scale 10 fed rewards r / 10 learns exactly what an agent
  with scale 1 fed r learns; its open-loop report is back in the batch's units."""
  over = {'replay.batch_length': 30}
  plain = DreamerAgent(load_config(['tiny', 'bsrp_lag'], over), OBS, ACT)
  scaled = DreamerAgent(load_config(['tiny', 'bsrp_lag'], {**over, 'model.reward_scale': 10.0}),
                        OBS, ACT)
  batch = make_batch(plain.config)
  small = dict(batch, reward=batch['reward'] / 10)
  m_plain, m_scaled = plain.train(batch), scaled.train(small)
  np.testing.assert_allclose(m_scaled['wm/reward'], m_plain['wm/reward'], rtol=1e-4)
  np.testing.assert_allclose(m_scaled['critic/return'], m_plain['critic/return'], rtol=1e-3,
                             atol=1e-6)
  r_plain = plain.report(batch)['prediction']['reward']
  r_scaled = scaled.report(small)['prediction']['reward']
  assert np.abs(r_plain).max() > 0  # one update moved the reward head off zero
  np.testing.assert_allclose(r_scaled, r_plain / 10, rtol=1e-3, atol=1e-6)


def test_planner_sees_returns_in_environment_units():
  """OSRP-Lag ranks by J_R - lam J_C with lam capped at pid.lam_max in environment
  return per unit of cost: the plan model's rewards and values are in the
  environment's units whatever model.reward_scale is (they were x reward_scale)."""
  over = {'replay.batch_length': 30}
  plain = DreamerAgent(load_config(['tiny', 'osrp_lag'], over), OBS, ACT)
  scaled = DreamerAgent(load_config(['tiny', 'osrp_lag'], {**over, 'model.reward_scale': 10.0}),
                        OBS, ACT)
  batch = make_batch(plain.config)
  plain.train(batch)
  scaled.train(dict(batch, reward=batch['reward'] / 10))   # the same task, rewards / 10
  states = plain.init_policy_state(4)['latent']
  states = jax.tree.map(lambda x: x + jax.random.normal(jax.random.PRNGKey(0), x.shape), states)
  # after one update the critics' mirrored bins still cancel (value exactly 0): give
  # both agents one critic with non-zero outputs, learned in reward units x 10
  critic = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape),
                        scaled.params['critic'])
  for name in ('reward', 'value'):
    want = getattr(plain.plan_model(dict(plain.params, critic=critic)), name)(states) / 10
    got = getattr(scaled.plan_model(dict(scaled.params, critic=critic)), name)(states)
    assert float(jnp.abs(want).max()) > 0
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)


def test_two_agents_share_no_mutable_state():
  """Agents of one shape share compiled programs, nothing else: attaching one to a
  coordinate layout, training it or planning with it leaves the other as it was."""
  from test_obs_cost import NoCoordsEnvs
  from safedreamer.envs.toy import ToyHazard
  config = load_config(['tiny', 'bsrp_lag', 'toy'], {'env.obs': 'coords',
                                                    'behavior.cost_source': 'obs'})
  a = DreamerAgent(config, ToyHazard.obs_space, ACT)
  b = DreamerAgent(config.model_copy(update={'seed': 1}), ToyHazard.obs_space, ACT)
  head = DreamerAgent(load_config(['tiny', 'bsrp_lag', 'toy']), ToyHazard.obs_space, ACT)
  head_cost_fn = head.behavior.cost_fn
  a.attach(NoCoordsEnvs())
  assert a.behavior.cost_fn is not None and b.behavior.cost_fn is None
  assert head.behavior.cost_fn is head_cost_fn        # a head-cost agent keeps its own
  with pytest.raises(RuntimeError, match='attach'):    # b was never attached
    b.train(make_batch(config, ToyHazard.obs_space))
  before = jax.tree.map(np.array, b.save())
  a.train(make_batch(config, ToyHazard.obs_space))
  after = jax.tree.map(np.array, b.save())
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
  leaves = lambda agent: {id(x) for x in jax.tree.leaves(agent.state)}
  assert not leaves(a) & leaves(b)
  b.attach(NoCoordsEnvs())   # the same layout: b takes the compiled core, not a's state
  assert b.core is a.core and b.state is not a.state


def test_bsrp_pid_multiplier_moves_on_training_episodes_and_is_checkpointed():
  """lagrangian.multiplier 'pid': lam comes from the PID on training episodes' costs
  (hand-computed below), the update leaves it alone, the actor's term is lam * C / max(S, 1),
  and the controller survives a save/load round trip."""
  cfg = load_config(['tiny', 'bsrp_lag'], {'lagrangian.multiplier': 'pid'})
  a = DreamerAgent(cfg, OBS, ACT)
  assert a.episode_end(1.0, 50.0, 'eval') == {}          # evaluation: no move
  assert float(a.state['lag']['lam']) == 0.0
  # defaults kp 0.05, ki 5e-4, cost EMA 0.9 (bias-corrected), P = Jbar - b, b = 2
  m = a.episode_end(1.0, 30.0, 'train')                  # Jbar 30, delta 28
  np.testing.assert_allclose(m['pid/lam'], 0.05 * 28 + 5e-4 * 28, rtol=1e-6)
  m = a.episode_end(1.0, 0.0, 'train')                   # Jbar 30 - 30 * 0.1/0.19
  jbar = 30.0 - 30.0 * 0.1 / 0.19
  lam = 0.05 * (jbar - 2) + 5e-4 * (28 + jbar - 2)
  np.testing.assert_allclose([m['pid/jbar'], m['pid/lam']], [jbar, lam], rtol=1e-6)
  np.testing.assert_allclose(float(a.state['lag']['lam']), lam, rtol=1e-6)
  out = a.train(make_batch(cfg))
  np.testing.assert_allclose(out['lag/lambda'], lam, rtol=1e-6)
  np.testing.assert_allclose(
      out['lag/psi'], lam * out['lag/cost_estimate'] / max(1.0, out['critic/retnorm_scale']),
      rtol=1e-5)
  b = DreamerAgent(cfg, OBS, ACT)
  b.load(a.save())
  assert float(b.lag_pid.lam) == float(a.lag_pid.lam) and int(b.lag_pid.count) == 2
  np.testing.assert_allclose(float(b.state['lag']['lam']), lam, rtol=1e-6)


def test_several_world_model_updates_per_update():
  """model.updates 2: a batch of 2B sequences is two world-model updates, one per half,
  in order, as if made one after the other; the metrics are their mean; the training
  loop's batch must have that size."""
  cfg = load_config(['tiny', 'bsrp_lag'], {'model.updates': 2})
  agent = DreamerAgent(cfg, OBS, ACT)
  core = agent.core
  before = jax.tree.map(jnp.copy, agent.state)     # the update donates its state
  halves = [make_batch(cfg, seed=s) for s in (0, 1)]
  metrics = agent.train({k: np.concatenate([h[k] for h in halves]) for k in halves[0]})

  _, k_wm, _ = jax.random.split(before['key'], 3)
  step = jax.jit(core._wm_step)
  params, opt = before['params']['wm'], before['opt']['wm']
  losses = []
  for half, key in zip(halves, jax.random.split(k_wm, 2)):
    params, opt, m, _ = step(params, opt, agent._prepare_batch(half), key)
    losses.append(float(m['wm/loss']))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               agent.state['params']['wm'], params)
  np.testing.assert_allclose(metrics['wm/loss'], np.mean(losses), rtol=1e-5)
  assert abs(losses[0] - losses[1]) > 1e-4       # two batches, not one seen twice
  with pytest.raises(ValueError, match='model.updates'):
    agent.train(halves[0])
