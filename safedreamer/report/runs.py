"""Finding runs on disk and reading what plots and tables need from them.

A run is a folder with `metrics.jsonl` (see run/logger.py) and, normally, the
`config.yaml` that `safedreamer train` writes. The default layout is
`runs/<task>/<presets>/seed<seed>`; the `<presets>` folder name (e.g.
`bsrp_lag-small`) names the run's variant, so two runs of the same method with
different presets stay apart. Runs outside that layout are named by their
`config.method`.

config.yaml is read as plain YAML (not validated against the current schema), so
runs written by older versions of the code can still be plotted.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
from typing import Iterable

import numpy as np
import yaml

from safedreamer.run.logger import read_metrics

SEED_DIR = re.compile(r'^seed-?\d+$')
EVAL_JSON = pathlib.Path('eval') / 'eval.json'


@dataclasses.dataclass
class Run:
  """One run: where it is, what it ran and everything it logged."""
  path: pathlib.Path
  task: str
  method: str                # config.method, e.g. 'bsrp_lag'
  name: str                  # the variant: '<presets>' folder name or the method
  seed: int
  cost_limit: float
  rows: list[dict]           # metrics.jsonl rows, in order
  eval_json: dict | None     # LOGDIR/eval/eval.json (written by `safedreamer eval`)

  def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of every row that logged `key`, sorted by step (float64)."""
    pairs = [(r['step'], r[key]) for r in self.rows if key in r and r[key] is not None]
    if not pairs:
      return np.zeros(0), np.zeros(0)
    steps, values = np.array(pairs, np.float64).T
    order = np.argsort(steps, kind='stable')
    return steps[order], values[order]

  @property
  def last_step(self) -> int:
    return int(max((r.get('step', 0) for r in self.rows), default=0))


def find_runs(paths: Iterable[str | pathlib.Path]) -> list[pathlib.Path]:
  """Run folders named by `paths`: each path is a run (holds metrics.jsonl) or a
  folder searched recursively for runs (e.g. `runs/`). Sorted, without duplicates.
  Raises FileNotFoundError naming the first path that holds no run."""
  found: dict[pathlib.Path, None] = {}
  for path in paths:
    path = pathlib.Path(path)
    if (path / 'metrics.jsonl').is_file():
      found[path.resolve()] = None
      continue
    inner = sorted(p.parent.resolve() for p in path.glob('**/metrics.jsonl'))
    if not inner:
      raise FileNotFoundError(f'no run (a folder with metrics.jsonl) at or under {path}')
    found.update(dict.fromkeys(inner))
  return sorted(found)


def _read_config(path: pathlib.Path) -> dict:
  file = path / 'config.yaml'
  if not file.is_file():
    return {}
  data = yaml.safe_load(file.read_text(encoding='utf-8'))
  return data if isinstance(data, dict) else {}


def run_name(path: pathlib.Path, method: str) -> str:
  """The variant name: the `<presets>` folder of runs/<task>/<presets>/seed<N>, or
  the method when the run is not in that layout (or its presets folder is
  'default', the name the CLI gives a run without --configs)."""
  if SEED_DIR.match(path.name) and path.parent.name not in ('', 'default'):
    return path.parent.name
  return method


def load_run(path: str | pathlib.Path) -> Run:
  """Read one run folder (see the module docstring)."""
  path = pathlib.Path(path)
  config = _read_config(path)
  method = str(config.get('method', 'unknown'))
  seed = config.get('seed')
  if seed is None:
    digits = re.findall(r'\d+', path.name)
    seed = int(digits[-1]) if digits else 0
  task = config.get('task')
  if task is None:  # runs/<task>/<presets>/seed<N> without config.yaml
    task = path.parent.parent.name if SEED_DIR.match(path.name) else 'unknown'
  eval_json = None
  if (path / EVAL_JSON).is_file():
    try:
      eval_json = json.loads((path / EVAL_JSON).read_text(encoding='utf-8'))
    except json.JSONDecodeError:
      eval_json = None
  return Run(path=path, task=str(task), method=method, name=run_name(path, method),
             seed=int(seed), cost_limit=float(config.get('cost_limit', math.nan)),
             rows=read_metrics(path / 'metrics.jsonl'), eval_json=eval_json)


def load_runs(paths: Iterable[str | pathlib.Path]) -> list[Run]:
  return [load_run(p) for p in find_runs(paths)]


def group_runs(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
  """{(task, name): runs sorted by seed}, keys sorted by task then name."""
  groups: dict[tuple[str, str], list[Run]] = {}
  for run in runs:
    groups.setdefault((run.task, run.name), []).append(run)
  return {k: sorted(groups[k], key=lambda r: (r.seed, str(r.path))) for k in sorted(groups)}


def common_grid(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 500):
  """Resample curves logged at different steps onto one grid.

  The grid holds every logged step inside the range all curves cover (the latest
  first step to the earliest last step), so each value is interpolated, never
  extrapolated; beyond `points` steps it is thinned evenly. If the curves do not
  overlap, it spans all of them and np.interp holds the end values.
  Returns (grid [G], values [num_curves, G]); empty curves are left out.
  """
  curves = [(s, v) for s, v in curves if len(s)]
  if not curves:
    return np.zeros(0), np.zeros((0, 0))
  if len(curves) == 1:
    return curves[0][0], curves[0][1][None]
  lo = max(s[0] for s, _ in curves)
  hi = min(s[-1] for s, _ in curves)
  if hi < lo:
    lo, hi = min(s[0] for s, _ in curves), max(s[-1] for s, _ in curves)
  steps = np.unique(np.concatenate([s for s, _ in curves] + [[lo, hi]]))
  grid = steps[(steps >= lo) & (steps <= hi)]
  if len(grid) > points:
    grid = grid[np.unique(np.linspace(0, len(grid) - 1, points).round().astype(int))]
  return grid, np.stack([np.interp(grid, s, v) for s, v in curves])
