"""benchmarks/wm_fit.py: a world model fitted offline to a run's replay."""
import hashlib
import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from safedreamer.replay.replay import Replay

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / 'wm_fit.py'
_spec = importlib.util.spec_from_file_location('wm_fit', _PATH)
wm_fit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wm_fit)


def test_train_windows_are_consecutive_steps_from_anywhere():
  data = {'cost': np.arange(100, dtype=np.float32), 'is_first': np.zeros(100, bool)}
  batch = wm_fit.train_windows(data, 500, 16, np.random.default_rng(0))
  assert batch['cost'].shape == (500, 16)
  starts = batch['cost'][:, 0]
  assert (batch['cost'] == starts[:, None] + np.arange(16)).all()
  assert starts.min() == 0 and starts.max() == 100 - 16   # every start can be drawn


def _digest(folder: pathlib.Path) -> dict:
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_fit_learns_a_cost_that_the_observation_shows(tmp_path):
  """Cost 2 wherever the observation's first entry exceeds 1.5 (~7% of steps): a
  tiny model fitted for 400 updates ranks held-out costly steps above safe ones
  where it sees them (posterior context AUC > 0.9; a fresh head is at ~0.5)."""
  from safedreamer.config.load import load_config, to_yaml
  config = load_config(['bsrp_lag', 'tiny'], {'task': 'toy/hazard', 'logdir': str(tmp_path)})
  (tmp_path / 'config.yaml').write_text(to_yaml(config))
  rng = np.random.default_rng(0)
  replay = Replay(str(tmp_path / 'replay'), capacity=10_000, chunk=256)
  for i in range(3000):
    vec = rng.normal(size=4).astype(np.float32)
    replay.add({'vector': vec, 'action': rng.uniform(-1, 1, 2).astype(np.float32),
                'reward': np.float32(0.0), 'cost': np.float32(2.0 * (vec[0] > 1.5)),
                'is_first': i % 500 == 0, 'is_last': i % 500 == 499, 'is_terminal': False})
  replay.save()
  before = _digest(tmp_path / 'replay')
  out = tmp_path / 'fit.json'
  proc = subprocess.run([sys.executable, str(_PATH), str(tmp_path), '--configs', 'bsrp_lag',
                         'tiny', '--set', 'model.lr', '1e-3', '--updates', '400',
                         '--eval_every', '400', '--heldout', '1000', '--json', str(out)],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  rows = {r['part']: r for r in json.loads(out.read_text())['record'][-1]['rows']}
  assert rows['context']['auc'] > 0.9, rows['context']
  assert _digest(tmp_path / 'replay') == before
  bad = subprocess.run([sys.executable, str(_PATH), str(tmp_path), '--heldout', '5000'],
                       capture_output=True, text=True)
  assert bad.returncode != 0 and bad.stderr.strip().startswith('wm_fit:')
