"""The `safedreamer` command line: verbs over a config of defaults, presets and overrides.

  safedreamer train [--configs PRESET ...] [--task SUITE/ID] [--logdir DIR] [--key.sub VALUE ...]
  safedreamer eval (--logdir DIR | --checkpoint PATH) [--episodes N] [--video] [--seed S]
  safedreamer plot RUN_DIRS... [--out DIR]
  safedreamer table RUN_DIRS... [--out DIR] [--last K]
  safedreamer tasks [PATTERN]
  safedreamer sweep [SWEEP.yaml] --tasks T... --methods "PRESETS" ... --seeds 0-4 --out DIR
"""
from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import textwrap

from safedreamer import __version__
from safedreamer.config.load import ConfigError, from_yaml, load_config, presets
from safedreamer.config.schema import Config, all_keys

# Keys that may differ when a run is resumed with the same logdir.
RESUMABLE_CHANGES = {'run.steps', 'run.progress', 'run.eval_every', 'run.eval_episodes',
                     'run.log_every', 'run.ckpt_every', 'logdir', 'jax.platform',
                     'jax.devices', 'jax.compile_cache'}


# What `safedreamer train` runs when no --configs are given: the README's default job.
DEFAULT_PRESETS = ['bsrp_lag', 'small']


class UsageError(Exception):
  """Bad input from the user: one line, exit status 2."""


def _keys_help() -> str:
  defaults = Config().model_dump()
  lines = []
  for key in all_keys():
    value = defaults
    for part in key.split('.'):
      value = value[part]
    lines.append(f'  --{key} {value!r}')
  names = ', '.join(presets())
  return (f'presets (applied left to right): {names}\n\nconfig keys and defaults '
          f'(override with --key VALUE or --key=VALUE):\n' + '\n'.join(lines))


def _parse_overrides(tokens: list[str]) -> dict[str, str]:
  overrides: dict[str, str] = {}
  it = iter(tokens)
  for token in it:
    if not token.startswith('--'):
      raise UsageError(f"unexpected argument '{token}'; overrides look like --run.steps 1000")
    key, eq, value = token[2:].partition('=')
    if not eq:
      value = next(it, None)
      if value is None:
        raise UsageError(f"config key '{key}' needs a value")
    overrides[key] = value
  return overrides


def _flatten(data: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in data.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def resolve(args) -> tuple[Config, pathlib.Path]:
  overrides = _parse_overrides(args.overrides)
  if args.task is not None:
    overrides['task'] = args.task
  if args.logdir is not None:
    overrides['logdir'] = args.logdir
  names = args.configs if args.configs else DEFAULT_PRESETS
  config = load_config(names, overrides)
  if config.logdir:
    logdir = pathlib.Path(config.logdir)
  else:
    name = '-'.join(names)
    logdir = pathlib.Path('runs') / config.task.replace('/', '_') / name / f'seed{config.seed}'
    config = config.model_copy(update={'logdir': str(logdir)})
  return config, logdir


def _check_resume(config: Config, logdir: pathlib.Path) -> None:
  path = logdir / 'config.yaml'
  if not path.exists():
    return
  old = _flatten(from_yaml(path.read_text()).model_dump())
  new = _flatten(config.model_dump())
  for key in all_keys():
    if key not in RESUMABLE_CHANGES and old.get(key) != new.get(key):
      raise UsageError(
          f'{logdir} holds a run with {key}={old.get(key)!r}, not {new.get(key)!r}; '
          'resume it with the same settings or choose another --logdir')


def select_platform(config: Config) -> None:
  """Tell JAX which backend to use before it is imported (also silences its probing)."""
  platform = {'cpu': 'cpu', 'gpu': 'cuda', 'auto': ''}[config.jax.platform]
  if platform and 'JAX_PLATFORMS' not in os.environ:
    os.environ['JAX_PLATFORMS'] = platform


def cmd_train(args) -> int:
  config, logdir = resolve(args)
  from safedreamer.run.lock import check_free
  check_free(logdir)  # another live process holds LOGDIR: exit 2, nothing touched
  _check_resume(config, logdir)
  _check_wandb(config)
  from safedreamer.envs.registry import UnknownTaskError, make_env
  try:
    make_env(config.task, config).close()  # fail on a bad task before writing anything
  except UnknownTaskError as e:
    raise UsageError(str(e)) from None
  select_platform(config)
  from safedreamer.run import jax_setup
  jax_setup.configure(config)  # host devices for jax.devices, the persistent compile cache
  from safedreamer.run.train import train
  counters = train(config, logdir)
  if counters.get('stopped'):
    from safedreamer.run.signals import exit_status, signal_name
    print(f"safedreamer: stopped by {signal_name(counters['stopped'])} at step "
          f"{counters['step']} (checkpoint written); re-run the same command to resume "
          f'(--logdir {logdir})', file=sys.stderr)
    return exit_status(counters['stopped'])
  print(f"done: {counters['step']} simulator steps, {counters['updates']} updates, "
        f'logdir {logdir}')
  return 0


def cmd_eval(args) -> int:
  from safedreamer.report.evaluate import EvalError, evaluate, find_logdir
  from safedreamer.run.checkpoint import CheckpointError
  source = args.checkpoint or args.logdir
  if source is None:
    raise UsageError('eval needs --logdir DIR or --checkpoint PATH')
  try:
    run_config = from_yaml((find_logdir(source) / 'config.yaml').read_text())
    select_platform(run_config)
    from safedreamer.run import jax_setup
    jax_setup.configure(run_config)
    result = evaluate(source, episodes=args.episodes, video=args.video, seed=args.seed,
                      outdir=args.out, sample=args.sample)
  except (EvalError, CheckpointError) as e:
    raise UsageError(str(e)) from None
  if run_config.logger.wandb:
    from safedreamer.run import wandb_log
    wandb_log.log_eval(result)  # the run's W&B run: eval means and videos
  return 0


def _check_wandb(config: Config) -> None:
  if config.logger.wandb:
    from safedreamer.run import wandb_log
    problem = wandb_log.check(config)
    if problem:
      raise UsageError(problem)


def _trial_config(argv: list[str]) -> Config:
  """A sweep trial's config, validated exactly as `safedreamer train ARGV` would be."""
  args, rest = build_parser().parse_known_args(['train', *argv])
  args.overrides = rest
  config, logdir = resolve(args)
  _check_resume(config, logdir)
  return config


def cmd_sweep(args) -> int:
  from safedreamer.sweep import spec
  try:
    fields = spec.read_file(args.file) if args.file else {}
    fields.update({k: getattr(args, k) for k in spec.FIELDS if getattr(args, k) is not None})
    sweep = spec.build(fields)
  except spec.SweepError as e:
    raise UsageError(str(e)) from None
  trials, configs = sweep.trials(), {}
  for trial in trials:  # every trial validated before anything is written or started
    try:
      configs[trial.name] = _trial_config(trial.train_args(sweep.resources))
    except (ConfigError, UsageError) as e:
      raise UsageError(f'trial {trial.name}: {e}') from None
  from safedreamer.envs.registry import UnknownTaskError, make_env
  for task in sweep.tasks:
    config = next(configs[t.name] for t in trials if t.task == task)
    try:
      make_env(task, config).close()
    except UnknownTaskError as e:
      raise UsageError(str(e)) from None
  from safedreamer.sweep import engine
  print(f'sweep: {len(trials)} trials in {sweep.out} ({spec.write_spec(sweep)})')
  try:
    results = engine.run(sweep, trials, {n: c.run.steps for n, c in configs.items()})
  except engine.ClusterError as e:
    print(f'safedreamer: error: {e}', file=sys.stderr)
    return 1
  failed = {n: r for n, r in results.items() if r.startswith('failed')}
  for name, result in failed.items():
    print(f'{name}: {result}', file=sys.stderr)
  if len(failed) < len(trials):
    for path in engine.write_reports(sweep.out):
      print(path)
  print(f'sweep: {len(trials) - len(failed)}/{len(trials)} trials complete in {sweep.out}')
  return 1 if failed else 0


def _add_sweep_verb(verbs) -> None:
  sw = verbs.add_parser('sweep', help='tasks x methods x seeds of train runs on Ray (resumable)',
                        allow_abbrev=False, description='Each trial is a `train` run in '
                        'OUT/<task>/<presets>/seed<N>; re-run the same command to resume. '
                        'See docs/sweeps.md.')
  sw.add_argument('file', nargs='?', default=None,
                  help='a YAML sweep file with the same fields (options given here win)')
  sw.add_argument('--tasks', nargs='+', default=None, metavar='TASK')
  sw.add_argument('--methods', nargs='+', default=None, metavar='"PRESETS"',
                  help='each a quoted list of presets, e.g. "bsrp_lag small"')
  sw.add_argument('--seeds', nargs='+', default=None, help='0-4, or 0 2 5, or 0,2,5')
  sw.add_argument('--set', nargs='+', default=None, metavar='KEY=VALUE',
                  help='config overrides for every trial, e.g. run.steps=100000')
  sw.add_argument('--out', default=None, help='the sweep folder (shared storage on a cluster)')
  sw.add_argument('--cpus-per-trial', dest='cpus_per_trial', type=float, default=None,
                  help="Ray CPUs per trial and the trial's XLA threads (default 1)")
  sw.add_argument('--gpus-per-trial', dest='gpus_per_trial', type=float, default=None,
                  help="Ray GPUs per trial, e.g. 0.25: four trials per GPU, each with a "
                  "quarter of its memory (default 0)")
  sw.add_argument('--max-retries', dest='max_retries', type=int, default=None,
                  help='restarts of a trial whose process died (default 3)')
  sw.add_argument('--address', default=None,
                  help="join a Ray cluster: 'auto' or HOST:PORT (default: start one here)")
  sw.set_defaults(func=cmd_sweep)


def cmd_plot(args) -> int:
  from safedreamer.report.plot import plot_runs
  try:
    paths = plot_runs(args.runs, args.out or 'plots', spread=args.spread)
  except FileNotFoundError as e:
    raise UsageError(str(e)) from None
  print('\n'.join(str(p) for p in paths))
  return 0


def cmd_table(args) -> int:
  from safedreamer.report.table import final_table, to_markdown, write_table
  try:
    frame = final_table(args.runs, last_k=args.last)
  except FileNotFoundError as e:
    raise UsageError(str(e)) from None
  print(to_markdown(frame), end='')
  for path in write_table(frame, args.out or 'tables') or []:
    print(path)
  return 0


def cmd_tasks(args) -> int:
  """Known task ids by suite, with their `--env.obs` modes where known. PATTERN: a glob
  (`*?[`) or a case-insensitive substring of 'SUITE/ID'. Exit 1 if nothing matches."""
  import fnmatch
  from safedreamer.envs.registry import UnknownTaskError, catalogue
  try:
    suites = catalogue()
  except UnknownTaskError as e:   # a module in $SAFEDREAMER_ENV_MODULES that cannot be imported
    raise UsageError(str(e)) from None
  pattern = args.pattern
  def match(name):
    if pattern is None:
      return True
    if any(c in pattern for c in '*?['):
      return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    if pattern.endswith('/'):   # a suite: 'gym/' is not 'safetygym/'
      return name.lower().startswith(pattern.lower())
    return pattern.lower() in name.lower()
  shown = 0
  for entry in suites:
    tasks = [(n, m) for n, m in entry['tasks'] if match(n)]
    if not tasks:
      continue
    note = ''
    if entry['suite'] == 'gym':
      note = ', any Gymnasium id whose steps report info["cost"]'
      if pattern is None:  # Gymnasium's registry holds hundreds of ids, most cost-free
        print(f"gym (built-in, {len(tasks)} Gymnasium ids{note}; `safedreamer tasks gym/` "
              'lists them)\n')
        continue
    elif entry['kind'] == 'registered':
      note = ', any id'
    print(f"{entry['suite']} ({entry['kind']}, {len(tasks)} "
          f"{'id' if len(tasks) == 1 else 'ids'}{note})")
    width = max(len(n) for n, _ in tasks)
    for name, modes in tasks:
      print(f"  {name:<{width}}  {' '.join(modes)}".rstrip())
    print()
    shown += len(tasks)
  if pattern is not None and not shown:
    print(f"safedreamer: no known task matches '{pattern}'", file=sys.stderr)
    return 1
  if pattern is None:
    print('modes are --env.obs values; train with --task SUITE/ID')
  return 0


def _add_tasks_verb(verbs) -> None:
  tasks = verbs.add_parser('tasks', help='list the known task ids by suite, with observation modes',
                           allow_abbrev=False)
  tasks.add_argument('pattern', nargs='?', default=None,
                     help="glob or substring of SUITE/ID, e.g. 'PointGoal' or 'safetygym/*Car*'")
  tasks.set_defaults(func=cmd_tasks)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--configs', nargs='+', default=[], metavar='PRESET',
                      help='named presets applied left to right on top of the defaults '
                      f"(none given: {' '.join(DEFAULT_PRESETS)})")
  parser.add_argument('--task', default=None, help='SUITE/ENV_ID, e.g. safetygym/SafetyPointGoal1-v0')
  parser.add_argument('--logdir', default=None, help='run folder (re-run to resume)')


def build_parser() -> argparse.ArgumentParser:
  fmt = argparse.RawDescriptionHelpFormatter
  parser = argparse.ArgumentParser(
      prog='safedreamer', formatter_class=fmt, allow_abbrev=False,
      description='SafeDreamer: safe model-based RL with a world model (JAX).',
      epilog=_keys_help())
  parser.add_argument('--version', action='version', version=f'safedreamer {__version__}')
  verbs = parser.add_subparsers(dest='verb', metavar='VERB')
  train = verbs.add_parser('train', help='train an agent (resumes if LOGDIR has a checkpoint)',
                           allow_abbrev=False,
                           formatter_class=fmt, epilog=_keys_help(),
                           description=textwrap.dedent(__doc__))
  _add_config_args(train)
  train.set_defaults(func=cmd_train)

  ev = verbs.add_parser('eval', help='play a trained agent without updates; eval.json, videos',
                        allow_abbrev=False)
  ev.add_argument('--logdir', default=None, help='a run folder (newest checkpoint)')
  ev.add_argument('--checkpoint', default=None, help='a checkpoint folder LOGDIR/checkpoints/STEP')
  ev.add_argument('--episodes', type=int, default=3)
  ev.add_argument('--video', action='store_true', help='write an mp4 per episode')
  ev.add_argument('--seed', type=int, default=None, help='seed of the first episode')
  ev.add_argument('--out', default=None, help='output folder (default LOGDIR/eval)')
  ev.add_argument('--sample', action='store_true',
                  help="act with sampled actions, as in training (default: the policy's mode)")
  ev.set_defaults(func=cmd_eval)

  plot = verbs.add_parser('plot', help='curves across seeds: eval EpRet, EpCost, CostRate',
                          allow_abbrev=False)
  plot.add_argument('runs', nargs='+', help='run folders or folders holding runs')
  plot.add_argument('--out', default=None, help='folder, or a .png/.pdf path (default plots/)')
  plot.add_argument('--spread', choices=['std', 'minmax'], default='std')
  plot.set_defaults(func=cmd_plot)

  table = verbs.add_parser('table', help="final-performance table ranked by the paper's rule",
                           allow_abbrev=False)
  table.add_argument('runs', nargs='+', help='run folders or folders holding runs')
  table.add_argument('--out', default=None, help='folder, or a .md/.csv path (default tables/)')
  table.add_argument('--last', type=int, default=1, help='average the last K eval rows')
  table.set_defaults(func=cmd_table)
  _add_tasks_verb(verbs)
  _add_sweep_verb(verbs)
  return parser


def main(argv: list[str] | None = None) -> int:
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', datefmt='%H:%M:%S'))
  ours = logging.getLogger('safedreamer')
  ours.addHandler(handler)
  ours.setLevel(logging.INFO)
  parser = build_parser()
  args, rest = parser.parse_known_args(argv)
  if getattr(args, 'func', None) is None:
    parser.print_help()
    return 2
  if rest and args.verb != 'train':
    print(f"safedreamer: error: unrecognized arguments: {' '.join(rest)}", file=sys.stderr)
    return 2
  args.overrides = rest
  try:
    return args.func(args)
  except (ConfigError, UsageError) as e:
    print(f'safedreamer: error: {e}', file=sys.stderr)
    return 2
  except RuntimeError as e:
    # Environments that keep crashing, unreadable checkpoints: the run's data on disk is
    # left as it was (re-run to resume from the newest checkpoint).
    from safedreamer.envs.parallel import EnvCrashError
    from safedreamer.run.checkpoint import CheckpointError
    from safedreamer.run.nonfinite import NonFiniteError
    from safedreamer.run.train import DiskFullError
    if not isinstance(e, (EnvCrashError, CheckpointError, DiskFullError, NonFiniteError)):
      raise
    print(f'safedreamer: error: {str(e).splitlines()[0]}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print('safedreamer: interrupted; re-run the same command to resume', file=sys.stderr)
    return 130
  except BrokenPipeError:   # e.g. `safedreamer tasks | head`: the reader has what it wanted
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return 1


if __name__ == '__main__':
  sys.exit(main())
