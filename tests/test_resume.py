"""A real `safedreamer train` process killed with SIGKILL resumes from its last
checkpoint with consistent metrics; a crashing environment does not stop a run."""
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from safedreamer.config.load import load_config
from safedreamer.envs.registry import register
from safedreamer.envs.toy import ToyHazard
from safedreamer.run.logger import read_metrics
from safedreamer.run.train import train

CLI = [sys.executable, '-m', 'safedreamer', 'train']


def _checkpoints(logdir: pathlib.Path) -> list[int]:
  folder = logdir / 'checkpoints'
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _command(logdir, steps, *extra):
  return CLI + ['--configs', *extra, 'tiny', '--task', 'toy/hazard', '--logdir', str(logdir),
                '--env.action_repeat', '2', '--run.steps', str(steps), '--run.ckpt_every', '1000',
                '--run.log_every', '300', '--run.progress', 'false']


def _check_resumed_run(logdir, killed_at, final_steps, log_every=300):
  rows = read_metrics(logdir / 'metrics.jsonl')
  steps = [r['step'] for r in rows]
  assert steps == sorted(steps), 'rows written after the checkpoint were not dropped'
  logs = [r['step'] for r in rows if 'episode/CostRate' in r]
  assert len(logs) == len(set(logs)), 'duplicated log rows'
  assert max(np.diff([0] + logs)) <= log_every + 2, 'missing log rows'
  assert logs[-1] >= final_steps - log_every
  episodes = [r for r in rows if 'episode/EpRet' in r]
  assert all(r['episode/EpLen'] == 100 for r in episodes)
  assert any(r['step'] <= killed_at for r in episodes) and any(r['step'] > killed_at for r in episodes)
  final = [r for r in rows if 'replay/steps' in r][-1]
  assert final['run/agent_steps'] >= final['step'] // 2  # action repeat 2
  assert final['replay/steps'] > 0


def _kill_after_checkpoint(logdir, command, min_step, timeout=240):
  proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  start = time.time()
  try:
    while not any(s >= min_step for s in _checkpoints(logdir)):
      assert proc.poll() is None, proc.stdout.read().decode()
      assert time.time() - start < timeout
      time.sleep(0.02)
    time.sleep(0.3)  # let it run on past the checkpoint, then kill it hard
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  return max(_checkpoints(logdir))


def test_sigkill_then_resume_random_agent(tmp_path):
  logdir = tmp_path / 'run'
  last = _kill_after_checkpoint(logdir, _command(logdir, 10**7, 'random'), 4000)
  out = subprocess.run(_command(logdir, last + 4000, 'random'), capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr
  assert re.search(rf'resumed from step {last}\b', out.stderr), out.stderr
  _check_resumed_run(logdir, last, last + 4000)


@pytest.mark.slow
def test_sigkill_then_resume_learning_agent(tmp_path):
  logdir = tmp_path / 'run'
  last = _kill_after_checkpoint(logdir, _command(logdir, 10**7, 'bsrp_lag'), 2000, timeout=600)
  out = subprocess.run(_command(logdir, last + 2000, 'bsrp_lag'), capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr
  assert f'resumed from step {last}' in out.stderr
  _check_resumed_run(logdir, last, last + 2000)


class _Crashy(ToyHazard):
  """Raises on its 130th step (mid-episode), then behaves."""
  calls = 0

  def step(self, action):
    _Crashy.calls += 1
    if _Crashy.calls == 130:
      raise RuntimeError('simulator exploded')
    return super().step(action)


def test_crashing_env_is_restarted_and_its_episode_dropped(tmp_path):
  register('crashy/toy', lambda seed: _Crashy(seed=seed))
  config = load_config(['random', 'tiny'], {'task': 'crashy/toy', 'env.action_repeat': 1,
                                            'run.steps': 1000, 'run.progress': False})
  counters = train(config, tmp_path)
  rows = read_metrics(tmp_path / 'metrics.jsonl')
  assert counters['step'] >= 1000
  assert rows[-1]['run/env_crashes'] == 1 and rows[-1]['run/dropped_episodes'] == 1
  episodes = [r for r in rows if 'episode/EpLen' in r]
  assert all(r['episode/EpLen'] == 100 for r in episodes)  # the cut one was never logged
  assert len(episodes) == 9  # 1000 steps = 10 episodes of 100, one of them dropped
  # the counts are the run's, not the process's: a resumed run carries them on
  train(config.model_copy(update={'run': config.run.model_copy(update={'steps': 1400})}),
        tmp_path)
  rows = read_metrics(tmp_path / 'metrics.jsonl')
  assert rows[-1]['step'] >= 1400
  assert rows[-1]['run/env_crashes'] == 1 and rows[-1]['run/dropped_episodes'] == 1
