"""Checkpoints: round trip, keep-N, an unfinished or corrupt newest one is skipped."""
import shutil

import numpy as np
import pytest

from safedreamer.run.checkpoint import CheckpointError, Checkpointer, load_checkpoint


def _state(x):
  return {'params': {'w': np.full((2, 3), x, np.float32)}, 'lam': np.float32(x), 'empty': {}}


def test_round_trip_and_keep(tmp_path):
  ckpt = Checkpointer(tmp_path / 'checkpoints', keep=2)
  for step in (10, 20, 30):
    ckpt.save(step, _state(step), {'counters': {'step': step}, 'replay': {'n': [1, 2]}})
  assert ckpt.steps() == [20, 30]
  step, state, meta = Checkpointer(tmp_path / 'checkpoints').restore_latest()
  assert step == 30 and meta['counters']['step'] == 30 and meta['replay'] == {'n': [1, 2]}
  np.testing.assert_array_equal(state['params']['w'], np.full((2, 3), 30, np.float32))
  assert float(state['lam']) == 30.0


def test_corrupt_latest_falls_back_to_previous(tmp_path):
  ckpt = Checkpointer(tmp_path, keep=3)
  ckpt.save(1, _state(1), {'step': 1})
  ckpt.save(2, _state(2), {'step': 2})
  # Destroy the newest checkpoint's array data (as a crash or a bad disk might).
  for path in (tmp_path / '2').rglob('*'):
    if path.is_file() and 'meta' not in str(path):
      path.write_bytes(b'garbage')
  # An orbax temporary folder left by a crash mid-write.
  (tmp_path / '3.orbax-checkpoint-tmp-123').mkdir()
  step, state, meta = Checkpointer(tmp_path, keep=3).restore_latest()
  assert step == 1 and meta == {'step': 1}
  assert (tmp_path / '2').exists()  # never deleted


def test_load_checkpoint_errors(tmp_path):
  with pytest.raises(CheckpointError, match='no checkpoint'):
    load_checkpoint(tmp_path / 'missing')
  ckpt = Checkpointer(tmp_path / 'checkpoints')
  ckpt.save(5, _state(5), {'step': 5})
  assert load_checkpoint(tmp_path)[0] == 5
  assert load_checkpoint(tmp_path / 'checkpoints' / '5')[0] == 5
  shutil.rmtree(tmp_path / 'checkpoints' / '5')
  with pytest.raises(CheckpointError, match='no readable checkpoint'):
    load_checkpoint(tmp_path)


def test_orbax_leaves_the_root_logger_without_a_printing_handler(tmp_path):
  """absl (imported by orbax) used to call logging.basicConfig(), so every line of the
  'safedreamer' logger printed twice after a resume."""
  import subprocess
  import sys
  code = ('import logging; from safedreamer.run.checkpoint import Checkpointer; '
          f'Checkpointer({str(tmp_path)!r}).steps(); '
          'import orbax.checkpoint; '
          'print([type(h).__name__ for h in logging.root.handlers])')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert 'StreamHandler' not in out.stdout, out.stdout
