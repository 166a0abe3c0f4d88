"""Kill-at-random: N trials of a `tiny` run on toy/hazard, each SIGKILLed at random
moments and resumed until it finishes its budget; every trial must end with its
metric rows unique and in order (none lost) and an intact replay.

A trial: start `safedreamer train`, SIGKILL it after a random delay (uniform in
[0.2, --max-kill-s] seconds: before, during or after compiles, updates, chunk
writes and checkpoints), repeat for --kills kills in all (a run that already
finished is not killed), then run the same command to the end and check:
  - exit status 0 and `run.steps` reached;
  - metrics.jsonl: steps non-decreasing, log rows (episode/CostRate) unique and
    at most log_every + action_repeat apart (nothing lost), the last within log_every
    of the budget; episode rows unique;
  - replay: the newest checkpoint's replay position loads from the chunk files and
    holds >= the budget's steps (capacity is larger), and a batch can be sampled.

  .venv/bin/python benchmarks/kill_random.py --trials 20                    # bsrp_lag tiny
  .venv/bin/python benchmarks/kill_random.py --trials 20 --method random    # fast
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOG_EVERY, ACTION_REPEAT, CKPT_EVERY = 100, 2, 500


def command(logdir, method: str, steps: int) -> list[str]:
  return [sys.executable, '-m', 'safedreamer', 'train', '--configs', method, 'tiny',
          '--task', 'toy/hazard', '--logdir', str(logdir), '--run.steps', str(steps),
          '--env.action_repeat', str(ACTION_REPEAT), '--run.ckpt_every', str(CKPT_EVERY),
          '--run.log_every', str(LOG_EVERY), '--run.progress', 'false']


def check(logdir: pathlib.Path, steps: int) -> list[str]:
  """What is wrong with a finished run's metrics and replay ([] if nothing)."""
  from safedreamer.replay.replay import Replay
  from safedreamer.run.checkpoint import Checkpointer
  from safedreamer.run.logger import read_metrics
  problems = []
  rows = read_metrics(logdir / 'metrics.jsonl')
  raw = (logdir / 'metrics.jsonl').read_text().splitlines()
  if len(raw) != len(rows):
    problems.append(f'{len(raw) - len(rows)} torn metric rows')
  order = [r['step'] for r in rows]
  if order != sorted(order):
    problems.append('metric rows out of order')
  logs = [r['step'] for r in rows if 'episode/CostRate' in r]
  if len(logs) != len(set(logs)):
    problems.append('duplicated log rows')
  gaps = [b - a for a, b in zip([0] + logs, logs)]
  if not logs or max(gaps) > LOG_EVERY + ACTION_REPEAT:
    problems.append(f'missing log rows (largest gap {max(gaps, default=None)})')
  if not logs or logs[-1] < steps - LOG_EVERY:
    problems.append(f'last log row at {logs[-1] if logs else None}, budget {steps}')
  episodes = [json.dumps(r, sort_keys=True) for r in rows if 'episode/EpRet' in r]
  if len(episodes) != len(set(episodes)):
    problems.append('duplicated episode rows')
  found = Checkpointer(logdir / 'checkpoints').restore_latest()
  if found is None or found[0] < steps:
    problems.append(f'newest checkpoint {found and found[0]} before the budget {steps}')
  else:
    try:
      replay = Replay(logdir / 'replay', capacity=20000, chunk=128)
      replay.load(found[2]['replay'])
      held = replay.stats()['steps']
      if held * ACTION_REPEAT < steps:
        problems.append(f'replay holds {held} agent steps, fewer than {steps // ACTION_REPEAT}')
      replay.sample(4, 16)
    except Exception as e:  # noqa: BLE001 -- any failure is a broken replay
      problems.append(f'replay: {type(e).__name__}: {e}')
  return problems


def trial(logdir: pathlib.Path, method: str, steps: int, kills: int, max_kill_s: float,
          rng: random.Random, timeout: float = 900) -> tuple[bool, str]:
  """One trial; (passed, one-line summary)."""
  cmd, killed_at = command(logdir, method, steps), []
  for _ in range(kills):
    delay = rng.uniform(0.2, max_kill_s)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      proc.wait(timeout=delay)
      break  # finished before the kill
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      killed_at.append(round(delay, 1))
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
  problems = [f'exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}'] \
      if out.returncode else check(logdir, steps)
  kills_text = ','.join(f'{k}s' for k in killed_at) or 'none (finished first)'
  return not problems, f'killed at {kills_text}; ' + ('ok' if not problems else '; '.join(problems))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--trials', type=int, default=20)
  parser.add_argument('--method', default='bsrp_lag')
  parser.add_argument('--steps', type=int, default=None,
                      help='budget in simulator steps (default 2000, 30000 with --method random)')
  parser.add_argument('--kills', type=int, default=2, help='SIGKILLs per trial (at most)')
  parser.add_argument('--max-kill-s', type=float, default=None,
                      help='latest kill moment (default: 0.9 x the duration of one unkilled '
                      'run, timed first)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--workdir', default=None, help='default: a temporary folder, removed')
  args = parser.parse_args()
  args.steps = args.steps or (30000 if args.method == 'random' else 2000)
  work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='kill_random_'))
  max_kill = args.max_kill_s
  if max_kill is None:  # time one unkilled run, so that kills land anywhere in a run
    start = time.time()
    subprocess.run(command(work / 'timing', args.method, args.steps), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    max_kill = round(0.9 * (time.time() - start), 1)
    shutil.rmtree(work / 'timing', ignore_errors=True)
  rng = random.Random(args.seed)
  print(f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, '
        f'{platform.node()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; '
        f'{args.trials} trials of {args.method} tiny on toy/hazard, {args.steps} steps, '
        f"up to {args.kills} SIGKILLs in [0.2, {max_kill}] s", flush=True)
  passed = killed = 0
  start = time.time()
  for i in range(args.trials):
    logdir = work / f'trial{i:03d}'
    ok, summary = trial(logdir, args.method, args.steps, args.kills, max_kill, rng)
    passed += ok
    killed += 'finished first' not in summary
    print(f'trial {i}: {"PASS" if ok else "FAIL"} {summary}', flush=True)
    if ok:
      shutil.rmtree(logdir, ignore_errors=True)
  print(f'passed {passed}/{args.trials} ({killed} of them killed at least once) in '
        f'{time.time() - start:.0f} s (load {os.getloadavg()[0]:.1f})')
  if args.workdir is None and passed == args.trials:
    shutil.rmtree(work, ignore_errors=True)
  return 0 if passed == args.trials else 1


if __name__ == '__main__':
  sys.exit(main())
