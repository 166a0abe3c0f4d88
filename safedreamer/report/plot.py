"""Learning curves across seeds: eval EpRet, eval EpCost and CostRate vs simulator steps.

One column of panels per task, one row per metric, one colour per method (the
run's variant name, see runs.py) shared by all tasks. Each method's curve is the
mean across its seeds with a shaded spread (std, or min-max); seeds logged at
different steps are interpolated onto a common grid (runs.common_grid). The
EpCost panels carry the task's cost limit as a dashed line. Uses matplotlib's
object API with the Agg canvas (headless, no pyplot state).
"""
from __future__ import annotations

import pathlib
from typing import Iterable

import numpy as np

from safedreamer.report.runs import Run, common_grid, group_runs, load_runs

PANELS = (('eval/EpRet', 'EpRet (eval)'), ('eval/EpCost', 'EpCost (eval)'),
          ('episode/CostRate', 'CostRate (train)'))


def aggregate(runs: list[Run], key: str, spread: str = 'std', points: int = 500):
  """(grid, mean, low, high) of `key` across `runs`, or None if none logged it.

  spread: 'std' (mean +/- population std) or 'minmax' (the seeds' envelope).
  """
  grid, values = common_grid([r.series(key) for r in runs], points)
  if not len(grid):
    return None
  mean = values.mean(0)
  if spread == 'std':
    std = values.std(0)
    low, high = mean - std, mean + std
  elif spread == 'minmax':
    low, high = values.min(0), values.max(0)
  else:
    raise ValueError(f"spread must be 'std' or 'minmax', not {spread!r}")
  return grid, mean, low, high


def _steps_label(x: float, _pos=None) -> str:
  """Tick labels in thousands of steps (250k), short enough for one narrow column."""
  return f'{x / 1e6:g}M' if abs(x) >= 1e6 else (f'{x / 1e3:g}k' if x else '0')


def _legend_columns(labels: list[str], tasks: int) -> int:
  """As many legend columns as fit the figure's width (~4.2 in, ~45 characters, per task)."""
  widest = max((len(label) for label in labels), default=1) + 4
  return max(1, min(len(labels), 5, (45 * tasks) // widest))


def _out_base(out: pathlib.Path) -> pathlib.Path:
  if out.suffix in ('.png', '.pdf'):
    return out.with_suffix('')
  return out / 'curves'


def plot_runs(run_dirs: Iterable[str | pathlib.Path], out: str | pathlib.Path,
              spread: str = 'std', points: int = 500) -> list[pathlib.Path]:
  """Draw the curves of the runs in `run_dirs` (run folders, or folders searched
  recursively for runs) to PNG and PDF.

  `out` ending in .png or .pdf names the files (both are written); any other `out`
  is a folder that gets curves.png and curves.pdf. Returns the written paths.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  groups = group_runs(load_runs(run_dirs))
  if not groups:
    raise FileNotFoundError('no runs to plot')
  tasks = sorted({task for task, _ in groups})
  methods = sorted({name for _, name in groups})
  palette = [f'C{i % 10}' for i in range(len(methods))]
  colors = dict(zip(methods, palette))

  fig = Figure(figsize=(4.2 * len(tasks), 2.8 * len(PANELS) + 0.6), layout='constrained')
  FigureCanvasAgg(fig)
  axes = np.asarray(fig.subplots(len(PANELS), len(tasks), squeeze=False, sharex='col'))
  for col, task in enumerate(tasks):
    limits = set()
    for (gtask, name), runs in groups.items():
      if gtask != task:
        continue
      limits.update(r.cost_limit for r in runs if np.isfinite(r.cost_limit))
      label = f'{name} ({len(runs)} seed{"s" if len(runs) > 1 else ""})'
      for row, (key, _) in enumerate(PANELS):
        curve = aggregate(runs, key, spread, points)
        if curve is None:
          continue
        grid, mean, low, high = curve
        ax = axes[row, col]
        marker = 'o' if len(grid) <= 2 else None
        ax.plot(grid, mean, color=colors[name], label=label, lw=1.6, marker=marker, ms=3)
        if len(runs) > 1:
          ax.fill_between(grid, low, high, color=colors[name], alpha=0.2, lw=0)
    for limit in sorted(limits):
      axes[1, col].axhline(limit, color='k', ls='--', lw=1.0, label=f'cost limit {limit:g}')
    axes[0, col].set_title(task, fontsize=10)
    axes[-1, col].set_xlabel('simulator steps')
    axes[-1, col].xaxis.set_major_formatter(_steps_label)
    for row, (_, title) in enumerate(PANELS):
      ax = axes[row, col]
      ax.grid(alpha=0.3)
      if col == 0:
        ax.set_ylabel(title)
      if not ax.has_data():
        ax.text(0.5, 0.5, 'not logged', ha='center', va='center', transform=ax.transAxes,
                color='0.5')
  handles, labels = {}, {}
  for ax in axes.flat:
    for h, lab in zip(*ax.get_legend_handles_labels()):
      key = lab.rsplit(' (', 1)[0]  # without the last ' (N seeds)'
      handles.setdefault(key, h)
      labels.setdefault(key, lab if key.startswith('cost limit') else key)
  fig.legend(list(handles.values()), list(labels.values()), loc='outside lower center',
             ncols=_legend_columns(list(labels.values()), len(tasks)), fontsize=9, frameon=False)

  base = _out_base(pathlib.Path(out))
  base.parent.mkdir(parents=True, exist_ok=True)
  paths = [base.with_suffix('.png'), base.with_suffix('.pdf')]
  fig.savefig(paths[0], dpi=120)
  fig.savefig(paths[1])
  return paths
