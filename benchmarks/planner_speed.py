"""CCEM planning speed (OSRP, behavior/ccem.py) on the real world model.

For each model size (`small`, `paper` presets) and planner setting (`paper`:
500 samples x horizon 15 x 6 iterations, 50 elites; `cpu`: the `cpu_planner`
preset) it prints, for 1 environment and a batch of `--batch` environments:
  compile     seconds to compile the planning step (once per shape)
  s/call      median seconds per call of the planning step alone
  s/action    s/call / B (a batched call plans B actions at once)
  policy s/action   the same for the agent's whole policy step
              (`PlannerAgent.policy`: posterior update + planning + copy to host)
  GFLOP/act   FLOPs per action (counted analytically, see below)
  GFLOP/s     achieved, and as a percentage of a dense f32 matmul (update_speed.py's
              matmul_peak: 2048^3 on a CPU, 8192^3 on a GPU) timed
              right before each row (the machine's practical peak under the same
              load: on a shared machine both move together)

FLOPs: XLA's cost analysis counts a loop body once, whatever the trip count (this
script shows it: the whole planner's count barely changes from H to 2H). So the
count is assembled from loop-free pieces whose cost analysis is exact:
  J * H * f(step + heads at N)  +  H * f(actor + step + heads at N_pi)
(elite selection and sampling are a few MFLOP and ignored).

The world model is `PlannerAgent.plan_model(params)` at random initialisation
(speed does not depend on the values), built inside the jitted function from
traced params exactly as the agent does. Action dim 2 (Point robots); observation
60 numbers (PointGoal1 lidar) or, with `--cost-source obs`, PointGoal1's 29-number
coordinate vector with the planner's cost decoded from it (adds the decoder to
every imagined step).

  .venv/bin/python benchmarks/planner_speed.py                      # everything
  .venv/bin/python benchmarks/planner_speed.py --sizes small --planners cpu --reps 2
  .venv/bin/python benchmarks/planner_speed.py --sizes small --planners cpu --cost-source obs

MPC:sim (`--mpc-sim`): seconds per action of the `mpc_sim` preset (150 x 15 x 6,
action repeat 4) on SafetyPointGoal1, planned from snapshots of a real episode:
`before` steps the simulator copy per sample in Python (`mpc_sim.rollout`), `after`
scores each iteration's samples in MuJoCo's batched rollout (envs/sim_rollout.py).
Both plan the same actions (checked here on every planned step). Also printed: the
CPU time of one MuJoCo step in the rollout, and so the floor of the physics alone
(540,000 mj_steps per action: 150 x 15 x 6 agent steps x 4 repeats x 10 frameskip).

  .venv/bin/python benchmarks/planner_speed.py --mpc-sim --steps 5 --before-steps 1
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from safedreamer.agents.planner import PlannerAgent  # noqa: E402
from safedreamer.behavior import ccem  # noqa: E402
from safedreamer.config.load import load_config, presets  # noqa: E402
from safedreamer.envs import coords  # noqa: E402
from update_speed import matmul_peak  # noqa: E402  (benchmarks/, this script's folder)

ACT_DIM = 2
PLANNERS = {  # overrides of the planner section
    'paper': {},                                                # 500 x 15 x 6, E 50
    'cpu': presets()['cpu_planner']['planner'],                 # the cpu_planner preset
}
COORDS_TASK = 'SafetyPointGoal1-v0'


class CoordsEnvs:
  """Answers `PlannerAgent.attach` like an EnvBatch of PointGoal1 in coords mode."""
  episode_length = 250

  def __init__(self, with_coords: bool):
    self.params = None
    if with_coords:
      self.params = dict(coords.coords_params(COORDS_TASK),
                         layout=coords.coords_layout(COORDS_TASK))

  def call(self, index, method, *args):
    if method != 'coords_params' or self.params is None:
      raise RuntimeError(f'{method} is not offered here')
    return self.params


def median_seconds(fn, reps):
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def xla_flops(fn, *args):
  """XLA's FLOP count of fn: of the lowered program where the backend offers one
  (CPU), else of the compiled program (GPU)."""
  lowered = jax.jit(fn).lower(*args)
  cost = lowered.cost_analysis()
  if cost is None:
    cost = lowered.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost['flops'])


def build(size: str, planner: str, method: str, cost_source: str = 'head'):
  overrides = {'method': method, 'planner.cost_source': cost_source,
               **{f'planner.{k}': v for k, v in PLANNERS[planner].items()}}
  obs_space = {'vector': ((60,), np.float32)}
  if cost_source == 'obs':
    overrides['env.obs'] = 'coords'
    obs_space = {'vector': ((coords.layout_size(coords.coords_layout(COORDS_TASK)),),
                            np.float32)}
  agent = PlannerAgent(load_config([size], overrides), obs_space, ACT_DIM)
  agent.attach(CoordsEnvs(with_coords=cost_source == 'obs'))
  return agent, agent.cfg


def policy_seconds(agent, batch, reps):
  """Median seconds of `agent.policy` for `batch` environments (after a warm-up)."""
  size = agent.wm.codec.vec['vector']
  obs = {'vector': np.zeros((batch, size), np.float32), 'is_first': np.zeros(batch, bool)}
  state = agent.init_policy_state(batch)
  agent.policy(obs, state, 'train')
  return median_seconds(lambda: agent.policy(obs, state, 'train')[0], reps)


def planner_fn(agent, cfg):
  def fn(params, starts, means, resets, keys):
    model = agent.plan_model(params)
    return ccem.plan_batch(model, cfg, starts, means, resets, keys, 2.0, 250.0, 0.01, True)
  return fn


def inputs(agent, cfg, batch):
  latent = agent.init_policy_state(batch)['latent']
  keys = jax.random.split(jax.random.PRNGKey(1), batch)
  return (agent.params, latent, ccem.initial_means(batch, cfg, ACT_DIM),
          jnp.zeros((batch,), bool), keys)


def analytic_flops(agent, cfg):
  """FLOPs of one planning step for one environment (see module doc)."""
  params, latent = agent.params, agent.init_policy_state(1)['latent']

  def heads_step(params, state, action, with_actor):
    m = agent.plan_model(params)
    if with_actor:
      action = m.actor(jax.random.PRNGKey(0), state)
    state = m.step(state, action)
    outs = [m.reward(state), m.cost(state), m.cont(state), m.value(state)]
    if cfg.lagrangian:
      outs.append(m.cost_value(state))
    return outs

  def at(n, with_actor):
    state = jax.tree_util.tree_map(lambda x: jnp.repeat(x, n, 0), latent)
    action = jnp.zeros((n, ACT_DIM))
    return xla_flops(lambda p, s, a: heads_step(p, s, a, with_actor), params, state, action)

  total = cfg.iterations * cfg.horizon * at(cfg.samples, False)
  if cfg.actor_samples:
    total += cfg.horizon * at(cfg.actor_samples, True)
  return total


def loop_counted_once(agent, cfg):
  """XLA's count for the whole planner at H and 2H (equal: loops counted once)."""
  out = []
  for h in (cfg.horizon, 2 * cfg.horizon):
    c = dataclasses.replace(cfg, horizon=h)
    out.append(xla_flops(planner_fn(agent, c), *inputs(agent, c, 1)))
  return out


def mpc_sim_speed(steps: int, before_steps: int, seed: int) -> None:
  """MPC:sim seconds per action before (Python stepping) and after (batched rollout)."""
  from safedreamer.behavior import mpc_sim
  from safedreamer.envs.registry import env_factory
  from safedreamer.envs.sim_rollout import BatchedScorer
  task = 'safetygym/SafetyPointGoal1-v0'
  config = load_config(['mpc_sim'], {'task': task})
  cfg = mpc_sim.SimPlannerConfig.from_config(config)
  real, sim = env_factory(task, config, seed)(), env_factory(task, config, seed + 999)()
  scorer = BatchedScorer.for_env(sim)
  real.reset(seed=seed)
  sim.reset()
  substeps = cfg.samples * cfg.horizon * cfg.iterations * config.env.action_repeat * 10
  print(f'MPC:sim on {task}: {cfg.samples} x {cfg.horizon} x {cfg.iterations}, action repeat '
        f'{config.env.action_repeat}, {scorer.threads} rollout threads, {os.cpu_count()} cpus, '
        f'load average {os.getloadavg()[0]:.1f}')
  mean, times = np.zeros((cfg.horizon, real.act_dim), np.float32), {'before': [], 'after': []}
  cpu = {'before': [], 'after': []}
  for t in range(steps):
    state = real.get_state()
    out = {}
    for name in (['after', 'before'] if t < before_steps else ['after']):
      start, cpu0 = time.perf_counter(), time.process_time()
      out[name] = mpc_sim.plan_in_sim(
          sim, mean, t == 0, np.random.default_rng([seed, t]), cfg, config.cost_limit,
          real.episode_length, state=state, scorer=scorer if name == 'after' else None)
      times[name].append(time.perf_counter() - start)
      cpu[name].append(time.process_time() - cpu0)
    if 'before' in out:
      assert np.array_equal(out['before'][0], out['after'][0]), 'the two planned differently'
    action, mean, _ = out['after']
    step = real.step(action)
    print(f"  step {t}: after {times['after'][-1]:.2f} s" + (
        f", before {times['before'][-1]:.2f} s (same action)" if 'before' in out else '')
        + f", reward {float(step['reward']):.3f}, cost {float(step['cost']):.0f}", flush=True)
  after, before = np.median(times['after']), np.median(times['before'] or [np.nan])
  per_step = np.median(cpu['after']) / substeps
  cpu_before = np.median(cpu['before'] or [np.nan])
  print(f"MPC:sim s/action: before {before:.2f} (median of {len(times['before'])}), after "
        f"{after:.2f} (median of {steps}; min {min(times['after']):.2f}), "
        f"{before / after:.1f}x; CPU s/action before {cpu_before:.2f}, after "
        f"{np.median(cpu['after']):.2f} ({cpu_before / np.median(cpu['after']):.1f}x); "
        f'CPU per mj_step {per_step * 1e6:.1f} us, so the physics alone needs '
        f'{per_step * substeps / scorer.threads:.2f} s per action on {scorer.threads} threads; '
        f'load average {os.getloadavg()[0]:.1f}')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes', nargs='+', default=['small', 'paper'])
  parser.add_argument('--planners', nargs='+', default=['paper', 'cpu'])
  parser.add_argument('--method', default='osrp', choices=['osrp', 'osrp_lag'])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--reps', type=int, default=3)
  parser.add_argument('--cost-source', default='head', choices=['head', 'obs'])
  parser.add_argument('--mpc-sim', action='store_true', help='MPC:sim before/after instead')
  parser.add_argument('--steps', type=int, default=5, help='MPC:sim: actions planned')
  parser.add_argument('--before-steps', type=int, default=1,
                      help='MPC:sim: of which also planned the old way (slow)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  if args.mpc_sim:
    mpc_sim_speed(args.steps, args.before_steps, args.seed)
    return

  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cpus, '
        f'method {args.method}, cost source {args.cost_source}, '
        f'load average {os.getloadavg()[0]:.1f}')
  rows = []
  for size in args.sizes:
    for planner in args.planners:
      agent, cfg = build(size, planner, args.method, args.cost_source)
      flops = analytic_flops(agent, cfg)
      if planner == args.planners[0] and jax.default_backend() == 'cpu':  # compiles on GPU
        h1, h2 = loop_counted_once(agent, cfg)
        print(f'[{size}] XLA cost analysis of the whole planner: H={cfg.horizon}: '
              f'{h1 / 1e9:.3f} GFLOP, H={2 * cfg.horizon}: {h2 / 1e9:.3f} GFLOP '
              f'(analytic at H={cfg.horizon}: {flops / 1e9:.2f} GFLOP)')
      fn = jax.jit(planner_fn(agent, cfg))
      for batch in sorted({1, args.batch}):
        args_b = inputs(agent, cfg, batch)
        t = time.perf_counter()
        jax.block_until_ready(fn(*args_b))
        compile_s = time.perf_counter() - t
        peak = matmul_peak()[0]
        sec = median_seconds(lambda: fn(*args_b), args.reps)
        policy_sec = policy_seconds(agent, batch, args.reps)
        rate = flops * batch / sec
        rows.append((size, planner, f'{cfg.samples}x{cfg.horizon}x{cfg.iterations}',
                     batch, compile_s, sec, sec / batch, policy_sec / batch, flops / 1e9,
                     rate / 1e9, peak / 1e9, 100 * rate / peak))
        print('  '.join(str(x) if not isinstance(x, float) else f'{x:.3g}' for x in rows[-1]),
              flush=True)
  print('\n| size | planner | NxHxJ | B | compile s | s/call | s/action | policy s/action '
        '| GFLOP/action | GFLOP/s | matmul GFLOP/s | % of matmul |')
  print('|' + ' --- |' * 12)
  for r in rows:
    print('| ' + ' | '.join(f'{x:.3g}' if isinstance(x, float) else str(x) for x in r) + ' |')


if __name__ == '__main__':
  main()
