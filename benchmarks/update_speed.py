"""Speed of one DreamerAgent update (world model + critics + actor + Lagrangian).

For each size: compile time, seconds per update (median), the update's FLOPs, the
achieved FLOP/s against a dense f32 matmul measured in the same process, and peak
RSS. Each size runs in its own subprocess (clean peak RSS and compile caches).

FLOPs: XLA's cost analysis counts the body of a while loop (our scans over time
and over the imagination horizon) once, whatever the trip count. We therefore
parse the optimised HLO, take 2*M*N*K for every dot (and the equivalent for
convolutions), and multiply each computation by how often it runs (while-loop
trip counts from XLA's known_trip_count annotations). Elementwise work is not
counted, so the figure is the matmul/conv work of the program XLA actually runs
(after CSE and dead-code elimination). XLA's own figure is reported beside it.
(benchmarks/hlo_dots.py.) With --ceiling, every dot of the update is also timed
alone at its own shapes: the sum is the least time any program made of these
products can take, and the update's FLOPs over it the ceiling of its matmul rate.
On a GPU, XLA turns dots into cuBLAS custom calls, which are counted the same way.
JAX's default device is used: the CPU here, the GPU where jax has one
(JAX_PLATFORMS=cuda makes sure).

  python benchmarks/update_speed.py                      # small, paper, dv3small
  python benchmarks/update_speed.py --sizes paper --reps 5 --json out.json
  python benchmarks/update_speed.py --sizes small --ceiling  # + the dots alone
  XLA_FLAGS=... python benchmarks/update_speed.py        # try XLA options
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlo_dots  # noqa: E402

# sizes as dotted overrides on top of presets; 'dv3small' matches DreamerV3 1.5.0's
# `small` config (SPEC 6): RSSM 512/512, 32x32 latents, encoder/decoder MLP 5x1024,
# heads, actor and critic 2x512, horizon 15 (plus our cost head and cost critic).
SIZES = {
    'tiny': (['tiny'], {}),
    'small': (['small'], {}),
    'paper': (['paper'], {}),
    'dv3small': ([], {
        'model.deter': 512, 'model.units': 512, 'model.stoch': 32, 'model.classes': 32,
        'model.mlp_layers': 5, 'model.mlp_units': 1024, 'model.head_layers': 2,
        'behavior.layers': 2, 'behavior.units': 512, 'behavior.horizon': 15}),
}
BATCH = {'replay.batch_size': 16, 'replay.batch_length': 64}


# --- one size, in this process ----------------------------------------------------------

def matmul_peak(n=None, reps=5):
  """(wall, cpu) FLOP/s of a dense f32 matmul: what this machine's cores can do
  (2048^3 on a CPU; 8192^3 on a GPU, where a smaller one ends before it is busy)."""
  import jax
  import jax.numpy as jnp
  n = n or (2048 if jax.default_backend() == 'cpu' else 8192)
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  times, cpu = [], []
  for _ in range(reps):
    t, c = time.perf_counter(), time.process_time()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
  flops = 2.0 * n ** 3
  return flops / sorted(times)[reps // 2], flops / sorted(cpu)[reps // 2]


def make_agent(size, obs_dim, act_dim, extra=None, method='bsrp_lag'):
  import numpy as np
  from safedreamer.agents.dreamer import DreamerAgent
  from safedreamer.config.load import load_config
  presets, overrides = SIZES[size]
  cfg = load_config(presets + [method], {**overrides, **BATCH, **(extra or {})})
  agent = DreamerAgent(cfg, {'vector': ((obs_dim,), np.float32)}, act_dim)
  B, T = cfg.replay.batch_size * cfg.model.updates, cfg.replay.batch_length
  rng = np.random.default_rng(0)
  batch = {'vector': rng.normal(size=(B, T, obs_dim)).astype(np.float32),
           'action': rng.uniform(-1, 1, (B, T, act_dim)).astype(np.float32),
           'reward': rng.normal(size=(B, T)).astype(np.float32),
           'cost': (rng.uniform(size=(B, T)) < 0.05).astype(np.float32),
           'is_first': np.zeros((B, T), bool), 'is_last': np.zeros((B, T), bool),
           'is_terminal': np.zeros((B, T), bool)}
  return cfg, agent, batch


def compile_update(agent, batch):
  """(compiled update, HLO matmul FLOPs, XLA cost-analysis FLOPs)."""
  compiled = agent.core.update.lower(agent.state, agent._prepare_batch(batch)).compile()
  xla = compiled.cost_analysis()
  xla = xla[0] if isinstance(xla, list) else xla
  return compiled, hlo_dots.matmul_flops(compiled.as_text()), float(xla.get('flops', 0.0))


def run_one(size, reps, obs_dim, act_dim, ceiling=False, batch_shape=None, method='bsrp_lag',
            overrides=None):
  import jax
  extra = ({'replay.batch_size': batch_shape[0], 'replay.batch_length': batch_shape[1]}
           if batch_shape else {})
  extra.update(overrides or {})
  cfg, agent, batch = make_agent(size, obs_dim, act_dim, extra, method)
  t = time.perf_counter()
  compiled, flops, xla_flops = compile_update(agent, batch)
  compile_s = time.perf_counter() - t

  def update():  # what agent.train does, on the program compiled above
    state, metrics = compiled(agent.state, agent._prepare_batch(batch))
    agent.state = state
    return {k: float(v) for k, v in jax.device_get(metrics).items()}

  t = time.perf_counter()
  update()
  first_s = time.perf_counter() - t
  times, cpu = [], []
  for _ in range(reps):
    t, c = time.perf_counter(), time.process_time()
    update()
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
  update_s, update_cpu_s = sorted(times)[reps // 2], sorted(cpu)[reps // 2]
  peak, peak_cpu = matmul_peak()
  params = sum(x.size for x in jax.tree.leaves(agent.params))
  out = {
      'size': size, 'method': method, 'device': jax.devices()[0].device_kind, 'params': int(params),
      'compile_s': compile_s, 'first_call_s': first_s,
      'update_s': update_s, 'update_times': times, 'update_cpu_s': update_cpu_s,
      'flops': flops, 'xla_cost_analysis_flops': xla_flops,
      'gflops_per_s': flops / update_s / 1e9, 'matmul_peak_gflops_per_s': peak / 1e9,
      'fraction_of_peak': flops / update_s / peak,
      # the same ratio in CPU seconds: less sensitive to other processes on the machine
      'fraction_of_peak_cpu_time': flops / update_cpu_s / peak_cpu,
      'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
      'model': cfg.model.model_dump(), 'behavior': cfg.behavior.model_dump(),
      'batch': [cfg.replay.batch_size, cfg.replay.batch_length],
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }
  if ceiling:
    alone = hlo_dots.dots_alone_seconds(hlo_dots.program_dots(compiled.as_text()), reps=20)
    out.update({'dots_alone_s': alone['seconds'], 'dots_flops': alone['flops'],
                'ceiling_fraction_of_peak': alone['flops'] / alone['seconds'] / peak,
                'dots_alone_rows': alone['rows'][:12]})
  return out


def horizon_check(size, obs_dim, act_dim, horizons=(5, 10, 20)):
  """FLOPs of the update at several imagination horizons, counted both ways.

  The imagination scan's work grows linearly with the horizon; a count that stays
  (nearly) flat misses the loop's trip count."""
  rows = []
  for h in horizons:
    _, agent, batch = make_agent(size, obs_dim, act_dim, {'behavior.horizon': h})
    _, flops, xla_flops = compile_update(agent, batch)
    rows.append({'horizon': h, 'hlo_matmul_flops': flops, 'xla_cost_analysis_flops': xla_flops})
  return rows


def _child(one, args):
  cmd = [sys.executable, __file__, '--one', one, '--reps', str(args.reps),
         '--obs-dim', str(args.obs_dim), '--act-dim', str(args.act_dim),
         '--batch', *map(str, args.batch), '--method', args.method] + (['--ceiling'] if args.ceiling else [])
  cmd += [x for kv in args.set for x in ('--set', *kv)]
  out = subprocess.run(cmd, capture_output=True, text=True)
  if out.returncode:
    print(out.stderr[-3000:], file=sys.stderr)
    raise SystemExit(f'{one} failed')
  return json.loads(out.stdout.strip().splitlines()[-1])


HEADER = ('size      params  compile  update (cpu)     GFLOP  (XLA)   GFLOP/s  matmul  '
          '%peak (cpu-time)  RSS GiB')


def _row(r):
  return (f"{r['size']:9s} {r['params'] / 1e6:5.2f}M {r['compile_s']:6.1f}s "
          f"{r['update_s']:6.3f}s ({r['update_cpu_s']:5.2f}s) {r['flops'] / 1e9:7.1f} "
          f"({r['xla_cost_analysis_flops'] / 1e9:6.1f}) {r['gflops_per_s']:7.1f} "
          f"{r['matmul_peak_gflops_per_s']:7.1f}  {100 * r['fraction_of_peak']:4.1f}% "
          f"({100 * r['fraction_of_peak_cpu_time']:4.1f}%)    {r['peak_rss_gib']:5.2f}")


def _print_ceiling(r):
  share = r['dots_flops'] / r['flops']
  print(f"  its dots alone: {r['dots_alone_s']:.3f}s for {100 * share:.0f}% of its FLOPs: "
        f"ceiling {100 * r['ceiling_fraction_of_peak']:.1f}% of the matmul rate; the update "
        f"spends {100 * r['dots_alone_s'] / r['update_s']:.0f}% of its time in dot-time")
  print('   lhs            rhs            count  us each  share of dot time')
  for d in r['dots_alone_rows'][:8]:
    print(f"   {str(d['lhs']):14s} {str(d['rhs']):14s} {d['count']:5d} {1e6 * d['seconds']:8.1f}"
          f"  {100 * d['seconds'] * d['count'] / r['dots_alone_s']:5.1f}%")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', nargs='+', default=['small', 'paper', 'dv3small'],
                      choices=list(SIZES))
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--obs-dim', type=int, default=60)  # SafetyPointGoal1 lidar
  parser.add_argument('--act-dim', type=int, default=2)
  parser.add_argument('--json', default='benchmarks/out/update_speed.json')
  parser.add_argument('--horizon-check', metavar='SIZE', choices=list(SIZES),
                      help='also count the FLOPs of SIZE at horizons 5, 10, 20')
  parser.add_argument('--batch', type=int, nargs=2, default=[16, 64], metavar=('B', 'T'))
  parser.add_argument('--method', default='bsrp_lag', choices=['bsrp_lag', 'dreamerv3'],
                      help="dreamerv3: no cost critic nor Lagrangian (DreamerV3's own work)")
  parser.add_argument('--ceiling', action='store_true',
                      help='also time every dot of the update alone (hlo_dots.py)')
  parser.add_argument('--set', nargs=2, action='append', default=[], metavar=('KEY', 'VALUE'),
                      help='config override, e.g. --set model.updates 2')
  parser.add_argument('--one', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one:
    if args.one.startswith('horizon:'):
      out = horizon_check(args.one.split(':', 1)[1], args.obs_dim, args.act_dim)
    else:
      out = run_one(args.one, args.reps, args.obs_dim, args.act_dim, args.ceiling, args.batch,
                    args.method, {k: yaml.safe_load(v) for k, v in args.set})
    print(json.dumps(out))
    return
  result = {'batch': args.batch, 'set': args.set,
            'cpus': os.cpu_count(), 'load_avg_at_start': os.getloadavg(), 'rows': []}
  print(HEADER, flush=True)
  for size in args.sizes:
    result['rows'].append(_child(size, args))
    print(_row(result['rows'][-1]), flush=True)
    if args.ceiling:
      _print_ceiling(result['rows'][-1])
  if args.horizon_check:
    result['horizon_check'] = _child('horizon:' + args.horizon_check, args)
    print(f'FLOPs of {args.horizon_check} by imagination horizon (GFLOP): HLO count with trip '
          'counts vs XLA cost analysis')
    for r in result['horizon_check']:
      print(f"  H={r['horizon']:2d}  {r['hlo_matmul_flops'] / 1e9:8.2f}  "
            f"{r['xla_cost_analysis_flops'] / 1e9:8.2f}")
  result['load_avg_at_end'] = os.getloadavg()
  os.makedirs(os.path.dirname(args.json) or '.', exist_ok=True)
  with open(args.json, 'w') as f:
    json.dump(result, f, indent=1)
  print(f'wrote {args.json}  (load average at start {result["load_avg_at_start"][0]:.1f}, '
        f'end {result["load_avg_at_end"][0]:.1f})')


if __name__ == '__main__':
  main()
