"""Nothing lost: a sweep's trial whose process is SIGKILLed is retried by Ray and
resumes from its checkpoint; a sweep whose driver is SIGKILLed, re-run with the same
command, skips finished trials and resumes the others. Every trial ends with the full
step count and every metric row exactly once."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from safedreamer.sweep.watch import checkpoint_step, read_status
from test_sweep import check_trial

STEPS, LOG_EVERY = 60_000, 1000


def _command(out):
  return [sys.executable, '-m', 'safedreamer', 'sweep', '--tasks', 'toy/hazard',
          '--methods', 'random tiny', '--seeds', '0-1', '--out', str(out),
          '--set', f'run.steps={STEPS}', 'run.ckpt_every=5000', f'run.log_every={LOG_EVERY}']


def _logdirs(out) -> list[pathlib.Path]:
  return [out / 'toy_hazard' / 'random-tiny' / f'seed{s}' for s in (0, 1)]


def _wait(condition, proc, timeout=240):
  start = time.time()
  while not condition():
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() - start < timeout
    time.sleep(0.05)


def _start(out):
  # Its own session, so that whatever Ray leaves behind can be cleaned up by group.
  return subprocess.Popen(_command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True)


def _cleanup(proc):
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except ProcessLookupError:
    pass


@pytest.mark.slow
def test_killed_trial_processes_are_retried_and_resume(tmp_path):
  out = tmp_path / 'sweep'
  worker_dir, train_dir = _logdirs(out)
  proc = _start(out)
  try:
    _wait(lambda: all(checkpoint_step(d) >= 10_000 for d in (worker_dir, train_dir)), proc)
    time.sleep(0.3)  # past the checkpoint: rows after it must be dropped, not duplicated
    os.kill(read_status(worker_dir)['pid'], signal.SIGKILL)  # the Ray worker running seed0
    os.kill(int((train_dir / '.lock').read_text().strip()), signal.SIGKILL)  # seed1's train
    stdout, stderr = proc.communicate(timeout=400)
  finally:
    _cleanup(proc)
  assert proc.returncode == 0, stderr[-3000:]
  assert '2/2 trials complete' in stdout
  for logdir in (worker_dir, train_dir):
    check_trial(logdir, STEPS, LOG_EVERY)
    status = read_status(logdir)
    assert status['state'] == 'done' and status['starts'] == 2, status
    assert 'resumed from step' in (logdir / 'train.log').read_text()


@pytest.mark.slow
def test_sweep_rerun_after_driver_sigkill_resumes_and_skips(tmp_path):
  out = tmp_path / 'sweep'
  logdirs = _logdirs(out)
  first = _start(out)
  try:
    _wait(lambda: all(checkpoint_step(d) >= 10_000 for d in logdirs), first)
    time.sleep(0.3)
    first.send_signal(signal.SIGKILL)  # the driver only
    first.wait()
    again = subprocess.run(_command(out), capture_output=True, text=True, timeout=400)
  finally:
    _cleanup(first)
  assert again.returncode == 0, again.stderr[-3000:]
  for logdir in logdirs:
    check_trial(logdir, STEPS, LOG_EVERY)
    assert read_status(logdir)['starts'] == 2
    assert 'resumed from step' in (logdir / 'train.log').read_text()
  third = subprocess.run(_command(out), capture_output=True, text=True, timeout=120)
  assert third.returncode == 0 and 'ray cluster up' not in third.stderr, third.stderr[-3000:]
  assert [json.loads((d / '.sweep.json').read_text())['starts'] for d in logdirs] == [2, 2]
