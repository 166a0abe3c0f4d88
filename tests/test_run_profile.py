"""benchmarks/run_profile.py: the parts of a real tiny run add up to its wall time."""
import importlib
import importlib.util
import pathlib
import time

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / 'run_profile.py'
_spec = importlib.util.spec_from_file_location('run_profile', _PATH)
run_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_profile)


def test_exclusive_times_by_hand():
  prof = run_profile.Profile()
  inner = prof.wrap(lambda: time.sleep(0.05), 'inner')
  outer = prof.wrap(lambda: (time.sleep(0.05), inner()), 'outer')
  evaluation = prof.wrap(lambda: inner(), 'evaluation')   # encloses: inner is its own
  outer()
  evaluation()
  assert prof.calls == {'outer': 1, 'inner': 1, 'evaluation': 1}
  assert 0.045 < prof.seconds['outer'] < 0.08 and 0.045 < prof.seconds['inner'] < 0.08
  assert 0.045 < prof.seconds['evaluation'] < 0.08
  rows = {r['part']: r for r in prof.table(total=0.2)}
  assert abs(sum(r['seconds'] for r in rows.values()) - 0.2) < 1e-9
  assert rows['other']['seconds'] > 0


def test_profile_of_a_tiny_run(tmp_path, monkeypatch):
  import safedreamer.envs.parallel as parallel
  for module, cls, method, _ in run_profile.METHODS:   # restored after the test
    owner = getattr(importlib.import_module(module), cls)
    if method in vars(owner):
      monkeypatch.setattr(owner, method, vars(owner)[method])
  for module, name, _ in run_profile.FUNCTIONS:
    monkeypatch.setattr(importlib.import_module(module), name,
                        getattr(importlib.import_module(module), name))
  monkeypatch.setattr(parallel._Local, 'send', parallel._Local.send)
  result = run_profile.main(['--task', 'toy/hazard', '--configs', 'bsrp_lag', 'tiny', '--steps',
                             '1000', '--set', 'run.eval_every', '500', '--logdir', str(tmp_path)])
  parts = {r['part']: r for r in result['parts']}
  for part in ('update', 'policy', 'policy (random prefill)', 'env step', 'env reset',
               'replay add', 'replay sample', 'evaluation', 'logging', 'checkpoint', 'other'):
    assert part in parts, sorted(parts)
  assert parts['update']['calls'] == result['updates']
  assert abs(sum(r['seconds'] for r in parts.values()) - result['wall_seconds']) < 1e-6
  assert all(r['seconds'] >= 0 for r in parts.values())
  assert (tmp_path / 'profile.json').exists()


