"""Where the wall time of a training run goes.

  python benchmarks/run_profile.py [--task safetygym/SafetyPointGoal1-v0]
      [--configs bsrp_lag small] [--steps 20000] [--set KEY VALUE ...] [--logdir DIR]

Runs `run.train.train` unchanged, with timers around the pieces of its loop (patched
onto their classes for this process only): agent updates, policy steps (the learned
agent's and the random prefill's), environment steps and resets, replay adds and
samples, evaluation episodes, open-loop reports, metric logging and checkpoints.
Time inside an evaluation, a report or a checkpoint counts there only (an
evaluation's policy and environment steps are the evaluation's); everything else
is exclusive, and 'other' is the loop itself (driver bookkeeping, progress bar,
counters) plus start-up (environment construction, JAX's first compiles happen in
the first update and policy step and count there). Prints a table and writes
LOGDIR/profile.json.
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import pathlib
import tempfile
import time

# (module, class, method, category); function patches are listed apart
METHODS = [
    ('safedreamer.agents.dreamer', 'DreamerAgent', 'train', 'update'),
    ('safedreamer.agents.dreamer', 'DreamerAgent', 'policy', 'policy'),
    ('safedreamer.agents.planner', 'PlannerAgent', 'policy', 'policy'),
    ('safedreamer.agents.random', 'RandomAgent', 'policy', 'policy (random prefill)'),
    ('safedreamer.replay.replay', 'Replay', 'add', 'replay add'),
    ('safedreamer.replay.replay', 'Replay', 'sample', 'replay sample'),
    ('safedreamer.replay.replay', 'Replay', 'save', 'checkpoint'),
    ('safedreamer.run.logger', 'Logger', 'write', 'logging'),
    ('safedreamer.run.logger', 'Logger', 'flush', 'logging'),
    ('safedreamer.run.checkpoint', 'Checkpointer', 'save', 'checkpoint'),
]
FUNCTIONS = [('safedreamer.run.train', 'run_episodes', 'evaluation'),
             ('safedreamer.run.train', 'write_report', 'report')]
ENCLOSING = {'evaluation', 'report', 'checkpoint'}   # own everything inside them


class Profile:
  """Exclusive wall time per category; inside an ENCLOSING category all time is its."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)
    self.calls = collections.Counter()
    self._stack: list[list] = []   # [category, start, time of timed children]

  def wrap(self, fn, category):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
      if self._stack and self._stack[0][0] in ENCLOSING:
        return fn(*args, **kwargs)
      self._stack.append([category, time.perf_counter(), 0.0])
      try:
        return fn(*args, **kwargs)
      finally:
        cat, start, children = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.seconds[cat] += elapsed - children
        self.calls[cat] += 1
        if self._stack:
          self._stack[-1][2] += elapsed
    return timed

  def table(self, total: float) -> list[dict]:
    rows = [{'part': k, 'seconds': v, 'calls': self.calls[k]} for k, v in self.seconds.items()]
    rows.append({'part': 'other', 'seconds': total - sum(self.seconds.values()), 'calls': 0})
    for row in rows:
      row['percent'] = 100.0 * row['seconds'] / total
    return sorted(rows, key=lambda r: -r['seconds'])


def install(profile: Profile) -> None:
  """Time the loop's pieces; environment steps and resets through the in-process env."""
  import importlib
  for module, cls, method, category in METHODS:
    owner = getattr(importlib.import_module(module), cls)
    if method in vars(owner):   # only where the class defines it (no double timing)
      setattr(owner, method, profile.wrap(vars(owner)[method], category))
  for module, name, category in FUNCTIONS:
    mod = importlib.import_module(module)
    setattr(mod, name, profile.wrap(getattr(mod, name), category))
  from safedreamer.envs import parallel
  send = parallel._Local.send   # pylint: disable=protected-access
  timed = {m: profile.wrap(send, c) for m, c in (('step', 'env step'), ('reset', 'env reset'))}

  def dispatch(self, method, *args, **kwargs):
    return timed.get(method, send)(self, method, *args, **kwargs)
  parallel._Local.send = dispatch   # pylint: disable=protected-access


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--task', default='safetygym/SafetyPointGoal1-v0')
  parser.add_argument('--configs', nargs='+', default=['bsrp_lag', 'small'])
  parser.add_argument('--steps', type=int, default=20_000)
  parser.add_argument('--set', nargs=2, action='append', default=[], metavar=('KEY', 'VALUE'))
  parser.add_argument('--logdir', default=None, help='default: a new temporary folder')
  args = parser.parse_args(argv)
  from safedreamer.config.load import load_config
  config = load_config(args.configs, {'task': args.task, 'run.steps': args.steps,
                                      'run.progress': False, **dict(args.set)})
  if config.run.parallel:
    raise SystemExit('run_profile.py times in-process environments: leave run.parallel off')
  logdir = pathlib.Path(args.logdir or tempfile.mkdtemp(prefix='run_profile_'))
  profile = Profile()
  install(profile)
  from safedreamer.run import train as train_module
  start = time.perf_counter()
  counters = train_module.train(config, logdir)
  total = time.perf_counter() - start
  rows = profile.table(total)
  result = {'task': args.task, 'configs': args.configs, 'steps': counters['step'],
            'updates': counters['updates'], 'wall_seconds': total, 'parts': rows}
  (logdir / 'profile.json').write_text(json.dumps(result, indent=1))
  print(f"{args.task} {' '.join(args.configs)}: {counters['step']} simulator steps, "
        f"{counters['updates']} updates, {total:.1f} s")
  print(f"{'part':<26}{'seconds':>10}{'%':>8}{'calls':>9}{'ms/call':>10}")
  for r in rows:
    per = f"{1000 * r['seconds'] / r['calls']:.2f}" if r['calls'] else ''
    print(f"{r['part']:<26}{r['seconds']:>10.1f}{r['percent']:>8.1f}{r['calls']:>9}{per:>10}")
  return result


if __name__ == '__main__':
  main()
