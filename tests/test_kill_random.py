"""Kill-at-random (benchmarks/kill_random.py): a `tiny` run SIGKILLed at random
moments and resumed finishes its budget with unique, ordered metric rows and an
intact replay. Longer runs: `.venv/bin/python benchmarks/kill_random.py --trials 20`."""
import importlib.util
import pathlib
import random

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / 'benchmarks' / 'kill_random.py'


def _script():
  spec = importlib.util.spec_from_file_location('kill_random', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
@pytest.mark.parametrize('method,steps,max_kill_s', [('random', 30000, 6.0),
                                                     ('bsrp_lag', 2000, 40.0)])
def test_killed_at_random_and_resumed(tmp_path, method, steps, max_kill_s):
  kill_random = _script()
  rng = random.Random(7)
  for i in range(2):
    ok, summary = kill_random.trial(tmp_path / f'trial{i}', method, steps, 2, max_kill_s, rng)
    assert ok, summary


def test_the_check_finds_lost_rows(tmp_path):
  """The trial's check is not vacuous: a run whose log rows have a gap fails it."""
  kill_random = _script()
  (tmp_path / 'metrics.jsonl').write_text(
      '{"step": 100, "episode/CostRate": 0}\n{"step": 400, "episode/CostRate": 0}\n')
  problems = kill_random.check(tmp_path, 400)
  assert any('missing log rows' in p for p in problems), problems
