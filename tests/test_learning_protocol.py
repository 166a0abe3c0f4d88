"""benchmarks/learning.py's multi-seed protocol: the table by hand, and (slow) the whole
protocol end to end on toy/hazard in child processes."""
import importlib.util
import json
import pathlib
import sys

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / 'learning.py'
_spec = importlib.util.spec_from_file_location('learning', _PATH)
learning = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(learning)

OPTIMUM = {'safe': {'EpRet': 12.0, 'EpCost': 0.0}, 'unconstrained': {'EpRet': 15.0, 'EpCost': 50.0}}


def test_protocol_summary_by_hand():
  rows = [{'seed': 0, 'step': 100, 'episodes': 40, 'EpRet': 9.0, 'EpCost': 1.0, 'CostRate': 0.1},
          {'seed': 1, 'step': 100, 'episodes': 40, 'EpRet': 12.0, 'EpCost': 3.0, 'CostRate': 0.3}]
  out = learning.summarize_protocol(rows, cost_limit=2.0, optimum=OPTIMUM)
  assert [r['meets_limit'] for r in out['seeds']] == [True, False]
  assert not out['all_meet_limit']
  assert out['across_seeds']['EpRet'] == {'mean': 10.5, 'std': 1.5}
  assert out['across_seeds']['EpCost'] == {'mean': 2.0, 'std': 1.0}
  assert out['across_seeds']['frac_safe_optimum']['mean'] == pytest.approx(0.875)
  table = learning.protocol_markdown(out, 'toy')
  assert '| 0 | 100 | 40 | 9 | 1 | 0.1 | 0.75 | under the limit |' in table
  assert '| 1 | 100 | 40 | 12 | 3 | 0.3 | 1 | over the limit |' in table
  assert '| mean ± std | | | 10.5 ± 1.5 | 2 ± 1 |' in table
  at_limit = learning.summarize_protocol([dict(rows[0], EpCost=2.0)], 2.0, None)
  assert at_limit['all_meet_limit'] and 'frac_safe_optimum' not in at_limit['across_seeds']


def test_seeds_side_by_side_are_pinned_each_to_its_own_core(tmp_path):
  import os
  cpus = sorted(os.sched_getaffinity(0))
  if len(cpus) > 1:
    slots = learning.core_slots(len(cpus))
    assert sorted(slots.get() for _ in cpus) == cpus
  assert learning.core_slots(len(cpus) + 1) is None       # more jobs than cores: unpinned
  assert learning.core_slots(1) is None                   # one seed: every core
  log = tmp_path / 'child.log'
  learning._run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'],
                log, core=cpus[-1])
  assert log.read_text().strip() == str([cpus[-1]])


@pytest.mark.slow
def test_protocol_end_to_end_on_toy(tmp_path):
  out = tmp_path / 'protocol'
  result = learning.main(['toy/hazard', '--configs', 'random', 'tiny', 'toy', '--steps', '300',
                          '--seeds', '0', '1', '--out', str(out), '--final_episodes', '2',
                          '--set', 'run.progress', 'false'])
  assert [r['seed'] for r in result['seeds']] == [0, 1]
  assert all(r['episodes'] == 4 and r['step'] >= 300 for r in result['seeds'])
  saved = json.loads((out / 'protocol.json').read_text())
  assert saved['eval_seeds'] == [1000, 2000] and (out / 'protocol.md').exists()
  for seed in (0, 1):
    evals = [json.loads((out / f'seed{seed}' / f'eval_seed{s}' / 'eval.json').read_text())
             for s in (1000, 2000)]
    assert [e['seed'] for e in evals] == [1000, 2000]
  # re-running finds every run complete and every evaluation written: the same table
  again = learning.main(['toy/hazard', '--configs', 'random', 'tiny', 'toy', '--steps', '300',
                         '--seeds', '0', '1', '--out', str(out), '--final_episodes', '2',
                         '--set', 'run.progress', 'false'])
  assert again['seeds'] == result['seeds']
  # a larger budget extends the runs and evaluates the new final checkpoints
  longer = learning.main(['toy/hazard', '--configs', 'random', 'tiny', 'toy', '--steps', '500',
                          '--seeds', '0', '--out', str(out), '--final_episodes', '2',
                          '--set', 'run.progress', 'false'])
  assert longer['seeds'][0]['step'] >= 500 > result['seeds'][0]['step']


def test_a_stopped_run_is_not_final(tmp_path, monkeypatch):
  """A run stopped by a signal exits with the signal's status, writes no curve, and
  the protocol writes no table, so a partial run is never evaluated as final."""
  import safedreamer.run.train as train_mod
  monkeypatch.setattr(train_mod, 'train', lambda config, logdir: {'stopped': 15})
  with pytest.raises(SystemExit) as stop:
    learning.main(['toy/hazard', '--configs', 'bsrp_lag', 'tiny', '--steps', '100',
                   '--logdir', str(tmp_path / 'run')])
  assert stop.value.code == 143
  assert not (tmp_path / 'run' / 'curve.json').exists()

  def seed_run(args, seed, out, cores=None):
    if seed == 1:
      raise RuntimeError('exited 143')
    return {'seed': seed, 'step': 100, 'episodes': 2, 'EpRet': 1.0, 'EpCost': 0.0,
            'CostRate': 0.0}
  monkeypatch.setattr(learning, 'protocol_seed', seed_run)
  with pytest.raises(SystemExit, match='1 of 2 seeds did not finish; re-run'):
    learning.main(['toy/hazard', '--configs', 'bsrp_lag', 'tiny', '--steps', '100',
                   '--seeds', '0', '1', '--out', str(tmp_path / 'protocol')])
  assert not (tmp_path / 'protocol' / 'protocol.md').exists()
