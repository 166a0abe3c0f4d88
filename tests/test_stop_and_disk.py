"""One process per log folder; a clean stop on SIGTERM; a full disk loses nothing."""
import errno
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from safedreamer import cli
from safedreamer.config.load import load_config
from safedreamer.replay import chunkfile
from safedreamer.replay.replay import Replay
from safedreamer.run import lock as lock_mod
from safedreamer.run.checkpoint import Checkpointer
from safedreamer.run.logger import Logger, read_metrics
from safedreamer.run.train import DiskFullError, train

CLI = [sys.executable, '-m', 'safedreamer', 'train']
TINY = ['--configs', 'random', 'tiny', '--task', 'toy/hazard', '--run.progress', 'false']


def _checkpoints(logdir):
  folder = pathlib.Path(logdir) / 'checkpoints'
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _check_rows(logdir, upto=None):
  """Rows ordered by step, log rows unique; none past `upto`."""
  rows = read_metrics(pathlib.Path(logdir) / 'metrics.jsonl')
  steps = [r['step'] for r in rows]
  assert steps == sorted(steps)
  logs = [r['step'] for r in rows if 'episode/CostRate' in r]
  assert len(logs) == len(set(logs))
  if upto is not None:
    assert not steps or steps[-1] <= upto
  return rows


def test_a_held_logdir_is_refused_and_untouched(tmp_path, capsys):
  logdir = tmp_path / 'run'
  held = lock_mod.hold(logdir)
  before = sorted(os.listdir(logdir))
  try:
    code = cli.main(['train', *TINY, '--logdir', str(logdir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f'process {os.getpid()}' in err, err
    assert sorted(os.listdir(logdir)) == before
    with pytest.raises(lock_mod.LogdirBusy, match=str(os.getpid())):
      train(load_config(['random', 'tiny'], {'task': 'toy/hazard'}), logdir)
  finally:
    held.release()
  lock_mod.hold(logdir).release()  # free again once released


def test_a_killed_holder_leaves_no_lock(tmp_path):
  code = ('import sys, time; from safedreamer.run.lock import hold; hold(sys.argv[1]); '
          'print("held", flush=True); time.sleep(60)')
  proc = subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], stdout=subprocess.PIPE)
  assert proc.stdout.readline().strip() == b'held'
  with pytest.raises(lock_mod.LogdirBusy, match=str(proc.pid)):
    lock_mod.check_free(tmp_path)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  lock_mod.hold(tmp_path).release()


@pytest.mark.parametrize('method', [
    'random', pytest.param('bsrp_lag', marks=pytest.mark.slow)])
def test_sigterm_stops_cleanly_and_resumes_where_it_stopped(tmp_path, method):
  """SIGTERM a real run between two checkpoints: exit 143, one line, a checkpoint at
  the step where it stopped; the re-run resumes there with no lost or doubled rows."""
  logdir = tmp_path / 'run'
  tiny = [method if t == 'random' else t for t in TINY]
  cmd = CLI + tiny + ['--logdir', str(logdir), '--run.ckpt_every', '3000',
                      '--run.log_every', '100']
  proc = subprocess.Popen(cmd + ['--run.steps', '1000000'], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  start = time.time()
  while not _checkpoints(logdir):
    assert proc.poll() is None and time.time() - start < 600, proc.stderr.read()
    time.sleep(0.02)
  time.sleep(0.1)   # past the first checkpoint (~1000 steps), most likely before the next
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 143, err
  stopped = int(re.search(r'stopped by SIGTERM at step (\d+)', err).group(1))
  assert stopped > 3000 and stopped in _checkpoints(logdir), (stopped, _checkpoints(logdir))
  assert len([l for l in err.splitlines() if 'safedreamer:' in l]) == 1, err
  assert 're-run the same command' in err and 'done:' not in out
  rows = _check_rows(logdir, upto=stopped)
  assert rows[-1]['step'] >= stopped - 100  # logs flushed up to the stop
  final = stopped + 500
  done = subprocess.run(cmd + ['--run.steps', str(final)], capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr
  assert f'resumed from step {stopped}' in done.stderr
  rows = _check_rows(logdir)
  logs = [r['step'] for r in rows if 'episode/CostRate' in r]
  assert all(b - a <= 102 for a, b in zip(logs, logs[1:])), logs   # nothing lost
  assert logs[-1] >= final - 100


def _config(**overrides):
  return load_config(['random', 'tiny'], {'task': 'toy/hazard', 'env.action_repeat': 1,
                                          'run.progress': False, 'run.steps': 2000,
                                          **overrides})


def _enospc(*_, **__):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_after(monkeypatch, owner, name, calls):
  """Make owner.name raise ENOSPC from its `calls`-th call on."""
  original, count = getattr(owner, name), [0]
  def wrapped(*args, **kwargs):
    count[0] += 1
    if count[0] >= calls:
      _enospc()
    return original(*args, **kwargs)
  monkeypatch.setattr(owner, name, wrapped)


def _orbax_metadata_write(monkeypatch):
  """ENOSPC inside orbax, after the arrays of a checkpoint are written: the JSON meta
  item of the third checkpoint cannot be written."""
  import orbax.checkpoint as ocp
  handler = ocp.JsonCheckpointHandler
  original, count = handler.save if hasattr(handler, 'save') else None, [0]
  original = getattr(handler, 'async_save', None) or original
  name = 'async_save' if hasattr(handler, 'async_save') else 'save'
  def wrapped(self, *args, **kwargs):
    count[0] += 1
    if count[0] >= 3:
      _enospc()
    return original(self, *args, **kwargs)
  monkeypatch.setattr(handler, name, wrapped)


@pytest.mark.parametrize('site', ['replay', 'metrics', 'checkpoint'])
def test_a_full_disk_stops_the_run_and_loses_nothing(site, tmp_path, monkeypatch, capsys):
  """ENOSPC at each write site: one line, the newest complete checkpoint and its rows
  survive, and the re-run resumes from it to the end with an intact replay."""
  with monkeypatch.context() as patch:
    if site == 'replay':
      _fail_after(patch, chunkfile, 'write', 10)      # ~ step 1200 (chunks of 128)
    elif site == 'metrics':
      _fail_after(patch, Logger, 'flush', 6)
    else:
      _orbax_metadata_write(patch)
    with pytest.raises(DiskFullError, match=r'^no space left on .*; free space and re-run'):
      train(_config(), tmp_path)
  kept = _checkpoints(tmp_path)
  assert kept and kept[-1] < 2000, kept
  last = Checkpointer(tmp_path / 'checkpoints').restore_latest()
  assert last is not None and last[0] == kept[-1]
  offset = last[2]['logger']['offset']
  with open(tmp_path / 'metrics.jsonl', 'rb') as f:
    head = f.read(offset)
  assert head.count(b'\n') > 0 and head.endswith(b'\n')   # its rows are all there
  assert not [p for p in os.listdir(tmp_path / 'replay') if p.endswith('.tmp')]
  # the command line says the same in one line, exit 1
  if site == 'replay':
    with monkeypatch.context() as patch:
      _fail_after(patch, chunkfile, 'write', 1)
      code = cli.main(['train', *TINY, '--logdir', str(tmp_path), '--env.action_repeat', '1',
                       '--run.steps', '2000'])
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith('safedreamer:')]
    assert code == 1 and len(err) == 1 and err[0].startswith('safedreamer: error: no space left'), err
  counters = train(_config(), tmp_path)
  assert counters['step'] >= 2000 and counters['resumes'] >= 1
  rows = _check_rows(tmp_path)
  assert rows[-1]['step'] >= 2000
  replay = Replay(tmp_path / 'replay', capacity=20000, chunk=128)
  replay.load(Checkpointer(tmp_path / 'checkpoints').restore_latest()[2]['replay'])
  assert replay.stats()['steps'] >= 2000 - 128


def test_a_second_signal_stops_at_once():
  from safedreamer.run.signals import StopRequest, exit_status
  before = signal.getsignal(signal.SIGINT)   # SIG_IGN in a background job, for one
  stop = StopRequest().install()
  try:
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.signum == signal.SIGTERM          # the first only asks
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)                               # (the handler runs here)
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGINT) is before   # the handlers are given back
  assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143
