"""agents/planner.py: OSRP / OSRP-Lag acting by CCEM planning in the learned model
(tiny preset, toy/hazard observations): shapes, warm start, one compile, sampling,
PID on training episodes only, checkpoints, end-to-end training."""
import json

import jax
import numpy as np
import pytest

from safedreamer.agents import make_agent
from safedreamer.agents.planner import PlannerAgent
from safedreamer.config.load import load_config
from safedreamer.envs.toy import ToyHazard
from safedreamer.run.checkpoint import Checkpointer
from safedreamer.run.train import train

OBS = ToyHazard.obs_space


class FakeEnvs:
  """What `attach` reads from an EnvBatch; no coordinate layout."""
  episode_length = 100

  def call(self, index, method, *args):
    raise RuntimeError(f'env {index}: {method} failed: no such method')


def observe(num_envs=2, steps=0, is_first=None):
  envs = [ToyHazard(seed=i) for i in range(num_envs)]
  obs = [e.reset() for e in envs]
  for _ in range(steps):
    obs = [e.step(np.array([0.7, 0.2])) for e in envs]
  out = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
  if is_first is not None:
    out['is_first'] = np.asarray(is_first, bool)
  return out


@pytest.fixture(scope='module')
def agent():
  config = load_config(['osrp_lag', 'tiny'], {'task': 'toy/hazard', 'env.action_repeat': 1})
  agent = make_agent(config, OBS, 2)
  assert isinstance(agent, PlannerAgent)
  agent.attach(FakeEnvs())
  return agent


def test_shapes_sampling_warm_start_and_one_compile(agent):
  cfg, n = agent.cfg, 2
  state = agent.init_policy_state(n)
  action, state = agent.policy(observe(n), state, 'train')
  assert action.shape == (n, 2) and np.all(np.abs(action) <= 1)
  assert state['mean'].shape == (n, cfg.horizon, 2)
  assert state['action'].shape == (n, 2)
  assert not np.allclose(action, state['mean'][:, 0])          # sampled while training
  action, state = agent.policy(observe(n, 1), state, 'eval')
  np.testing.assert_allclose(action, state['mean'][:, 0])       # the mean at evaluation
  np.testing.assert_allclose(action, state['action'])

  # Warm start: row 0 continues (its incoming mean matters), row 1 starts an episode
  # (its incoming mean is ignored). Same key, same latent, different incoming means.
  obs = observe(n, 2, is_first=[False, True])
  key = agent.policy_key
  outs = []
  for fill in (0.9, -0.9):
    agent.policy_key = key
    pstate = dict(state, mean=np.full_like(state['mean'], fill))
    outs.append(agent.policy(obs, pstate, 'eval')[1]['mean'])
  assert not np.allclose(outs[0][0], outs[1][0])
  np.testing.assert_array_equal(outs[0][1], outs[1][1])

  # New parameters, a new multiplier, both modes: still the one compiled program.
  agent.state['params'] = jax.tree.map(lambda x: x * 1.01, agent.state['params'])
  agent.episode_end(10.0, 50.0, 'train')
  assert agent.multiplier > 0
  agent.policy(observe(n, 3), state, 'train')
  agent.policy(observe(n, 4), state, 'eval')
  assert agent.trace_counts['plan'] == 1


def test_pid_moves_only_on_training_episodes(agent):
  state = agent.init_policy_state(2)
  agent.policy(observe(2), state, 'train')
  before = agent.pid
  assert agent.episode_end(1.0, 80.0, 'eval') == {}
  assert agent.pid is before
  out = agent.episode_end(1.0, 80.0, 'train')
  assert int(agent.pid.count) == int(before.count) + 1
  assert out['pid/jbar'] > float(before.jbar)
  assert out['pid/lam'] == agent.multiplier == pytest.approx(agent.config.pid.lam_max)
  assert {'pid/p', 'pid/i', 'pid/d'} <= set(out)
  for k in ('plan/safe_frac', 'plan/elite_ret', 'plan/elite_cost', 'plan/elite_cost_ret',
            'plan/std'):
    assert np.isfinite(out[k]), k
  assert 0 <= out['plan/safe_frac'] <= 1
  assert 'plan/safe_frac' not in agent.episode_end(1.0, 0.0, 'train')  # popped


def test_checkpoint_round_trip_with_pid_and_planner_stats(agent, tmp_path):
  agent.policy(observe(2), agent.init_policy_state(2), 'train')   # stats pending
  agent.episode_end(0.0, 3.0, 'train')
  agent.policy(observe(2), agent.init_policy_state(2), 'train')
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, {'agent': agent.save()}, {})
  _, restored, _ = ckpt.restore_latest()
  other = PlannerAgent(agent.config, OBS, 2)
  other.load(restored['agent'])
  for a, b in zip(agent.pid, other.pid):
    np.testing.assert_array_equal(a, b)
  assert other.multiplier == agent.multiplier
  assert other.stats.pop('train') == agent.stats.pop('train') != {}
  same = jax.tree.map(np.array_equal, jax.device_get(agent.params), jax.device_get(other.params))
  assert all(jax.tree.leaves(same))
  np.testing.assert_array_equal(agent.policy_key, other.policy_key)


def test_osrp_without_lagrangian():
  config = load_config(['osrp', 'tiny'], {'task': 'toy/hazard', 'planner.mixture': 0.0})
  agent = PlannerAgent(config, OBS, 2)
  assert agent.pid is None and not agent.cfg.lagrangian
  state = agent.init_policy_state(1)
  action, state = agent.policy(observe(1), state, 'train')   # no attach: default length
  assert action.shape == (1, 2)
  out = agent.episode_end(0.0, 100.0, 'train')
  assert agent.multiplier == 0.0 and not any(k.startswith('pid/') for k in out)
  assert 'planner' in agent.save() and 'pid' not in agent.save()['planner']


@pytest.mark.slow
def test_trains_end_to_end(tmp_path):
  config = load_config(['osrp_lag', 'tiny'], {'task': 'toy/hazard', 'env.action_repeat': 1,
                                              'run.steps': 1500, 'run.progress': False})
  counters = train(config, tmp_path)
  assert counters['step'] >= 1500 and counters['updates'] > 0
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  keys = set().union(*rows)
  assert {'pid/lam', 'plan/safe_frac', 'episode/EpCost', 'train/wm/loss'} <= keys, keys
