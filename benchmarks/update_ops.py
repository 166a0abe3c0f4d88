"""Where one update's time goes by kind of XLA operation: dots, reductions, elementwise
fusions, copies, loop bookkeeping.

The compiled update runs --reps times under JAX's profiler with XLA's per-operation
trace events switched on (--xla_cpu_enable_xprof_traceme, added to XLA_FLAGS here).
Each event of an operation (not of the loops and executors that hold them) is put in
a kind by its name: `dot` (dots and dot_general), `reduce-window` (XLA's blocked
partial sums of long reductions), `fusion:<root op>` (elementwise fusions, by the op
that names them), `copy`, `transpose`, else `other:<op>`. Times are per update; they
include the tracer's own cost, so compare kinds, not totals with update_speed.py.

  taskset -c 0 python benchmarks/update_ops.py            # small, batch 8 x 32, one core
  python benchmarks/update_ops.py --size tiny --batch 4 16 --reps 2
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TRACEME = '--xla_cpu_enable_xprof_traceme=true'
_HOLDERS = re.compile(r'^(while|conditional|call|ThunkExecutor|Thunk|Wait for|PjitFunction|PjRt|'
                      r'end: |Transpose::|ParseArguments|DevicePut|ThreadpoolListener)')


def kind(name: str) -> str | None:
  """The kind of an operation's trace event; None for events that hold others."""
  if _HOLDERS.match(name) or name.startswith('$'):
    return None
  base = re.sub(r'[.\d]+$', '', name)
  if base in ('dot', 'dot_general'):
    return 'dot'
  if base.startswith('copy'):
    return 'copy'
  if base.startswith('transpose'):
    return 'transpose'
  if base.startswith('reduce-window'):
    return 'reduce-window'
  if 'fusion' in base:
    ops = base.split('_fusion')[0].split('_')
    return 'fusion:' + ops[-1]
  return 'other:' + base


def op_table(events: list[dict], reps: int) -> dict[str, float]:
  """Milliseconds per update by kind, largest first, from complete ('X') trace events."""
  total = collections.Counter()
  for e in events:
    k = kind(e['name']) if e.get('ph') == 'X' else None
    if k:
      total[k] += e['dur'] / 1000.0 / reps
  return dict(total.most_common())


def measure(size: str, batch: tuple[int, int], reps: int) -> dict[str, float]:
  import jax
  import update_speed
  _, agent, data = update_speed.make_agent(
      size, 60, 2, {'replay.batch_size': batch[0], 'replay.batch_length': batch[1]})
  compiled, _, _ = update_speed.compile_update(agent, data)
  data, state = agent._prepare_batch(data), agent.state
  for _ in range(2):
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
  options = jax.profiler.ProfileOptions()
  options.host_tracer_level, options.python_tracer_level = 3, 0
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder, create_perfetto_trace=True, profiler_options=options):
      for _ in range(reps):
        state, metrics = compiled(state, data)
        jax.block_until_ready(metrics)
    path = glob.glob(f'{folder}/**/perfetto_trace.json.gz', recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
  return op_table(trace['traceEvents'] if isinstance(trace, dict) else trace, reps)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', default='small', help='a size of update_speed.SIZES')
  parser.add_argument('--batch', type=int, nargs=2, default=[8, 32], metavar=('B', 'T'))
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--json', help='also write the table here')
  args = parser.parse_args(argv)
  if 'jax' in sys.modules and TRACEME not in os.environ.get('XLA_FLAGS', ''):
    raise SystemExit('update_ops: run it as a script (XLA_FLAGS must be set before jax starts)')
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {TRACEME}".strip()
  table = measure(args.size, tuple(args.batch), args.reps)
  total = sum(table.values())
  print(f'{args.size}, batch {args.batch[0]} x {args.batch[1]}: {total:.1f} ms of operations '
        f'per update (traced), load average {os.getloadavg()[0]:.1f}')
  for name, ms in table.items():
    if ms >= 0.005 * total:
      print(f'  {name:28s} {ms:8.2f} ms  {100 * ms / total:5.1f}%')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'size': args.size, 'batch': args.batch, 'ms': table}, f, indent=1)


if __name__ == '__main__':
  main()
