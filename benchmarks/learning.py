"""Learning curve of one training run, next to a random policy on the same task.

  python benchmarks/learning.py safetygym/SafetyPointGoal1-v0 --configs bsrp_lag small \
      --steps 250000 [--seed 0] [--logdir DIR] [--eval_every 25000] [--eval_episodes 5]

Trains (resuming if LOGDIR holds a checkpoint), evaluating every `eval_every`
simulator steps without updates, then writes LOGDIR/curve.json and LOGDIR/curve.png
(eval EpRet and EpCost against simulator steps, with the random policy's level and
the cost limit) and prints the end points and the wall time.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np


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
  args = parser.parse_args(argv)
  from safedreamer.config.load import load_config
  from safedreamer.run.train import train
  overrides = {'task': args.task, 'seed': args.seed, 'run.steps': args.steps,
               'run.eval_every': args.eval_every or max(1, args.steps // 10),
               'run.eval_episodes': args.eval_episodes, **dict(args.set)}
  config = load_config(args.configs, overrides)
  logdir = pathlib.Path(args.logdir or f"runs/learning/{args.task.replace('/', '_')}/"
                        f"{'-'.join(args.configs)}/seed{args.seed}")
  start = time.time()
  train(config, logdir)
  wall = time.time() - start
  curve = write_curve(logdir, config, random_policy_level(config, args.eval_episodes), wall)
  print(json.dumps({'task': args.task, 'configs': args.configs, 'steps': args.steps,
                    'wall_seconds': round(wall, 1), 'final_EpRet': curve['EpRet'][-1:],
                    'final_EpCost': curve['EpCost'][-1:], 'random': curve['random']}))
  return curve


if __name__ == '__main__':
  main()
