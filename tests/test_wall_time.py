"""benchmarks/wall_time.py: one training run on two commits, side by side."""
import json
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / 'benchmarks'))
import wall_time  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_summary_and_table_by_hand():
  rounds = [{'old_s': 100.0, 'new_s': 50.0, 'cores': (0, 1)},
            {'old_s': 90.0, 'new_s': 60.0, 'cores': (1, 0)},
            {'old_s': 120.0, 'new_s': 40.0, 'cores': (0, 1)}]
  s = wall_time.summary(rounds)
  assert s == {'old_s': 100.0, 'new_s': 50.0, 'ratio': 2.0}   # ratios 2, 1.5, 3
  text = wall_time.table(rounds, 'aaa', 'bbb')
  assert '| 2 | 90 | 60 | 1.500 | 1, 0 |' in text
  assert text.splitlines()[-1] == '| median | 100 | 50 | 2.000 | |'


def test_each_commit_runs_its_own_code(tmp_path):
  """The exported trees are what each side imports: a marker file in one tree only."""
  sha, src = wall_time.export('HEAD', tmp_path, ROOT)
  assert (src / 'safedreamer' / '__init__.py').exists()
  (src / 'safedreamer' / 'marker.py').write_text('WHERE = __file__\n')
  env = wall_time.environ(src, tmp_path / 'cache')
  out = subprocess.run([sys.executable, '-c', 'from safedreamer import marker; print(marker.WHERE)'],
                       cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
  assert out.stdout.strip().startswith(str(src))


def test_two_short_runs_side_by_side(tmp_path):
  out = tmp_path / 'wt'
  subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'wall_time.py'), 'HEAD', 'HEAD',
                  '--steps', '300', '--rounds', '2', '--configs', 'random', 'tiny',
                  '--task', 'toy/hazard', '--out', str(out)], check=True, timeout=600)
  result = json.loads((out / 'wall_time.json').read_text())
  assert [r['cores'] for r in result['rounds']] == [[0, 1], [1, 0]]
  assert all(r['old_s'] > 0 and r['new_s'] > 0 for r in result['rounds'])
  for i in (1, 2):
    for side in ('old', 'new'):
      assert (out / f'round{i}-{side}' / 'run' / 'metrics.jsonl').exists()
