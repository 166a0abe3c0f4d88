"""Optional Weights & Biases logging: the rows of metrics.jsonl, and `eval`'s videos.

A run logs to W&B when its config.yaml sets `logger.wandb` (the project). The W&B
run's id is kept in LOGDIR/wandb_id, so a resumed run (and a later `safedreamer
eval` of it) continues the same W&B run. W&B's own files go to LOGDIR/wandb/; with
`logger.offline` (or WANDB_MODE=offline) they stay there until `wandb sync
LOGDIR/wandb/offline-run-*`. Without the option nothing here imports `wandb`;
`check(config)` tells the CLI when the option is set but the package is missing.

Every row is logged with its `step` (simulator steps) as the x axis of every
metric (W&B's own `_step` only counts calls). After a resume the rows between the
checkpoint and the interruption are logged again: W&B cannot drop them.
"""
from __future__ import annotations

import logging
import os
import pathlib
import secrets
import string
from typing import Any, Mapping

from safedreamer.config.load import from_yaml

log = logging.getLogger('safedreamer')
ID_FILE = 'wandb_id'
INSTALL_HINT = "pip install -e '.[wandb]' (or .venv/bin/pip install -r requirements/wandb.txt --no-deps)"


def wanted(config) -> bool:
  return bool(config.logger.wandb)


def check(config) -> str | None:
  """None if the config's W&B settings can work here, else a one-line reason."""
  if not wanted(config):
    return None
  try:
    import wandb  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return f'--logger.wandb needs the wandb package: {INSTALL_HINT}'
  return None


def run_id(logdir: pathlib.Path) -> str:
  """The W&B run id of the run in `logdir`, made and kept on first use."""
  path = logdir / ID_FILE
  if path.exists():
    return path.read_text().strip()
  new = ''.join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
  tmp = path.with_suffix('.tmp')
  tmp.write_text(new + '\n')
  os.replace(tmp, path)
  return new


def _config_of(logdir: pathlib.Path):
  path = logdir / 'config.yaml'
  if not path.exists():
    return None
  return from_yaml(path.read_text(encoding='utf-8'))


def open_run(logdir: str | os.PathLike, config=None) -> 'WandbRun | None':
  """The W&B run of `logdir` (its config.yaml unless `config` is given), or None when
  the config does not ask for W&B. A W&B failure (no package, no network) is logged
  as a warning and gives None: training goes on without W&B."""
  logdir = pathlib.Path(logdir)
  config = config if config is not None else _config_of(logdir)
  if config is None or not wanted(config):
    return None
  try:
    return WandbRun(logdir, config)
  except Exception as e:  # noqa: BLE001 -- W&B must never stop a run
    log.warning('W&B logging off: %s', str(e).splitlines()[0] if str(e) else type(e).__name__)
    return None


class WandbRun:
  """One W&B run for one run folder: `log(row)`, `log_eval(result)`, `finish()`."""

  def __init__(self, logdir: pathlib.Path, config):
    import wandb  # pylint: disable=import-outside-toplevel
    opts = config.logger
    tags = [t.strip() for t in opts.tags.split(',') if t.strip()]
    self.run = wandb.init(
        project=opts.wandb, entity=opts.entity or None, group=opts.group or None,
        tags=tags or None, dir=str(logdir), id=run_id(logdir), resume='allow',
        name='/'.join(logdir.resolve().parts[-3:]), config=config.model_dump(),
        mode='offline' if opts.offline else None)
    self.run.define_metric('step')
    self.run.define_metric('*', step_metric='step')

  def log(self, row: Mapping[str, Any]) -> None:
    """One metrics.jsonl row ({'step': ..., name: scalar, ...})."""
    self.run.log(dict(row))

  def log_eval(self, result: Mapping[str, Any]) -> None:
    """What `safedreamer eval` measured, at the checkpoint's step, with its videos."""
    import wandb  # pylint: disable=import-outside-toplevel
    row: dict[str, Any] = {'step': int(result['checkpoint_step'])}
    for key in ('EpRet', 'EpCost', 'CostRate', 'EpLen'):
      if isinstance(result.get(key), Mapping):
        row[f'evaluate/{key}'] = result[key]['mean']
        row[f'evaluate/{key}_std'] = result[key]['std']
    videos = [v['path'] for v in result.get('videos') or [] if os.path.exists(v['path'])]
    if videos:
      row['evaluate/videos'] = [wandb.Video(path, format='mp4') for path in videos]
    self.run.log(row)

  def finish(self) -> None:
    self.run.finish()


def log_eval(result: Mapping[str, Any]) -> None:
  """Send an `evaluate` result to its run's W&B run, if the run logs to W&B."""
  wb = open_run(result['logdir'])
  if wb is None:
    return
  try:
    wb.log_eval(result)
  finally:
    wb.finish()
