"""Wall time of the same training run on two commits, side by side (issue 25, point 2).

  python benchmarks/wall_time.py OLD NEW [--steps 50000] [--rounds 3] [--out DIR]
      [--configs bsrp_lag small] [--task safetygym/SafetyPointGoal1-v0]

Each commit's tree is exported (`git archive`) under DIR/src-<commit> and runs with
this checkout's virtual environment, its own code first on the path. In every round
the two runs start together, each pinned to its own core with XLA on one thread (as
learning runs go), with the cores swapped from round to round, and each with an
empty compile cache (compiling counts). The table gives each round's seconds and the
ratio old / new; a ratio above 1 means the new commit is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from learning import ONE_THREAD  # noqa: E402


def export(commit: str, out: pathlib.Path, repo: pathlib.Path) -> tuple[str, pathlib.Path]:
  sha = subprocess.run(['git', '-C', str(repo), 'rev-parse', '--short', commit], check=True,
                       capture_output=True, text=True).stdout.strip()
  src = out / f'src-{sha}'
  if not src.exists():
    src.mkdir(parents=True)
    archive = subprocess.run(['git', '-C', str(repo), 'archive', sha], check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(src)], input=archive, check=True)
  return sha, src


def command(args, logdir: pathlib.Path) -> list[str]:
  return [sys.executable, '-m', 'safedreamer', 'train', '--configs', *args.configs,
          '--task', args.task, '--run.steps', str(args.steps), '--run.progress', 'false',
          '--seed', str(args.seed), '--logdir', str(logdir)]


def environ(src: pathlib.Path, cache: pathlib.Path) -> dict:
  return dict(os.environ, PYTHONPATH=str(src), XLA_FLAGS=ONE_THREAD,
              SAFEDREAMER_JAX_CACHE=str(cache))


def summary(rounds: list[dict]) -> dict:
  """Median seconds of each side and the median of the per-round ratios old / new."""
  return {'old_s': statistics.median(r['old_s'] for r in rounds),
          'new_s': statistics.median(r['new_s'] for r in rounds),
          'ratio': statistics.median(r['old_s'] / r['new_s'] for r in rounds)}


def table(rounds: list[dict], old: str, new: str) -> str:
  lines = [f'| round | {old} (old) s | {new} (new) s | old / new | cores (old, new) |',
           '| --- | --- | --- | --- | --- |']
  for i, r in enumerate(rounds, 1):
    lines.append(f"| {i} | {r['old_s']:.0f} | {r['new_s']:.0f} | "
                 f"{r['old_s'] / r['new_s']:.3f} | {r['cores'][0]}, {r['cores'][1]} |")
  s = summary(rounds)
  lines.append(f"| median | {s['old_s']:.0f} | {s['new_s']:.0f} | {s['ratio']:.3f} | |")
  return '\n'.join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('old')
  ap.add_argument('new')
  ap.add_argument('--steps', type=int, default=50_000)
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--configs', nargs='+', default=['bsrp_lag', 'small'])
  ap.add_argument('--task', default='safetygym/SafetyPointGoal1-v0')
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--out', type=pathlib.Path, default=pathlib.Path('benchmarks/out/wall_time'))
  args = ap.parse_args()
  repo = pathlib.Path(__file__).resolve().parent.parent
  args.out.mkdir(parents=True, exist_ok=True)
  (old, old_src), (new, new_src) = (export(c, args.out, repo) for c in (args.old, args.new))
  rounds = []
  for i in range(args.rounds):
    cores = (i % 2, 1 - i % 2)
    procs, starts = {}, {}
    for side, src, core in (('old', old_src, cores[0]), ('new', new_src, cores[1])):
      run = args.out / f'round{i + 1}-{side}'
      if run.exists():
        raise SystemExit(f'{run} exists: use a new --out')
      log = open(args.out / f'round{i + 1}-{side}.log', 'w')
      starts[side] = time.perf_counter()
      pin = lambda core=core: os.sched_setaffinity(0, {core})   # noqa: E731
      procs[side] = (subprocess.Popen(command(args, run / 'run'), cwd=src,
                                      env=environ(src, run / 'jax_cache'), stdout=log,
                                      stderr=subprocess.STDOUT, preexec_fn=pin), log)
    row = {'cores': cores, 'load_at_start': os.getloadavg()[0]}
    while any(f'{side}_s' not in row for side in procs):  # each side's time at its end
      time.sleep(0.5)
      for side, (proc, log) in procs.items():
        if f'{side}_s' not in row and proc.poll() is not None:
          row[f'{side}_s'] = time.perf_counter() - starts[side]
          log.close()
          if proc.returncode:
            raise SystemExit(f'round {i + 1}, {side}: exit {proc.returncode} (see {log.name})')
    rounds.append(row)
    print(f"round {i + 1}: old {row['old_s']:.0f} s, new {row['new_s']:.0f} s", flush=True)
  result = {'old': old, 'new': new, 'steps': args.steps, 'configs': args.configs,
            'task': args.task, 'rounds': rounds, **summary(rounds)}
  (args.out / 'wall_time.json').write_text(json.dumps(result, indent=1))
  print(table(rounds, old, new))


if __name__ == '__main__':
  main()
