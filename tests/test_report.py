"""Curves, the ranking table and open-loop reports on synthetic data."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from safedreamer.report import openloop, plot, runs, table

TASKS = ('toy/hazard', 'safetygym/SafetyPointGoal1-v0')
# method -> (final return, final cost, step at which the cost drops to its final value)
METHODS = {'bsrp_lag-small': (10.0, 1.0, 6000), 'osrp-small': (12.0, 1.5, 8000),
           'dreamerv3-small': (20.0, 30.0, None)}
LIMIT = 2.0


def _write_run(folder, task, method, seed, rows, config_method=None):
  folder.mkdir(parents=True)
  config = {'task': task, 'method': config_method or method.split('-')[0], 'seed': seed,
            'cost_limit': LIMIT}
  (folder / 'config.yaml').write_text(yaml.safe_dump(config))
  (folder / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def _rows(ret, cost, feasible_at, seed, final_ret=None):
  """Eval rows every 1000 (+7 per seed: seeds log at different steps) to 10000."""
  rows = []
  steps = list(range(1000 + 7 * seed, 10001, 1000))
  for i, step in enumerate(steps):
    last = i == len(steps) - 1
    c = cost if feasible_at is None or step >= feasible_at else 10.0
    r = (final_ret if last and final_ret is not None else ret) + seed  # seeds differ by 1
    rows.append({'step': step, 'eval/EpRet': r, 'eval/EpCost': c, 'eval/EpLen': 1000})
    rows.append({'step': step, 'episode/CostRate': 0.001 * c * (seed + 1)})
  return rows


@pytest.fixture
def synthetic(tmp_path):
  """2 tasks x 3 methods x 2 seeds in the CLI's layout runs/<task>/<presets>/seed<N>."""
  root = tmp_path / 'runs'
  for task in TASKS:
    for method, (ret, cost, at) in METHODS.items():
      for seed in (0, 1):
        folder = root / task.replace('/', '_') / method / f'seed{seed}'
        _write_run(folder, task, method, seed, _rows(ret, cost, at, seed))
  return root


def test_find_and_group_runs(synthetic):
  found = runs.find_runs([synthetic])
  assert len(found) == 12
  groups = runs.group_runs(runs.load_runs([synthetic]))
  assert set(groups) == {(t, m) for t in TASKS for m in METHODS}
  assert all([r.seed for r in g] == [0, 1] for g in groups.values())
  # A run folder passed directly, twice, counts once.
  one = found[0]
  assert runs.find_runs([one, one, synthetic]) == found
  with pytest.raises(FileNotFoundError):
    runs.find_runs([synthetic / 'nothing-here'])


def test_run_name_outside_the_cli_layout(tmp_path):
  _write_run(tmp_path / 'my-experiment', 'toy/hazard', 'x', 3, _rows(1, 0, None, 0),
             config_method='osrp')
  run = runs.load_run(tmp_path / 'my-experiment')
  assert (run.name, run.method, run.seed) == ('osrp', 'osrp', 3)


def test_common_grid_interpolates_seeds_logged_at_different_steps():
  a = (np.array([0.0, 10, 20, 30]), np.array([0.0, 10, 20, 30]))       # y = x
  b = (np.array([5.0, 15, 25, 35]), np.array([7.0, 17, 27, 37]))       # y = x + 2
  grid, values = runs.common_grid([a, b])
  assert grid.tolist() == [5, 10, 15, 20, 25, 30]  # every logged step both seeds cover
  assert runs.common_grid([a, b], points=3)[0].tolist() == [5, 15, 30]  # thinned evenly
  np.testing.assert_allclose(values[0], grid)
  np.testing.assert_allclose(values[1], grid + 2)
  fake = [runs.Run(None, 't', 'm', 'm', s, 1.0, [{'step': x, 'k': y} for x, y in zip(*c)], None)
          for s, c in enumerate((a, b))]
  grid, mean, low, high = plot.aggregate(fake, 'k', 'std', points=11)
  np.testing.assert_allclose(mean, grid + 1)
  np.testing.assert_allclose(high - low, 2.0)
  grid, mean, low, high = plot.aggregate(fake, 'k', 'minmax', points=11)
  np.testing.assert_allclose(low, grid)
  assert plot.aggregate(fake, 'missing') is None


def test_table_orders_feasible_methods_first(synthetic):
  df = table.final_table([synthetic])
  assert len(df) == 6 and list(df.columns) == table.COLUMNS
  for task in TASKS:
    rows = df[df.task == task]
    # dreamerv3 has the highest return but violates the limit: ranked last.
    assert list(rows.method) == ['osrp-small', 'bsrp_lag-small', 'dreamerv3-small']
    assert list(rows['rank']) == [1, 2, 3]
    assert list(rows.feasible) == [True, True, False]
    osrp = rows.iloc[0]
    assert osrp.seeds == 2
    assert osrp.EpRet_mean == pytest.approx(12.5) and osrp.EpRet_std == pytest.approx(0.5)
    assert osrp.EpCost_mean == pytest.approx(1.5) and osrp.EpCost_std == 0
    assert osrp.CostRate_mean == pytest.approx(0.001 * 1.5 * 1.5)
    assert osrp.cost_limit == LIMIT and osrp.step == pytest.approx(9503.5, abs=1)  # 10000, 9007
    assert osrp.feasible_from == 8000  # seeds: 8000 and 8007, mean 1.53 at 8000
    assert math.isinf(rows.iloc[2].feasible_from)


def test_table_ties_broken_by_first_feasible_step(tmp_path):
  for name, at in (('late', 9000), ('early', 3000)):
    for seed in (0, 1):
      _write_run(tmp_path / 'toy' / name / f'seed{seed}', 'toy/hazard', 'osrp', seed,
                 _rows(5.0, 0.0, at, seed))
  df = table.final_table([tmp_path])
  assert list(df.method) == ['early', 'late']


def test_table_last_k_and_eval_json(tmp_path):
  folder = tmp_path / 'toy' / 'm' / 'seed0'
  _write_run(folder, 'toy/hazard', 'osrp', 0, _rows(4.0, 0.0, None, 0, final_ret=10.0))
  assert table.final_table([tmp_path]).EpRet_mean[0] == 10.0
  assert table.final_table([tmp_path], last_k=2).EpRet_mean[0] == 7.0
  (folder / 'eval').mkdir()
  (folder / 'eval' / 'eval.json').write_text(json.dumps(
      {'EpRet': {'mean': 3.0}, 'EpCost': {'mean': 5.0}}))
  df = table.final_table([tmp_path])
  assert (df.EpRet_mean[0], df.EpCost_mean[0], df.source[0]) == (3.0, 5.0, 'eval.json')
  assert not df.feasible[0]
  assert table.final_table([tmp_path], use_eval_json=False).EpRet_mean[0] == 10.0


def test_write_table_markdown_and_csv(synthetic, tmp_path):
  df = table.final_table([synthetic])
  md, csv = table.write_table(df, tmp_path / 'out' / 'final.md')
  assert md.name == 'final.md' and csv.name == 'final.csv'
  text = md.read_text()
  assert text.count('\n') == 2 + 6 and '12.50 ± 0.50' in text
  back = pd.read_csv(csv)
  assert list(back.method) == list(df.method)
  paths = table.write_table(df, tmp_path / 'folder')
  assert [p.name for p in paths] == ['table.md', 'table.csv']


def test_plot_runs_writes_png_and_pdf(synthetic, tmp_path):
  paths = plot.plot_runs([synthetic], tmp_path / 'plots')
  assert [p.name for p in paths] == ['curves.png', 'curves.pdf']
  assert paths[0].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert paths[1].read_bytes()[:5] == b'%PDF-'
  paths = plot.plot_runs([synthetic / 'toy_hazard'], tmp_path / 'one.pdf', spread='minmax')
  assert [p.name for p in paths] == ['one.png', 'one.pdf'] and all(p.stat().st_size for p in paths)


# -- open loop -----------------------------------------------------------------------------

def _sequences(n=2, t=70, d=5, seed=0):
  rng = np.random.default_rng(seed)
  return {
      'vector': rng.normal(size=(n, t, d)).astype(np.float32),
      'reward': rng.normal(size=(n, t)).astype(np.float32),
      'cost': (rng.random((n, t)) < 0.2).astype(np.float32),
      'image': rng.integers(0, 256, (n, t, 16, 16, 3), dtype=np.uint8),
  }


def _perturb(truth, scale, seed=1):
  rng = np.random.default_rng(seed)
  out = {}
  for key, value in truth.items():
    if value.dtype == np.uint8:
      noisy = value.astype(np.float32) + scale * 255 * rng.normal(size=value.shape)
      out[key] = np.clip(noisy, 0, 255).astype(np.uint8)
    else:
      out[key] = value + scale * rng.normal(size=value.shape).astype(np.float32)
  return out


def test_openloop_error_is_lower_for_closer_predictions():
  truth = _sequences()
  near, far = openloop.openloop_error(truth, _perturb(truth, 0.05)), openloop.openloop_error(
      truth, _perturb(truth, 0.5))
  assert set(near) == {'vector', 'reward', 'cost', 'image'}
  assert all(near[k] < far[k] for k in near)
  assert openloop.openloop_error(truth, truth) == {k: 0.0 for k in truth}
  # Only the open-loop part counts: wrong context frames cost nothing.
  pred = {k: v.copy() for k, v in truth.items()}
  pred['vector'][:, :openloop.CONTEXT] += 100
  assert openloop.openloop_error(truth, pred)['vector'] == 0.0
  with pytest.raises(ValueError):
    openloop.openloop_error(truth, {'vector': truth['vector'][:, :60]})
  with pytest.raises(ValueError):
    openloop.openloop_error({'x': np.zeros((1, 25))}, {'x': np.zeros((1, 25))})


def test_split_report_reads_nested_and_flat_forms():
  truth, pred = _sequences(), _perturb(_sequences(), 0.1)
  t, p, c = openloop.split_report({'truth': truth, 'prediction': pred})
  assert t.keys() == p.keys() == truth.keys() and c == 25
  flat = {f'truth/{k}': v for k, v in truth.items()} | {f'prediction/{k}': v for k, v in pred.items()}
  t, p, c = openloop.split_report(flat | {'context': np.int32(20)})
  assert t.keys() == truth.keys() and c == 20
  assert openloop.split_report({}) == ({}, {}, 25)


@pytest.mark.filterwarnings("ignore:os.fork")
def test_open_loop_report_files_and_tensorboard(tmp_path):
  from tensorboardX import SummaryWriter
  truth = _sequences(n=4)
  writer = SummaryWriter(str(tmp_path / 'tb'))
  paths = openloop.open_loop_report(truth, _perturb(truth, 0.1), tmp_path / 'reports', 1234,
                                    tb_writer=writer)
  writer.close()
  names = sorted(p.name for p in paths)
  assert names == sorted(['openloop_00001234_image.png', 'openloop_00001234_image.mp4',
                          'openloop_00001234_seq0.png', 'openloop_00001234_seq1.png',
                          'openloop_00001234_seq2.png', 'openloop_00001234.json'])
  assert all(p.exists() and p.stat().st_size for p in paths)
  import imageio.v3 as iio
  frames = iio.imread(tmp_path / 'reports' / 'openloop_00001234_image.mp4')
  assert frames.shape[0] == 70  # 25 context + 45 open-loop steps
  grid = iio.imread(tmp_path / 'reports' / 'openloop_00001234_image.png')
  assert grid.shape[0] == 3 * 3 * (16 + 3) + 3 * 6  # 3 sequences x (truth, pred, error)
  summary = json.loads((tmp_path / 'reports' / 'openloop_00001234.json').read_text())
  assert summary['shapes']['image'] == [4, 70, 16, 16, 3] and summary['context'] == 25
  assert list((tmp_path / 'tb').iterdir())
