"""Watching a sweep: each trial's state and progress, read from the files its
`train` process writes (metrics.jsonl, see run/logger.py; checkpoints/<step>/), and
a status file the sweep keeps beside them. Works for a sweep running elsewhere
too, as long as its folder is visible here.
"""
from __future__ import annotations

import json
import os
import pathlib
import time

STATUS_FILE = '.sweep.json'  # in each trial folder: state, starts, host, pid, return code
KEYS = {'EpRet': 'episode/EpRet', 'EpCost': 'episode/EpCost', 'sps': 'run/sps'}


def checkpoint_step(logdir: pathlib.Path) -> int:
  """The newest complete checkpoint's step (0 if none); orbax renames a checkpoint
  to its step only once it is fully written."""
  folder = pathlib.Path(logdir) / 'checkpoints'
  if not folder.is_dir():
    return 0
  return max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0)


def read_status(logdir: pathlib.Path) -> dict:
  try:
    return json.loads((pathlib.Path(logdir) / STATUS_FILE).read_text(encoding='utf-8'))
  except (OSError, ValueError):
    return {}


def write_status(logdir: pathlib.Path, **fields) -> dict:
  """Update the trial's status file atomically (returns the new status)."""
  logdir = pathlib.Path(logdir)
  status = read_status(logdir) | fields | {'time': time.time()}
  tmp = logdir / f'{STATUS_FILE}.{os.getpid()}.tmp'
  tmp.write_text(json.dumps(status), encoding='utf-8')
  os.replace(tmp, logdir / STATUS_FILE)
  return status


class MetricsTail:
  """The latest step, EpRet, EpCost and steps/s of one metrics.jsonl, read
  incrementally (only new bytes; from the start again if a resume truncated it)."""

  def __init__(self, path: pathlib.Path):
    self.path = pathlib.Path(path)
    self._offset = 0
    self._partial = b''
    self.latest: dict[str, float] = {}
    self.step = 0

  def poll(self) -> None:
    try:
      size = self.path.stat().st_size
    except OSError:
      return
    if size < self._offset:  # truncated by a resume: re-read from the start
      self._offset, self._partial, self.latest, self.step = 0, b'', {}, 0
    if size == self._offset:
      return
    with open(self.path, 'rb') as f:
      f.seek(self._offset)
      data = self._partial + f.read(size - self._offset)
    self._offset = size
    *lines, self._partial = data.split(b'\n')
    for line in lines:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      self.step = max(self.step, int(row.get('step', 0)))
      for name, key in KEYS.items():
        if key in row:
          self.latest[name] = row[key]


def _fmt(value, digits: int) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


class Board:
  """Every trial's row: state, starts, step / total, latest EpRet, EpCost, steps/s."""

  COLUMNS = ('trial', 'state', 'starts', 'step', 'EpRet', 'EpCost', 'steps/s')

  def __init__(self, trials, totals: dict[str, int]):
    self.trials = list(trials)
    self.totals = totals
    self.tails = {t.name: MetricsTail(t.logdir / 'metrics.jsonl') for t in self.trials}
    self.states = {t.name: 'pending' for t in self.trials}

  def set(self, name: str, state: str) -> None:
    self.states[name] = state

  def rows(self) -> list[tuple[str, ...]]:
    out = []
    for trial in self.trials:
      tail = self.tails[trial.name]
      tail.poll()
      state = self.states[trial.name]
      status = read_status(trial.logdir)
      if state == 'submitted':  # queued in Ray, or running: the worker says which
        state = status.get('state', 'pending') if status.get('state') in (
            'running', 'retrying') else 'pending'
      step = tail.step if state not in ('done', 'skipped') else max(
          tail.step, checkpoint_step(trial.logdir))
      out.append((trial.name, state, str(status.get('starts', 0)),
                  f'{step}/{self.totals.get(trial.name, 0)}',
                  _fmt(tail.latest.get('EpRet'), 2), _fmt(tail.latest.get('EpCost'), 1),
                  _fmt(tail.latest.get('sps'), 1) if state == 'running' else '-'))
    return out

  def table(self):
    from rich.table import Table
    rows = self.rows()
    done = sum(r[1] in ('done', 'skipped') for r in rows)
    table = Table(title=f'sweep: {done}/{len(rows)} trials done', title_justify='left')
    for i, column in enumerate(self.COLUMNS):
      table.add_column(column, justify='left' if i < 2 else 'right', no_wrap=True)
    style = {'running': 'cyan', 'done': 'green', 'skipped': 'green', 'failed': 'red',
             'retrying': 'yellow'}
    for row in rows:
      table.add_row(*row, style=style.get(row[1]))
    return table

  def text(self) -> str:
    """The table as plain text (logs, non-terminal output)."""
    rows = [self.COLUMNS] + self.rows()
    widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
