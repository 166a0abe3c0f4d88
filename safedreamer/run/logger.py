"""Metrics to disk: metrics.jsonl (the record), TensorBoard events, progress.csv.

`metrics.jsonl` is the source of truth: one JSON object per line, each with `step`
(simulator steps). `progress.csv` is regenerated from it (wide, one row per line,
readable by pandas). Resuming truncates the jsonl file back to the byte offset saved
in the checkpoint, so rows written after the checkpoint are dropped rather than
duplicated, and TensorBoard is told to purge events past the checkpoint's step.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Mapping

import numpy as np


def _scalar(value: Any) -> float | int | None:
  """A JSON-able scalar, or None for values that are not scalars."""
  if isinstance(value, (bool, np.bool_)):
    return int(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  try:
    arr = np.asarray(value)
  except Exception:  # noqa: BLE001
    return None
  if arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
    return None
  out = float(arr.reshape(()))
  return out if math.isfinite(out) else None


class Logger:

  def __init__(self, logdir: str | os.PathLike, position: Mapping | None = None,
               tensorboard: bool = True):
    self.dir = pathlib.Path(logdir)
    self.dir.mkdir(parents=True, exist_ok=True)
    self.jsonl = self.dir / 'metrics.jsonl'
    self.csv = self.dir / 'progress.csv'
    if position is not None:
      self._truncate(int(position['offset']))
    elif self.jsonl.exists():
      # A run whose first checkpoint was never written: start the record over.
      self._truncate(0)
    self._file = open(self.jsonl, 'a', encoding='utf-8')
    self._rows_since_csv = 0
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter
      purge = int(position['step']) + 1 if position is not None else None
      self._tb = SummaryWriter(str(self.dir / 'tb'), purge_step=purge, flush_secs=30)
    from safedreamer.run import wandb_log  # W&B too, if LOGDIR/config.yaml asks for it
    self._wandb = wandb_log.open_run(self.dir)

  @property
  def tensorboard(self):
    """The TensorBoard SummaryWriter (None when disabled), for images and videos."""
    return self._tb

  def _truncate(self, offset: int) -> None:
    if not self.jsonl.exists():
      return
    with open(self.jsonl, 'r+b') as f:
      f.truncate(offset)

  def write(self, step: int, metrics: Mapping[str, Any]) -> dict:
    """Append one row {step, **metrics}; non-scalar or non-finite values are skipped."""
    row: dict[str, Any] = {'step': int(step)}
    for key, value in metrics.items():
      value = _scalar(value)
      if value is not None:
        row[key] = value
    self._file.write(json.dumps(row) + '\n')
    if self._tb is not None:
      for key, value in row.items():
        if key != 'step':
          self._tb.add_scalar(key, value, int(step))
    if self._wandb is not None:
      self._wandb.log(row)
    self._rows_since_csv += 1
    return row

  def flush(self) -> None:
    self._file.flush()
    os.fsync(self._file.fileno())
    if self._tb is not None:
      self._tb.flush()
    if self._rows_since_csv:
      self.write_csv()

  def write_csv(self) -> None:
    import pandas as pd
    rows = read_metrics(self.jsonl)
    tmp = self.csv.with_suffix('.csv.tmp')
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, self.csv)
    self._rows_since_csv = 0

  def position(self, step: int) -> dict:
    """Where the record stands, for the checkpoint (call after flush)."""
    self._file.flush()
    return {'offset': self._file.tell(), 'step': int(step)}

  def close(self) -> None:
    self.flush()
    self._file.close()
    if self._tb is not None:
      self._tb.close()
    if self._wandb is not None:
      self._wandb.finish()


def read_metrics(path: str | os.PathLike) -> list[dict]:
  """All rows of a metrics.jsonl file (a torn last line is ignored)."""
  rows = []
  path = pathlib.Path(path)
  if not path.exists():
    return rows
  for line in path.read_text(encoding='utf-8').splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows
