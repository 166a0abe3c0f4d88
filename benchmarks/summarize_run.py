"""Turn a run folder into a compact summary for docs/results.md (kilobytes, no weights).

    .venv/bin/python benchmarks/summarize_run.py RUN_DIR... --name "BSRP-Lag small" \
        --code "$(git rev-parse --short HEAD)" [--source TEXT] [--machine TEXT] [--out DIR]

Each RUN_DIR (a `safedreamer train` folder; run `safedreamer eval --logdir RUN_DIR
--episodes 20` first for the final evaluation) becomes
DIR/<task>/<name>/seed<N>.json (DIR: benchmarks/runs), holding:
  the eval curve      every eval/EpRet and eval/EpCost row of metrics.jsonl, with the
                      training CostRate (episode/CostRate) logged nearest each step;
  the final result    the per-episode values, means and stds of LOGDIR/eval/eval.json,
                      or of LOGDIR/eval_seed*/eval.json pooled (benchmarks/learning.py
                      --seeds), or, without either, the curve's last point (marked);
  the config          the run's config.yaml, as a dict;
  provenance          name (the row of the results table), the code version it ran
                      on, where the numbers come from, the machine, the wall time.
Then `benchmarks/make_results.py` regenerates docs/results.md from all summaries.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import numpy as np
import yaml

from safedreamer.run.logger import read_metrics

FORMAT = 1
ROOT = pathlib.Path(__file__).resolve().parent
RUNS = ROOT / 'runs'


def slug(text: str) -> str:
  return re.sub(r'[^A-Za-z0-9.+-]+', '_', text).strip('_')


def _nearest(rows: list[dict], key: str, step: int):
  best = None
  for row in rows:
    if key in row and (best is None or abs(row['step'] - step) < abs(best['step'] - step)):
      best = row
  return None if best is None else round(float(best[key]), 6)


def summarize(run_dir: str | pathlib.Path, name: str, code: str, source: str = '',
              machine: str = '') -> dict:
  """The summary of one run folder (see the module docstring)."""
  run_dir = pathlib.Path(run_dir)
  if not (run_dir / 'metrics.jsonl').is_file() or not (run_dir / 'config.yaml').is_file():
    raise FileNotFoundError(f'{run_dir} is not a run folder (no metrics.jsonl or config.yaml)')
  config = yaml.safe_load((run_dir / 'config.yaml').read_text(encoding='utf-8'))
  rows = read_metrics(run_dir / 'metrics.jsonl')
  evals = [r for r in rows if 'eval/EpRet' in r and 'eval/EpCost' in r]
  curve = {'step': [int(r['step']) for r in evals],
           'EpRet': [round(float(r['eval/EpRet']), 6) for r in evals],
           'EpCost': [round(float(r['eval/EpCost']), 6) for r in evals],
           'CostRate': [_nearest(rows, 'episode/CostRate', r['step']) for r in evals],
           'episodes': int(config.get('run', {}).get('eval_episodes', 0))}
  # benchmarks/learning.py's protocol evaluates into eval_seed<S>/: pooled
  found = sorted(run_dir.glob('eval_seed*/eval.json')) or [run_dir / 'eval' / 'eval.json']
  found = [json.loads(f.read_text(encoding='utf-8')) for f in found if f.is_file()]
  if found:
    steps = {int(ej['checkpoint_step']) for ej in found}
    if len(steps) > 1:
      raise ValueError(f'{run_dir}: evaluations of different checkpoints {sorted(steps)}')
    final = {'step': steps.pop(), 'episodes': sum(int(ej['episodes']) for ej in found),
             'policy': found[0].get('policy', 'mode'), 'seeds': [int(ej['seed']) for ej in found],
             'from': 'safedreamer eval'}
    for key in ('EpRet', 'EpCost'):
      per = [round(float(v), 6) for ej in found for v in ej[key]['per_episode']]
      final[key] = {'mean': round(float(np.mean(per)), 6), 'std': round(float(np.std(per)), 6),
                    'per_episode': per}
  elif evals:
    final = {'step': curve['step'][-1], 'episodes': curve['episodes'], 'policy': 'mode',
             'from': 'the last point of the eval curve',
             'EpRet': {'mean': curve['EpRet'][-1], 'std': None},
             'EpCost': {'mean': curve['EpCost'][-1], 'std': None}}
  else:
    raise ValueError(f'{run_dir} has no evaluation: run `safedreamer eval --logdir {run_dir}`')
  rates = [r['episode/CostRate'] for r in rows if 'episode/CostRate' in r]
  final['CostRate'] = round(float(rates[-1]), 6) if rates else None
  presets = run_dir.parent.name if re.match(r'^seed-?\d+$', run_dir.name) else ''
  return {'format': FORMAT, 'name': name, 'task': config['task'], 'method': config['method'],
          'seed': int(config['seed']), 'cost_limit': float(config['cost_limit']),
          'steps': max((int(r['step']) for r in rows), default=0), 'code': code,
          'source': source or f'run folder {run_dir}', 'machine': machine,
          'presets': presets, 'curve': curve, 'final': final, 'config': config}


def write_summary(summary: dict, out: str | pathlib.Path = RUNS) -> pathlib.Path:
  path = (pathlib.Path(out) / slug(summary['task']) / slug(summary['name'])
          / f"seed{summary['seed']}.json")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(summary, indent=1) + '\n', encoding='utf-8')
  return path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('runs', nargs='+', help='run folders')
  parser.add_argument('--name', required=True, help="the results table's row, e.g. 'BSRP-Lag small'")
  parser.add_argument('--code', required=True, help='the code version the runs ran on (commit)')
  parser.add_argument('--source', default='', help='where the runs come from (command, session)')
  parser.add_argument('--machine', default='', help='e.g. "2-core AMD EPYC (Zen 4), XLA on one thread"')
  parser.add_argument('--out', default=str(RUNS), help='summaries folder (default benchmarks/runs)')
  args = parser.parse_args(argv)
  for run in args.runs:
    try:
      summary = summarize(run, args.name, args.code, args.source, args.machine)
    except (OSError, ValueError, KeyError) as e:
      print(f'summarize_run: {e}', file=sys.stderr)
      return 2
    print(write_summary(summary, args.out))
  return 0


if __name__ == '__main__':
  sys.exit(main())
