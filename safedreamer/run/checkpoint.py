"""Crash-safe checkpoints with orbax-checkpoint.

A checkpoint is a folder `LOGDIR/checkpoints/<step>/` holding the agent's state (a
pytree of arrays: parameters, optimiser states, Lagrangian/PID/planner states, RNG
key) and a JSON `meta` dict (step counters, replay position, logger position, the
driver's RNG state). Orbax writes into a temporary folder and renames it when
complete, so a crash mid-write leaves the previous checkpoint as the latest one.
A checkpoint that cannot be read is skipped in favour of the one before it.
"""
from __future__ import annotations

import logging
import os
import pathlib
import warnings
from typing import Any

import numpy as np


class CheckpointError(RuntimeError):
  """A missing or unreadable checkpoint (one-line message)."""


def _quiet_orbax():
  logging.getLogger('absl').setLevel(logging.ERROR)
  # absl's log() calls logging.basicConfig() when the root logger has no handler (orbax
  # logs at import), and that handler printed every line of ours a second time
  if not logging.root.handlers:
    logging.root.addHandler(logging.NullHandler())
  warnings.filterwarnings('ignore', module='orbax')


def _wrap(tree: Any) -> dict:
  # Orbax refuses an empty tree (the random agent has no state).
  return {'state': tree, '_': np.zeros((), np.int8)}


class Checkpointer:

  def __init__(self, directory: str | os.PathLike, keep: int = 2):
    _quiet_orbax()
    import orbax.checkpoint as ocp
    self._ocp = ocp
    self.dir = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, create=True)
    self._manager = ocp.CheckpointManager(self.dir, options=options)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, agent_state: Any, meta: dict) -> None:
    ocp = self._ocp
    args = ocp.args.Composite(
        agent=ocp.args.StandardSave(_wrap(agent_state)), meta=ocp.args.JsonSave(meta))
    self._manager.save(int(step), args=args, force=True)
    self._manager.wait_until_finished()

  def _restore(self, step: int) -> tuple[Any, dict]:
    ocp = self._ocp
    args = ocp.args.Composite(agent=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    out = self._manager.restore(step, args=args)
    return out['agent']['state'], dict(out['meta'])

  def restore_latest(self) -> tuple[int, Any, dict] | None:
    """(step, agent_state, meta) of the newest readable checkpoint, or None if there
    is none. Unreadable ones are reported and skipped, never deleted."""
    for step in reversed(self.steps()):
      try:
        state, meta = self._restore(step)
        return step, state, meta
      except Exception as e:  # noqa: BLE001 -- any read failure means "corrupt"
        logging.getLogger('safedreamer').warning(
            'checkpoint %s is unreadable (%s); trying the previous one',
            self.dir / str(step), type(e).__name__)
    return None


def load_checkpoint(path: str | os.PathLike) -> tuple[int, Any, dict]:
  """Read one checkpoint for evaluation: PATH is a run's logdir, its checkpoints
  folder, or one checkpoint folder. Raises CheckpointError with a one-line message."""
  path = pathlib.Path(path)
  if (path / 'checkpoints').is_dir():
    path = path / 'checkpoints'
  if not path.exists():
    raise CheckpointError(f'no checkpoint at {path}')
  if path.name.isdigit() and path.is_dir():
    manager_dir, step = path.parent, int(path.name)
  else:
    manager_dir, step = path, None
  try:
    ckpt = Checkpointer(manager_dir)
  except Exception as e:  # noqa: BLE001
    raise CheckpointError(f'cannot open checkpoints at {manager_dir}: {e}') from None
  if step is None:
    found = ckpt.restore_latest()
    if found is None:
      raise CheckpointError(f'no readable checkpoint in {manager_dir}')
    return found
  try:
    state, meta = ckpt._restore(step)
  except Exception as e:  # noqa: BLE001
    raise CheckpointError(f'checkpoint {path} is unreadable: {type(e).__name__}') from None
  return step, state, meta
