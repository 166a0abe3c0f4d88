"""Optional Weights & Biases logging (run/wandb_log.py), checked in W&B's offline files.

The offline tests need the `wandb` package (requirements/wandb.txt, which `make
install` installs) and skip without it; WANDB_MODE=offline keeps them off the network.
"""
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from safedreamer import cli
from safedreamer.config.load import load_config, to_yaml
from safedreamer.run import wandb_log
from safedreamer.run.logger import Logger

BASE = ['--configs', 'random', 'tiny', '--task', 'toy/hazard', '--run.progress', 'false']


def test_without_the_option_nothing_changes(tmp_path):
  (tmp_path / 'config.yaml').write_text(to_yaml(load_config(['random', 'tiny'])))
  logger = Logger(tmp_path, tensorboard=False)
  logger.write(10, {'train/x': 1.0})
  logger.close()
  assert wandb_log.open_run(tmp_path) is None
  assert sorted(p.name for p in tmp_path.iterdir()) == ['config.yaml', 'metrics.jsonl',
                                                        'progress.csv']


def test_the_option_without_the_package_stops_before_writing(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, 'wandb', None)  # `import wandb` raises ImportError
  logdir = tmp_path / 'run'
  code = cli.main(['train', *BASE, '--logdir', str(logdir), '--logger.wandb', 'proj'])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and 'needs the wandb package' in err[0]
  assert not logdir.exists()


@pytest.mark.parametrize('key, value', [('logger.wandb', 'a/b'), ('logger.tags', 'ok,,x'),
                                        ('logger.entity', 'x' * 129)])
def test_bad_wandb_names_are_refused(key, value):
  with pytest.raises(Exception, match=key.replace('.', r'\.')):
    load_config(['tiny'], {key: value})


def _records(path: pathlib.Path) -> list:
  from wandb.proto import wandb_internal_pb2 as pb
  from wandb.sdk.internal import datastore
  for _ in range(100):  # W&B's writer may still be closing the file
    store = datastore.DataStore()
    store.open_for_scan(str(path))
    records = []
    while (data := store.scan_data()) is not None:
      record = pb.Record()
      record.ParseFromString(data)
      records.append(record)
    if any(r.WhichOneof('record_type') == 'exit' for r in records):
      return records
    time.sleep(0.1)
  raise AssertionError(f'{path} has no exit record')


def _cli(*args, env):
  out = subprocess.run([sys.executable, '-m', 'safedreamer', *args], capture_output=True,
                       text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr
  return out


def test_offline_run_logs_the_metrics_and_a_resume_keeps_one_id(tmp_path):
  pytest.importorskip('wandb')
  env = dict(os.environ, WANDB_MODE='offline', WANDB_SILENT='true', WANDB_DIR=str(tmp_path),
             WANDB_CONFIG_DIR=str(tmp_path / 'wandb_config'),
             XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
  logdir = tmp_path / 'run'
  opts = ['--logdir', str(logdir), '--logger.wandb', 'proj', '--logger.group', 'g',
          '--logger.tags', 'a,b']
  _cli('train', *BASE, *opts, '--run.steps', '1000', env=env)
  _cli('train', *BASE, *opts, '--run.steps', '2000', env=env)          # resumes
  _cli('eval', '--logdir', str(logdir), '--episodes', '1', '--video', env=env)

  run_id = (logdir / 'wandb_id').read_text().strip()
  runs = sorted((logdir / 'wandb').glob('offline-run-*'))
  assert len(runs) == 3                        # train, resumed train, eval
  logged, ids = set(), set()
  for folder in runs:
    for record in _records(folder / f'run-{run_id}.wandb'):
      kind = record.WhichOneof('record_type')
      if kind == 'run':
        ids.add(record.run.run_id)
        assert record.run.project == 'proj' and record.run.run_group == 'g'
        assert list(record.run.tags) == ['a', 'b']
      elif kind == 'history':
        logged |= {item.key or item.nested_key[0] for item in record.history.item}
  assert ids == {run_id}
  rows = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
  jsonl_keys = set().union(*rows)
  assert {'step', 'episode/EpRet', 'episode/EpCost'} <= jsonl_keys
  assert jsonl_keys <= logged, jsonl_keys - logged
  assert max(r['step'] for r in rows) == 2000
  assert {'evaluate/EpRet', 'evaluate/EpCost', 'evaluate/videos'} <= logged
  assert list((runs[-1] / 'files' / 'media' / 'videos').rglob('*.mp4'))
