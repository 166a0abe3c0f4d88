"""Wall time of a sweep against the same runs one after another.

  .venv/bin/python benchmarks/sweep_wall.py [--methods "bsrp_lag tiny" "dreamerv3 tiny"]
      [--seeds 0-1] [--task toy/hazard] [--set run.eval_every=500 ...]

Both sides run with the compile cache off (`jax.compile_cache=off`), so that neither
profits from the other's compiles: (1) `safedreamer sweep` on the embedded Ray
cluster, (2) the same trials as plain `safedreamer train` commands, one after
another, in another folder. Prints the two wall times and checks that both sides
reached the same final step in every run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from safedreamer.run.logger import read_metrics
from safedreamer.sweep import spec


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--methods', nargs='+', default=['bsrp_lag tiny', 'dreamerv3 tiny'])
  parser.add_argument('--seeds', default='0-1')
  parser.add_argument('--task', default='toy/hazard')
  parser.add_argument('--set', nargs='*', default=['run.eval_every=500'])
  parser.add_argument('--out', default=None, help='keep the runs here (default: a temp folder)')
  args = parser.parse_args()
  sets = args.set + ['jax.compile_cache=off']
  root = args.out or tempfile.mkdtemp(prefix='sweep_wall_')
  print(f'load average at start: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs; runs in {root}')
  sweep_dir, serial_dir = os.path.join(root, 'sweep'), os.path.join(root, 'serial')
  begin = time.time()
  subprocess.run([sys.executable, '-m', 'safedreamer', 'sweep', '--tasks', args.task,
                  '--methods', *args.methods, '--seeds', args.seeds, '--set', *sets,
                  '--out', sweep_dir], check=True, stdout=subprocess.DEVNULL)
  sweep_s = time.time() - begin
  sweep = spec.build({'tasks': [args.task], 'methods': args.methods, 'seeds': args.seeds,
                      'set': sets, 'out': serial_dir})
  begin = time.time()
  for trial in sweep.trials():
    subprocess.run([sys.executable, '-m', 'safedreamer', 'train',
                    *trial.train_args(sweep.resources)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  serial_s = time.time() - begin
  for trial in sweep.trials():
    steps = [max(r['step'] for r in read_metrics(os.path.join(d, trial.name, 'metrics.jsonl')))
             for d in (sweep_dir, serial_dir)]
    assert steps[0] == steps[1], (trial.name, steps)
  print(f'{len(sweep.trials())} runs: sweep {sweep_s:.1f} s, one after another {serial_s:.1f} s '
        f'({serial_s / sweep_s:.2f}x); load average at end: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()
