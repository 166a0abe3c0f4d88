"""The final-performance table, ordered by the paper's rule (SPEC 2.8).

Per run:
  EpRet, EpCost  from LOGDIR/eval/eval.json when it exists (written by
                 `safedreamer eval`, which evaluates the newest checkpoint), else the
                 mean of the last `last_k` rows of eval/EpRet and eval/EpCost in
                 metrics.jsonl (the periodic evaluations during training; K=1: the
                 last one). NaN when the run has neither.
  CostRate       the last logged episode/CostRate (training cost / training steps).
  step           the run's last logged simulator step.
Per task and method (the run's variant name, see runs.py): mean and std across
seeds (population std, ddof=0) of each, the number of seeds, the cost limit,
whether the mean EpCost meets it, and
  feasible_from  the first step from which the seeds' mean eval/EpCost curve (the
                 one `plot` draws: seeds interpolated onto a common grid) stays <=
                 the cost limit up to its end (inf if its end violates the limit,
                 or the method's final mean EpCost does).

Order within a task (the `rank` column): methods that meet the cost limit
(EpCost mean <= limit) first, then higher EpRet mean first, ties broken by the
earlier mean `feasible_from`. Infeasible methods follow, ordered the same way.
Tasks are listed alphabetically.
"""
from __future__ import annotations

import math
import pathlib
from typing import Iterable

import numpy as np
import pandas as pd

from safedreamer.report.plot import aggregate
from safedreamer.report.runs import Run, group_runs, load_runs

METRICS = ('EpRet', 'EpCost', 'CostRate')
COLUMNS = ['rank', 'task', 'method', 'seeds', 'EpRet_mean', 'EpRet_std', 'EpCost_mean',
           'EpCost_std', 'CostRate_mean', 'CostRate_std', 'cost_limit', 'feasible',
           'feasible_from', 'step', 'source']


def _mean_last(run: Run, key: str, last_k: int) -> float:
  _, values = run.series(key)
  return float(np.mean(values[-last_k:])) if len(values) else math.nan


def feasible_from(steps: np.ndarray, costs: np.ndarray, limit: float) -> float:
  """The first step from which `costs` stay <= `limit` to the end (inf if the last
  value violates it, or there are none)."""
  if not len(costs) or not costs[-1] <= limit:
    return math.inf
  bad = np.nonzero(~(costs <= limit))[0]
  return float(steps[bad[-1] + 1] if len(bad) else steps[0])


def run_summary(run: Run, last_k: int = 1, use_eval_json: bool = True) -> dict:
  """The final numbers of one run (see the module docstring)."""
  _, costs = run.series('eval/EpCost')
  ej = run.eval_json if use_eval_json else None
  if ej and 'EpRet' in ej and 'EpCost' in ej:
    ret, cost, source = float(ej['EpRet']['mean']), float(ej['EpCost']['mean']), 'eval.json'
  else:
    ret = _mean_last(run, 'eval/EpRet', last_k)
    cost = _mean_last(run, 'eval/EpCost', last_k)
    source = f'last {last_k} eval' if len(costs) else 'none'
  _, rates = run.series('episode/CostRate')
  return {
      'task': run.task, 'method': run.name, 'seed': run.seed, 'EpRet': ret, 'EpCost': cost,
      'CostRate': float(rates[-1]) if len(rates) else math.nan,
      'cost_limit': run.cost_limit,
      'step': run.last_step, 'source': source, 'path': str(run.path),
  }


def _order(df: pd.DataFrame) -> pd.DataFrame:
  key = pd.DataFrame({
      'task': df['task'], 'infeasible': ~df['feasible'],
      'neg_ret': -df['EpRet_mean'].fillna(-math.inf),
      'from': df['feasible_from'].fillna(math.inf), 'method': df['method']})
  order = key.sort_values(['task', 'infeasible', 'neg_ret', 'from', 'method'],
                          kind='stable').index
  df = df.loc[order].reset_index(drop=True)
  df['rank'] = df.groupby('task').cumcount() + 1
  return df


def final_table(run_dirs: Iterable[str | pathlib.Path], last_k: int = 1,
                use_eval_json: bool = True) -> pd.DataFrame:
  """One row per (task, method), columns `COLUMNS`, ordered by the paper's rule.

  `run_dirs`: run folders or folders holding runs (searched recursively).
  """
  if last_k < 1:
    raise ValueError(f'last_k must be >= 1, got {last_k}')
  rows = []
  for (task, method), runs in group_runs(load_runs(run_dirs)).items():
    per_seed = pd.DataFrame([run_summary(r, last_k, use_eval_json) for r in runs])
    row = {'task': task, 'method': method, 'seeds': len(runs)}
    for m in METRICS:
      values = per_seed[m].to_numpy(np.float64)
      finite = values[~np.isnan(values)]
      row[f'{m}_mean'] = float(finite.mean()) if len(finite) else math.nan
      row[f'{m}_std'] = float(finite.std()) if len(finite) else math.nan
    limits = per_seed['cost_limit'].dropna().unique()
    row['cost_limit'] = float(limits[0]) if len(limits) == 1 else (
        float(limits.max()) if len(limits) else math.nan)
    row['feasible'] = bool(row['EpCost_mean'] <= row['cost_limit'])
    curve = aggregate(runs, 'eval/EpCost')
    row['feasible_from'] = math.inf if curve is None or not row['feasible'] else (
        feasible_from(curve[0], curve[1], row['cost_limit']))
    row['step'] = int(per_seed['step'].mean())
    row['source'] = ', '.join(sorted(set(per_seed['source'])))
    rows.append(row)
  if not rows:
    return pd.DataFrame(columns=COLUMNS)
  df = pd.DataFrame(rows)
  df['rank'] = 0
  return _order(df)[COLUMNS]


def _pm(mean: float, std: float, digits: int) -> str:
  if math.isnan(mean):
    return 'n/a'
  return f'{mean:.{digits}f} ± {std:.{digits}f}'


def to_markdown(df: pd.DataFrame) -> str:
  """The table as GitHub Markdown, 'mean ± std' cells, one block per task."""
  header = ['rank', 'task', 'method', 'seeds', 'EpRet', 'EpCost', 'CostRate', 'cost limit',
            'meets limit', 'feasible from step']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in df.itertuples(index=False):
    start = '-' if math.isinf(r.feasible_from) or math.isnan(r.feasible_from) else (
        f'{r.feasible_from:.0f}')
    cells = [str(r.rank), r.task, r.method, str(r.seeds), _pm(r.EpRet_mean, r.EpRet_std, 2),
             _pm(r.EpCost_mean, r.EpCost_std, 2), _pm(r.CostRate_mean, r.CostRate_std, 4),
             f'{r.cost_limit:g}', 'yes' if r.feasible else 'no', start]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_table(df: pd.DataFrame, out: str | pathlib.Path) -> list[pathlib.Path]:
  """Write the Markdown and CSV tables. `out` ending in .md or .csv names the
  files (both suffixes are written); any other `out` is a folder that gets
  table.md and table.csv. Returns the two paths."""
  out = pathlib.Path(out)
  base = out.with_suffix('') if out.suffix in ('.md', '.csv') else out / 'table'
  base.parent.mkdir(parents=True, exist_ok=True)
  md, csv = base.with_suffix('.md'), base.with_suffix('.csv')
  md.write_text(to_markdown(df), encoding='utf-8')
  df.to_csv(csv, index=False)
  return [md, csv]
