"""JAX's persistent compilation cache (run/jax_setup.py): how much a second start of
the same run saves.

For each preset it starts `safedreamer train --configs bsrp_lag PRESET` twice in
fresh processes and fresh log folders, with one new, empty cache folder: the first
start compiles and fills the cache (cold), the second loads from it (warm). Each
start is a short run (prefill 200, then `--updates` updates at least) on toy/hazard,
and reports:
  wall s       the whole process, import to exit
  compile s    JAX's own compile-time events in that process: XLA backend compiles
               plus tracing and lowering ('/jax/core/compile/*' durations)
  cache hits   executables loaded from the cache instead of compiled

  .venv/bin/python benchmarks/compile_cache.py                  # tiny and small
  .venv/bin/python benchmarks/compile_cache.py --presets tiny --repeat 2
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD_FLAG = '--child'


def child(argv: list[str]) -> None:
  """One `train` in this process, with JAX's compile events summed (JSON on stdout)."""
  import jax.monitoring
  durations: dict[str, float] = collections.defaultdict(float)
  counts: dict[str, int] = collections.defaultdict(int)
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **_: durations.__setitem__(event, durations[event] + secs))
  jax.monitoring.register_event_listener(
      lambda event, **_: counts.__setitem__(event, counts[event] + 1))
  from safedreamer.cli import main
  code = main(['train', *argv])
  compile_s = sum(v for k, v in durations.items() if k.startswith('/jax/core/compile/'))
  hits = counts.get('/jax/compilation_cache/cache_hits', 0)
  print(json.dumps({'code': code, 'compile_s': compile_s, 'hits': hits,
                    'backend_s': durations.get('/jax/core/compile/backend_compile_duration', 0.0)}))


def start(preset: str, cache: str, logdir: str, steps: int) -> dict:
  argv = ['--configs', 'bsrp_lag', preset, '--task', 'toy/hazard', '--logdir', logdir,
          '--run.steps', str(steps), '--run.prefill', '200', '--run.eval_every', '0',
          '--run.report_every', '0', '--run.progress', 'false', '--jax.compile_cache', cache]
  begin = time.time()
  out = subprocess.run([sys.executable, __file__, CHILD_FLAG, *argv], capture_output=True,
                       text=True, check=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  return result | {'wall_s': time.time() - begin}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--presets', nargs='+', default=['tiny', 'small'])
  parser.add_argument('--steps', type=int, default=400, help='simulator steps per start')
  parser.add_argument('--repeat', type=int, default=1, help='cold/warm pairs per preset')
  args = parser.parse_args()
  print(f'load average at start: {os.getloadavg()[0]:.1f}')
  print('| preset | start | wall s | compile s | backend compile s | cache hits |')
  print('|---|---|---|---|---|---|')
  for preset in args.presets:
    for _ in range(args.repeat):
      with tempfile.TemporaryDirectory(prefix='compile_cache_') as tmp:
        cache = os.path.join(tmp, 'cache')
        for name in ('cold', 'warm'):
          r = start(preset, cache, os.path.join(tmp, name), args.steps)
          print(f"| {preset} | {name} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
                f"{r['backend_s']:.1f} | {r['hits']} |", flush=True)


if __name__ == '__main__':
  if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
    child(sys.argv[2:])
  else:
    main()
