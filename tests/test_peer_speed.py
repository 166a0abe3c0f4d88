"""benchmarks/peer_speed.sh: both programs run, alternating, and the ratio is theirs.
The peer is a stand-in that reports a fixed 100 s per update (DreamerV3 1.5.0 itself
needs its own Python 3.10 venv: ../shared/peers/install_dreamerv3.sh)."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_missing_peer_is_one_line_and_exit_2(tmp_path):
  out = subprocess.run(['bash', 'benchmarks/peer_speed.sh', str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True)
  assert out.returncode == 2
  assert len(out.stderr.strip().splitlines()) == 1 and 'install_dreamerv3.sh' in out.stderr


@pytest.mark.slow
def test_ratio_of_the_two_medians(tmp_path):
  fake = tmp_path / 'fake_dv3.py'
  fake.write_text('import json\nprint("RESULT", json.dumps({"update_median_s": 100.0, '
                  '"first_call_s": 120.0}))\n')
  env = {'DV3_PYTHON': sys.executable, 'DV3_BENCH': str(fake), 'OURS_SIZE': 'tiny',
         'PATH': '/usr/bin:/bin',
         'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'}
  out = subprocess.run(['bash', 'benchmarks/peer_speed.sh', str(tmp_path), '2'], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.count('done, load') == 2
  ours = float(re.search(r'\| ours tiny, dreamerv3 \| [^|]+\| ([\d.e-]+) \|', out.stdout).group(1))
  ratio = float(re.search(r'ratio \(DreamerV3 1.5.0 / ours, medians\): ([\d.]+)x', out.stdout)
                .group(1))
  assert ratio == pytest.approx(100.0 / ours, rel=0.01)
