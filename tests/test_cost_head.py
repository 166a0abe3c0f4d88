"""benchmarks/cost_head.py: the cost head's calibration table, by hand."""
import hashlib
import importlib.util
import pathlib

import numpy as np
import pytest

from safedreamer.replay.replay import Replay

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / 'cost_head.py'
_spec = importlib.util.spec_from_file_location('cost_head', _PATH)
cost_head = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cost_head)


def test_auc_counts_pairs_and_halves_ties():
  # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 0.35 beats one, 0.8 both -> 3/4
  assert cost_head.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
  # a tie between a positive and a negative counts one half: (1 + 0.5) / 2
  assert cost_head.auc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)
  assert cost_head.auc([0.3, 0.1], [0, 1]) == 0.0
  assert np.isnan(cost_head.auc([0.3, 0.1], [0, 0]))


def test_cost_table_splits_context_and_steps_ahead():
  context = 25
  true = np.zeros((2, 64))
  pred = np.zeros((2, 64))
  true[0, 3], pred[0, 3] = 4.0, 1.0            # context: a hazard step, predicted 1
  pred[1, 10] = 0.6                             # context: a false alarm
  true[0, 26], pred[0, 26] = 2.0, 0.2           # 2 ahead: a hazard step, predicted 0.2
  true[1, 40], pred[1, 40] = 4.0, 3.0           # 16 ahead
  rows = {r['part']: r for r in cost_head.cost_table(true, pred, context)}
  ctx = rows['context']
  assert (ctx['n_pos'], ctx['n_neg']) == (1, 49)
  assert ctx['pred_pos'] == 1.0 and ctx['true_pos'] == 4.0
  assert ctx['pred_neg'] == pytest.approx(0.6 / 49)
  assert ctx['precision'] == 0.5 and ctx['recall'] == 1.0   # flagged: the hazard, the alarm
  # the hazard (1.0) outranks all 49 others, the alarm included
  assert ctx['auc'] == 1.0
  near = rows['ahead 1-5']
  assert (near['n_pos'], near['n_neg']) == (1, 9)           # columns 25..29 of 2 windows
  assert near['pred_pos'] == pytest.approx(0.2) and near['recall'] == 0.0
  assert np.isnan(near['precision'])                        # nothing flagged
  assert rows['ahead 6-15']['n_pos'] == 0 and np.isnan(rows['ahead 6-15']['auc'])
  far = rows['ahead 16-39']
  assert (far['n_pos'], far['n_neg']) == (1, 47) and far['recall'] == 1.0


def test_windows_keep_episode_starts_out_of_the_open_loop_part():
  n = 300
  data = {'is_first': np.zeros(n, bool), 'cost': np.arange(n, dtype=np.float32)}
  data['is_first'][[0, 150]] = True
  batch = cost_head.windows(data, 1000, context=25, seed=0)
  starts = batch['cost'][:, 0].astype(int)
  assert len(starts) == n - 64 + 1 - 39       # starts 87..125 would see step 150 open-loop
  assert not ((starts > 150 - 64) & (starts <= 150 - 25)).any()
  assert (batch['cost'] == starts[:, None] + np.arange(64)).all()


def _digest(folder: pathlib.Path) -> dict:
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_read_newest_returns_the_last_steps_in_order_and_writes_nothing(tmp_path):
  replay = Replay(str(tmp_path), capacity=10_000, chunk=16)
  for i in range(70):
    replay.add({'is_first': i % 25 == 0, 'cost': np.float32(i), 'vector': np.full(3, i, np.float32)})
  replay.save()
  before = _digest(tmp_path)
  data = cost_head.read_newest(tmp_path, 40)
  assert data['cost'].tolist() == list(range(30, 70))
  assert (data['vector'][:, 1] == np.arange(30, 70)).all()
  assert data['is_first'].tolist() == [i % 25 == 0 for i in range(30, 70)]
  assert _digest(tmp_path) == before
  with pytest.raises(FileNotFoundError):
    cost_head.read_newest(tmp_path / 'missing', 10)


@pytest.mark.slow
def test_script_on_a_tiny_trained_run_reports_and_leaves_the_run_alone(tmp_path):
  import json
  import subprocess
  import sys
  from safedreamer.config.load import load_config, to_yaml
  from safedreamer.run.train import train
  logdir = tmp_path / 'run'
  config = load_config(['bsrp_lag', 'tiny'], {
      'task': 'toy/hazard', 'logdir': str(logdir), 'run.steps': 600, 'run.ckpt_every': 600,
      'run.progress': False, 'env.action_repeat': 1})
  logdir.mkdir()
  (logdir / 'config.yaml').write_text(to_yaml(config))
  train(config, logdir)
  before = _digest(logdir / 'replay')
  out = tmp_path / 'table.json'
  proc = subprocess.run([sys.executable, str(_PATH), str(logdir), '--windows', '8',
                         '--recent', '400', '--json', str(out)], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  table = json.loads(out.read_text())
  assert table['step'] == 600
  assert [r['part'] for r in table['rows']] == ['context', 'ahead 1-5', 'ahead 6-15', 'ahead 16-39']
  assert sum(r['n_pos'] + r['n_neg'] for r in table['rows']) == 8 * 64
  assert _digest(logdir / 'replay') == before
  bad = subprocess.run([sys.executable, str(_PATH), str(tmp_path / 'nothing')],
                       capture_output=True, text=True)
  assert bad.returncode != 0 and bad.stderr.strip().startswith('cost_head:')


def test_script_refuses_a_run_without_a_world_model(tmp_path):
  import subprocess
  import sys
  from safedreamer.config.load import load_config, to_yaml
  config = load_config(['random', 'tiny'], {'task': 'toy/hazard', 'logdir': str(tmp_path)})
  (tmp_path / 'config.yaml').write_text(to_yaml(config))
  proc = subprocess.run([sys.executable, str(_PATH), str(tmp_path)], capture_output=True,
                        text=True)
  assert proc.returncode != 0
  assert proc.stderr.strip() == 'cost_head: method random has no world model'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['config.yaml']


def test_coords_counter_counts_hazards_times_action_repeat():
  from safedreamer.config.load import load_config
  config = load_config(['bsrp_lag', 'tiny', 'toy'], {'env.obs': 'coords', 'env.action_repeat': 2})
  count = cost_head.coords_counter(config)
  vec = np.zeros((3, 8), np.float32)
  vec[:, 2:4] = [[0.3, 0.2], [0.6, 0.0], [0.0, -0.45]]   # toy hazard radius 0.5
  np.testing.assert_array_equal(count(vec), [2, 0, 2])
