"""`safedreamer sweep`: the sweep's trials and their settings, validation before
anything starts, and a 2-trial `tiny` sweep on toy/hazard on the embedded Ray cluster."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

from safedreamer.cli import main
from safedreamer.sweep import spec
from safedreamer.sweep.watch import Board, MetricsTail, checkpoint_step
from safedreamer.run.logger import read_metrics

SWEEP = [sys.executable, '-m', 'safedreamer', 'sweep']


def test_parse_seeds():
  assert spec.parse_seeds('0-4') == [0, 1, 2, 3, 4]
  assert spec.parse_seeds(['0', '2', '5']) == [0, 2, 5]
  assert spec.parse_seeds('1,3 3') == [1, 3]
  assert spec.parse_seeds(7) == [7]
  for bad in ('4-1', 'a', '-1', '1-'):
    with pytest.raises(spec.SweepError):
      spec.parse_seeds(bad)


def test_parse_sets_refuses_per_trial_keys():
  assert spec.parse_sets(['run.steps=100', 'cost_limit=0']) == {'run.steps': '100',
                                                                'cost_limit': '0'}
  assert spec.parse_sets({'run.progress': True}) == {'run.progress': 'true'}
  for bad in (['seed=3'], ['logdir=x'], ['run.steps']):
    with pytest.raises(spec.SweepError):
      spec.parse_sets(bad)


def test_trials_folders_and_arguments(tmp_path):
  sweep = spec.build({'tasks': ['toy/hazard', 'safetygym/SafetyPointGoal1-v0'],
                      'methods': ['bsrp_lag small', ['osrp_lag', 'small', 'cpu_planner']],
                      'seeds': '0-1', 'set': ['run.steps=1000'], 'out': str(tmp_path / 's'),
                      'gpus_per_trial': 0.25})
  trials = sweep.trials()
  assert len(trials) == 8
  assert trials[0].logdir == tmp_path / 's' / 'toy_hazard' / 'bsrp_lag-small' / 'seed0'
  assert trials[3].name == 'toy_hazard/osrp_lag-small-cpu_planner/seed1'
  args = trials[3].train_args(sweep.resources)
  assert args[:4] == ['--configs', 'osrp_lag', 'small', 'cpu_planner']
  assert ['--seed', '1'] == args[args.index('--seed'):args.index('--seed') + 2]
  assert args[-2:] == ['--run.steps', '1000']
  assert '--jax.platform' in args  # a GPU share implies the GPU backend


def test_trial_env_threads_and_gpu_share():
  env = spec.trial_env(spec.Resources(cpus=1, gpus=0.25), {'XLA_FLAGS': '--xla_foo=1'})
  assert env['NPROC'] == '1' and env['OMP_NUM_THREADS'] == '1'
  assert env['XLA_FLAGS'] == '--xla_cpu_multi_thread_eigen=false --xla_foo=1'
  assert 0.2 < float(env['XLA_PYTHON_CLIENT_MEM_FRACTION']) < 0.25
  env = spec.trial_env(spec.Resources(cpus=4, gpus=1), {})
  assert env['NPROC'] == '4' and 'XLA_FLAGS' not in env
  assert 'XLA_PYTHON_CLIENT_MEM_FRACTION' not in env  # a whole GPU: JAX's default


@pytest.mark.parametrize('extra, message', [
    (['--methods', 'bsrp_lag tiny', 'bsrp_lag tinyy'], "trial toy_hazard/bsrp_lag-tinyy/seed0: "
     "unknown preset 'tinyy'"),
    (['--methods', 'bsrp_lag tiny', '--set', 'run.stepz=5'], "unknown config key 'run.stepz'"),
    (['--methods', 'bsrp_lag tiny', '--set', 'seed=1'], 'not allowed'),
    (['--methods', 'bsrp_lag tiny', '--seeds', '3-1'], "bad seeds '3-1'"),
    (['--methods', 'bsrp_lag tiny', '--gpus-per-trial', '1.5'], 'whole number'),
    (['--methods', 'bsrp_lag tiny', '--cpus-per-trial', '0'], 'must be > 0'),
])
def test_bad_sweep_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
  out = tmp_path / 'sweep'
  args = ['sweep', '--tasks', 'toy/hazard', '--seeds', '0', '--out', str(out)]
  args += extra
  assert main(args) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not out.exists()


def test_bad_task_and_changed_settings_refused_before_anything_starts(tmp_path, capsys):
  out = tmp_path / 'sweep'
  assert main(['sweep', '--tasks', 'toy/hazardd', '--methods', 'random tiny', '--seeds', '0',
               '--out', str(out)]) == 2
  assert 'toy/hazardd' in capsys.readouterr().err and not out.exists()
  # A trial folder holding a run with other settings: refused as `train` would.
  logdir = out / 'toy_hazard' / 'random-tiny' / 'seed1'
  logdir.mkdir(parents=True)
  (logdir / 'config.yaml').write_text('seed: 1\ntask: toy/hazard\ncost_limit: 7.0\n')
  assert main(['sweep', '--tasks', 'toy/hazard', '--methods', 'random tiny', '--seeds', '0-1',
               '--out', str(out)]) == 2
  err = capsys.readouterr().err
  assert 'holds a run with' in err and 'seed1' in err and len(err.strip().splitlines()) == 1
  assert sorted(p.name for p in out.rglob('*')) == sorted(
      ['toy_hazard', 'random-tiny', 'seed1', 'config.yaml'])


def test_sweep_file_fields_and_command_line_wins(tmp_path):
  path = tmp_path / 'sweep.yaml'
  path.write_text('tasks: [toy/hazard]\nmethods: ["random tiny"]\nseeds: 0-2\n'
                  'set: {run.steps: 500}\nout: x\ncpus-per-trial: 2\n')
  fields = spec.read_file(path) | {'seeds': ['4']}
  sweep = spec.build(fields)
  assert sweep.seeds == [4] and sweep.resources.cpus == 2.0
  assert sweep.overrides == {'run.steps': '500'}
  path.write_text('tasks: [toy/hazard]\nseed: 1\n')
  with pytest.raises(spec.SweepError, match="unknown field 'seed'"):
    spec.read_file(path)


def test_metrics_tail_follows_appends_and_truncation(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  tail = MetricsTail(path)
  tail.poll()
  assert tail.step == 0
  path.write_text('{"step": 100, "episode/EpRet": 1.5, "episode/EpCost": 2}\n{"step": 2')
  tail.poll()
  assert tail.step == 100 and tail.latest == {'EpRet': 1.5, 'EpCost': 2}
  with open(path, 'a') as f:
    f.write('00, "run/sps": 50.0}\n')
  tail.poll()
  assert tail.step == 200 and tail.latest['sps'] == 50.0
  path.write_text('{"step": 100, "episode/EpRet": 0.5}\n')  # a resume truncated it
  tail.poll()
  assert tail.step == 100 and tail.latest == {'EpRet': 0.5}


def check_trial(logdir: pathlib.Path, steps: int, log_every: int, episode_len: int = 100):
  """The run reached `steps`, with every episode row and every log row exactly once."""
  rows = read_metrics(logdir / 'metrics.jsonl')
  episodes = [r['step'] for r in rows if 'episode/EpRet' in r]
  assert episodes == list(range(episode_len, steps + 1, episode_len)), logdir
  logs = [r['step'] for r in rows if 'episode/CostRate' in r]
  assert logs == list(range(log_every, steps + 1, log_every)), logdir
  assert checkpoint_step(logdir) == steps


def test_two_trial_tiny_sweep_on_the_embedded_cluster(tmp_path):
  out = tmp_path / 'sweep'
  command = SWEEP + ['--tasks', 'toy/hazard', '--methods', 'random tiny', '--seeds', '0-1',
                     '--set', 'run.steps=1200', 'run.log_every=400', 'run.eval_every=400',
                     '--out', str(out)]
  start = time.time()
  done = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  for seed in (0, 1):
    logdir = out / 'toy_hazard' / 'random-tiny' / f'seed{seed}'
    check_trial(logdir, 1200, 400)
    assert json.loads((logdir / '.sweep.json').read_text())['state'] == 'done'
  table = (out / 'table.md').read_text()
  assert '| toy/hazard | random-tiny | 2 |' in table, table
  assert (out / 'curves.png').stat().st_size > 10_000
  assert 'ray cluster up in' in done.stderr
  first = time.time() - start
  # The same command again: both trials are finished, so nothing starts (not even Ray).
  again = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'ray cluster up' not in again.stderr and '2/2 trials complete' in again.stdout
  print(f'sweep {first:.1f} s')


def test_board_rows(tmp_path):
  sweep = spec.build({'tasks': 'toy/hazard', 'methods': ['random tiny'], 'seeds': '0',
                      'out': str(tmp_path)})
  trial, = sweep.trials()
  trial.logdir.mkdir(parents=True)
  (trial.logdir / 'metrics.jsonl').write_text(
      '{"step": 100, "episode/EpRet": 1.25, "episode/EpCost": 3}\n'
      '{"step": 200, "run/sps": 42.0}\n')
  board = Board([trial], {trial.name: 1000})
  board.set(trial.name, 'submitted')
  (trial.logdir / '.sweep.json').write_text('{"state": "running", "starts": 2}')
  assert board.rows() == [(trial.name, 'running', '2', '200/1000', '1.25', '3.0', '42.0')]
  assert 'running' in board.text()


@pytest.mark.slow  # another Ray start (~5-20 s)
def test_more_cpus_per_trial_than_the_cluster_has_is_one_line(tmp_path):
  out = tmp_path / 'sweep'
  done = subprocess.run(SWEEP + ['--tasks', 'toy/hazard', '--methods', 'random tiny',
                                 '--seeds', '0', '--cpus-per-trial', '4096', '--out', str(out)],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 1
  assert done.stderr.strip().splitlines()[-1].startswith(
      'safedreamer: error: each trial asks for 4096 CPUs but the Ray cluster has'), done.stderr
  assert not (out / 'toy_hazard' / 'random-tiny' / 'seed0' / 'metrics.jsonl').exists()
