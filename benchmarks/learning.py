"""Learning runs and the multi-seed protocol: training curves, 40-episode evaluations
from fresh seeds, one table across seeds.

One run (curve next to a random policy on the same task):

  python benchmarks/learning.py safetygym/SafetyPointGoal1-v0 --configs bsrp_lag small \
      --steps 300000 --seed 0 [--logdir DIR] [--eval_every 25000] [--eval_episodes 5]

The protocol (several seeds, two at once on two cores, each pinned to its own core):

  python benchmarks/learning.py toy/hazard --configs bsrp_lag tiny toy --steps 30000 \
      --seeds 0 1 2 --out DIR [--jobs 2] [--eval_seeds 1000 2000] [--final_episodes 20]

Each seed trains in DIR/seed<N> (a child process of this script in one-run mode;
re-running resumes or skips finished runs, and a larger --steps extends them), then
its final checkpoint plays
`final_episodes` episodes from each evaluation seed (`safedreamer eval`, the policy's
mode: 40 fresh episodes by default, seeds never used in training). DIR/protocol.json
and DIR/protocol.md hold every seed's EpRet / EpCost / CostRate and its verdict
against the cost limit, and mean +- std across seeds. On `toy/hazard` the returns are
also given as a fraction of the zero-cost optimum (envs/toy.py `oracle_returns`).
Decide seeds, steps and what counts as a pass before looking at the table, and
report every seed run.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import queue
import subprocess
import sys
import time

import numpy as np

ONE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def random_policy_level(config, episodes: int) -> dict:
  from safedreamer.agents.random import RandomAgent
  from safedreamer.envs.registry import make_env_batch
  from safedreamer.run.driver import run_episodes
  envs = make_env_batch(config.task, config.model_copy(update={'seed': config.seed + 777}),
                        num_envs=1, parallel=False)
  try:
    eps = run_episodes(envs, RandomAgent(envs.act_dim, seed=config.seed), episodes,
                       config.env.action_repeat, mode='eval')
  finally:
    envs.close()
  return {k: float(np.mean([e[k] for e in eps])) for k in eps[0]}


def write_curve(logdir: pathlib.Path, config, random_level: dict, wall: float) -> dict:
  from safedreamer.run.logger import read_metrics
  rows = [r for r in read_metrics(logdir / 'metrics.jsonl') if 'eval/EpRet' in r]
  curve = {
      'task': config.task, 'method': config.method, 'seed': config.seed,
      'cost_limit': config.cost_limit, 'wall_seconds': wall, 'random': random_level,
      'step': [r['step'] for r in rows], 'EpRet': [r['eval/EpRet'] for r in rows],
      'EpCost': [r['eval/EpCost'] for r in rows]}
  (logdir / 'curve.json').write_text(json.dumps(curve, indent=1))
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for ax, key in zip(axes, ('EpRet', 'EpCost')):
    ax.plot(curve['step'], curve[key], marker='o', label=config.method)
    ax.axhline(random_level[key], color='gray', ls=':', label='random policy')
    if key == 'EpCost':
      ax.axhline(config.cost_limit, color='red', ls='--', label='cost limit')
    ax.set_xlabel('simulator steps')
    ax.set_title(f'eval {key}')
    ax.legend()
  fig.suptitle(config.task)
  fig.tight_layout()
  fig.savefig(logdir / 'curve.png', dpi=100)
  return curve


def safe_optimum(task: str) -> dict | None:
  """The zero-cost and unconstrained optima of a task with a known answer."""
  if task != 'toy/hazard':
    return None
  from safedreamer.envs.toy import oracle_returns
  return oracle_returns()


def _child_env() -> dict:
  env = dict(os.environ)
  if 'intra_op_parallelism_threads' not in env.get('XLA_FLAGS', ''):
    env['XLA_FLAGS'] = f"{env.get('XLA_FLAGS', '')} {ONE_THREAD}".strip()
  return env


def core_slots(jobs: int) -> queue.Queue | None:
  """One CPU core per seed trained at once, when 2 or more run and there are that
  many cores; else None (a single seed keeps every core its threads can use).

  The XLA_FLAGS of `_child_env` do not keep jax 0.7's CPU runtime on one thread (a
  lone run's update uses ~1.5 cores), so seeds trained side by side are pinned each
  to its own core instead."""
  cpus = sorted(os.sched_getaffinity(0))
  if not 1 < jobs <= len(cpus):
    return None
  slots = queue.Queue()
  for cpu in cpus[:jobs]:
    slots.put(cpu)
  return slots


def _run(cmd: list[str], log: pathlib.Path, core: int | None = None) -> None:
  """Run cmd (pinned to `core` with its children, if given), appending to log."""
  log.parent.mkdir(parents=True, exist_ok=True)
  pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
  with open(log, 'a') as f:
    code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=_child_env(),
                           preexec_fn=pin)
  if code != 0:
    raise RuntimeError(f"{' '.join(cmd[:4])}... exited {code}; see {log}")


def protocol_seed(args, seed: int, out: pathlib.Path, cores: queue.Queue | None = None) -> dict:
  """Train one seed (resuming), then evaluate its final checkpoint on every eval seed,
  on a core taken from `cores` for the while."""
  core = cores.get() if cores is not None else None
  try:
    return _protocol_seed(args, seed, out, core)
  finally:
    if cores is not None:
      cores.put(core)


def _protocol_seed(args, seed: int, out: pathlib.Path, core: int | None) -> dict:
  run = out / f'seed{seed}'
  cmd = [sys.executable, __file__, args.task, '--configs', *args.configs, '--steps',
         str(args.steps), '--seed', str(seed), '--logdir', str(run), '--eval_episodes',
         str(args.eval_episodes)]
  if args.eval_every:
    cmd += ['--eval_every', str(args.eval_every)]
  for key, value in args.set:
    cmd += ['--set', key, value]
  _run(cmd, out / 'logs' / f'train_seed{seed}.log', core)
  final_step = max(int(p.name) for p in (run / 'checkpoints').iterdir() if p.name.isdigit())
  evals = []
  for eval_seed in args.eval_seeds:
    folder = run / f'eval_seed{eval_seed}'
    done = folder / 'eval.json'
    if not done.exists() or json.loads(done.read_text())['checkpoint_step'] != final_step:
      _run([sys.executable, '-m', 'safedreamer.cli', 'eval', '--logdir', str(run), '--episodes',
            str(args.final_episodes), '--seed', str(eval_seed), '--out', str(folder)],
           out / 'logs' / f'eval_seed{seed}_{eval_seed}.log', core)
    evals.append(json.loads((folder / 'eval.json').read_text()))
  from safedreamer.run.logger import read_metrics
  rates = [r['episode/CostRate'] for r in read_metrics(run / 'metrics.jsonl')
           if 'episode/CostRate' in r]
  pooled = {k: [v for e in evals for v in e[k]['per_episode']] for k in ('EpRet', 'EpCost')}
  return {'seed': seed, 'step': evals[0]['checkpoint_step'], 'episodes': len(pooled['EpRet']),
          'EpRet': float(np.mean(pooled['EpRet'])), 'EpCost': float(np.mean(pooled['EpCost'])),
          'CostRate': rates[-1] if rates else float('nan')}


def summarize_protocol(rows: list[dict], cost_limit: float, optimum: dict | None) -> dict:
  """Mean +- std across seeds and each seed's verdict (EpCost <= cost limit)."""
  for row in rows:
    row['meets_limit'] = bool(row['EpCost'] <= cost_limit)
    if optimum:
      row['frac_safe_optimum'] = row['EpRet'] / optimum['safe']['EpRet']
  keys = ['EpRet', 'EpCost', 'CostRate'] + (['frac_safe_optimum'] if optimum else [])
  stats = {k: {'mean': float(np.mean([r[k] for r in rows])),
               'std': float(np.std([r[k] for r in rows]))} for k in keys}
  return {'cost_limit': cost_limit, 'optimum': optimum, 'seeds': rows, 'across_seeds': stats,
          'all_meet_limit': all(r['meets_limit'] for r in rows)}


def protocol_markdown(result: dict, title: str) -> str:
  optimum = result['optimum']
  keys = ['EpRet', 'EpCost', 'CostRate'] + (['frac_safe_optimum'] if optimum else [])
  lines = [f'### {title}', '', '| seed | step | episodes | ' + ' | '.join(keys) + ' | verdict |',
           '|' + ' --- |' * (len(keys) + 4)]
  for r in result['seeds']:
    verdict = 'under the limit' if r['meets_limit'] else 'over the limit'
    lines.append(f"| {r['seed']} | {r['step']} | {r['episodes']} | "
                 + ' | '.join(f'{r[k]:.3g}' for k in keys) + f' | {verdict} |')
  stats = result['across_seeds']
  lines.append('| mean ± std | | | ' + ' | '.join(
      f"{stats[k]['mean']:.3g} ± {stats[k]['std']:.2g}" for k in keys) + ' | |')
  lines += ['', f"Cost limit {result['cost_limit']:g}."]
  if optimum:
    lines[-1] += (f" Zero-cost optimum EpRet {optimum['safe']['EpRet']:.2f}; unconstrained "
                  f"{optimum['unconstrained']['EpRet']:.2f} at cost "
                  f"{optimum['unconstrained']['EpCost']:.1f} (scripted oracles).")
  return '\n'.join(lines) + '\n'


def run_protocol(args) -> dict:
  from safedreamer.config.load import load_config
  config = load_config(args.configs, {'task': args.task, **dict(args.set)})
  out = pathlib.Path(args.out)
  start = time.time()
  cores = core_slots(args.jobs)
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    futures = {seed: pool.submit(protocol_seed, args, seed, out, cores) for seed in args.seeds}
    failed = {seed: f.exception() for seed, f in futures.items() if f.exception()}
  if failed:   # a stopped or failed seed: no table; re-running resumes where each stopped
    for seed, error in failed.items():
      print(f'seed {seed}: {error}', file=sys.stderr)
    raise SystemExit(f'{len(failed)} of {len(futures)} seeds did not finish; re-run the '
                     'same command to resume them')
  rows = [f.result() for f in futures.values()]
  result = summarize_protocol(rows, config.cost_limit, safe_optimum(args.task))
  result.update(task=args.task, configs=args.configs, steps=args.steps, sets=args.set,
                eval_seeds=args.eval_seeds, wall_seconds=round(time.time() - start, 1))
  (out / 'protocol.json').write_text(json.dumps(result, indent=1))
  title = f"{args.task}, {' '.join(args.configs)}, {args.steps} steps"
  (out / 'protocol.md').write_text(protocol_markdown(result, title))
  print((out / 'protocol.md').read_text())
  return result


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('task')
  parser.add_argument('--configs', nargs='+', default=['bsrp_lag', 'small'])
  parser.add_argument('--steps', type=int, required=True)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--logdir', default=None)
  parser.add_argument('--eval_every', type=int, default=None)
  parser.add_argument('--eval_episodes', type=int, default=5)
  parser.add_argument('--set', nargs=2, action='append', default=[], metavar=('KEY', 'VALUE'),
                      help='extra config overrides')
  parser.add_argument('--seeds', type=int, nargs='+', default=None,
                      help='the multi-seed protocol over these training seeds (needs --out)')
  parser.add_argument('--out', default=None, help='protocol folder: seed<N>/ runs, protocol.md')
  parser.add_argument('--jobs', type=int, default=2, help='seeds trained at once')
  parser.add_argument('--eval_seeds', type=int, nargs='+', default=[1000, 2000])
  parser.add_argument('--final_episodes', type=int, default=20,
                      help='episodes per evaluation seed on the final checkpoint')
  args = parser.parse_args(argv)
  if args.seeds is not None:
    if not args.out:
      parser.error('--seeds needs --out DIR')
    return run_protocol(args)
  from safedreamer.config.load import load_config
  from safedreamer.run.train import train
  overrides = {'task': args.task, 'seed': args.seed, 'run.steps': args.steps,
               'run.eval_every': args.eval_every or max(1, args.steps // 10),
               'run.eval_episodes': args.eval_episodes, **dict(args.set)}
  config = load_config(args.configs, overrides)
  logdir = pathlib.Path(args.logdir or f"runs/learning/{args.task.replace('/', '_')}/"
                        f"{'-'.join(args.configs)}/seed{args.seed}")
  start = time.time()
  counters = train(config, logdir)
  if counters.get('stopped'):   # a signal stopped it before run.steps: nothing is final yet
    from safedreamer.run.signals import exit_status
    raise SystemExit(exit_status(counters['stopped']))
  wall = time.time() - start
  curve = write_curve(logdir, config, random_policy_level(config, args.eval_episodes), wall)
  optimum = safe_optimum(args.task)
  print(json.dumps({'task': args.task, 'configs': args.configs, 'steps': args.steps,
                    'wall_seconds': round(wall, 1), 'final_EpRet': curve['EpRet'][-1:],
                    'final_EpCost': curve['EpCost'][-1:], 'random': curve['random'],
                    **({'frac_safe_optimum': [r / optimum['safe']['EpRet']
                                              for r in curve['EpRet'][-1:]]} if optimum else {})}))
  return curve


if __name__ == '__main__':
  main()
