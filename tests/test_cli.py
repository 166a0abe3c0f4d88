"""The command line: help, one-line errors with exit status 2 and nothing written."""
import subprocess
import sys

import pytest

CLI = [sys.executable, '-m', 'safedreamer']


def run(*args, cwd=None):
  return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_presets_and_keys():
  for args in ([ '--help'], ['train', '--help']):
    out = run(*args)
    assert out.returncode == 0
    for word in ('bsrp_lag', 'tiny', 'paper', '--run.steps', '--run.train_ratio', '--cost_limit',
                 '--seed'):
      assert word in out.stdout


@pytest.mark.parametrize('args, message', [
    (['--run.step', '10'], "unknown config key 'run.step'; closest: run.steps"),
    (['--run.steps', 'ten'], "bad value for config key 'run.steps'"),
    (['--configs', 'tinny'], "unknown preset 'tinny'"),
    (['--task', 'toy/nope'], "unknown task 'toy/nope'"),
    (['--task', 'nosuite/X-v0'], "unknown task 'nosuite/X-v0'"),
    (['--run.steps'], "config key 'run.steps' needs a value"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
  logdir = tmp_path / 'run'
  out = run('train', '--logdir', str(logdir), *args, cwd=tmp_path)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], out.stderr
  assert not logdir.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_resume_with_a_different_config_is_refused_and_keeps_the_run(tmp_path):
  logdir = tmp_path / 'run'
  base = ['train', '--configs', 'random', 'tiny', '--task', 'toy/hazard', '--logdir', str(logdir),
          '--run.steps', '1000', '--run.progress', 'false']
  assert run(*base).returncode == 0
  before = (logdir / 'metrics.jsonl').read_bytes()
  out = run(*base, '--seed', '5')
  assert out.returncode == 2 and 'seed=0, not 5' in out.stderr
  assert (logdir / 'metrics.jsonl').read_bytes() == before


def test_env_that_keeps_crashing_stops_with_one_line_and_keeps_the_data(tmp_path):
  (tmp_path / 'broken_envs.py').write_text(
      'from safedreamer.envs import register\n'
      'from safedreamer.envs.toy import ToyHazard\n'
      'class Broken(ToyHazard):\n'
      '  def step(self, action):\n'
      "    raise RuntimeError('simulator exploded')\n"
      "register('broken/toy', lambda seed: Broken(seed=seed))\n")
  import os
  env = dict(os.environ, PYTHONPATH=str(tmp_path), SAFEDREAMER_ENV_MODULES='broken_envs')
  logdir = tmp_path / 'run'
  out = subprocess.run(CLI + ['train', '--configs', 'random', 'tiny', '--task', 'broken/toy',
                              '--logdir', str(logdir), '--env.max_restarts', '3',
                              '--run.progress', 'false'],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith('safedreamer: error:') and 'Traceback' not in out.stderr
  assert (logdir / 'config.yaml').exists()
