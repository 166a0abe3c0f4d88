"""Running a sweep's trials on Ray: one Ray task per trial, each running an ordinary
`safedreamer train` process in the trial's folder.

Why tasks and not Ray Tune: a trial here is a whole `train` run that already
owns its folder, checkpoints, metrics and resume-by-rerun. Ray's task API gives
what is missing -- placement by resources (fractional GPUs included), retries of
tasks whose worker died, cluster state -- without a second layer of trial
folders, checkpoints and experiment state that Tune would keep beside ours (and
whose restore would have to agree with our resume). Nothing here searches
hyperparameters, which is what Tune adds on top.

Why a subprocess inside the task: JAX reads XLA_FLAGS, NPROC and the GPU memory
fraction once, when it starts, so each trial needs its own process started with
them; and a trial killed by a signal is just a process that died, retried by Ray
and resumed by `train` from its newest checkpoint. The train process is tied to
its Ray worker (PR_SET_PDEATHSIG) so that a killed worker never leaves a trial
running behind the retry, and it holds a lock on its folder so that two
processes never train one folder.
"""
from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from safedreamer.sweep import watch
from safedreamer.sweep.spec import Resources, Sweep, Trial, trial_env

log = logging.getLogger('safedreamer')
PR_SET_PDEATHSIG = 1
LOCK_FILE = '.sweep.lock'
LOG_FILE = 'train.log'


class TrialKilled(RuntimeError):
  """The train process died from a signal (SIGKILL, the OOM killer) or stopped on one
  (SIGTERM: train checkpoints and exits 128+N): Ray retries it."""


class TrialFailed(RuntimeError):
  """The train process exited with an error: not retried (it would fail again)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
  parent = os.getppid()
  ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
  if os.getppid() != parent:  # the worker died before prctl took effect
    os._exit(1)


def run_trial(train_args: list[str], resources: Resources, logdir: str) -> dict:
  """One attempt at a trial (the body of its Ray task, in a Ray worker)."""
  logdir = pathlib.Path(logdir)
  logdir.mkdir(parents=True, exist_ok=True)
  with open(logdir / LOCK_FILE, 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # waits out any train process still in this folder
    starts = int(watch.read_status(logdir).get('starts', 0)) + 1
    watch.write_status(logdir, state='running', starts=starts, host=socket.gethostname(),
                       pid=os.getpid(), returncode=None)
    env = os.environ | trial_env(resources, os.environ)
    with open(logdir / LOG_FILE, 'ab') as out:
      out.write(f'--- start {starts} on {socket.gethostname()} at {time.ctime()}\n'.encode())
      out.flush()
      proc = subprocess.Popen([sys.executable, '-m', 'safedreamer', 'train', *train_args],
                              env=env, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                              pass_fds=(lock.fileno(),))
      rc = proc.wait()
  if rc == 0:
    watch.write_status(logdir, state='done', returncode=0)
    return {'starts': starts, 'host': socket.gethostname()}
  if rc < 0 or rc > 128:  # killed, or stopped by a signal after a checkpoint (train: 128+N)
    watch.write_status(logdir, state='retrying', returncode=rc)
    raise TrialKilled(f'{logdir}: train killed by signal {-rc}')
  watch.write_status(logdir, state='failed', returncode=rc)
  tail = (logdir / LOG_FILE).read_text(errors='replace').strip().splitlines()[-1:]
  raise TrialFailed(f'{logdir}: train exited with status {rc}: {" ".join(tail)}')


class ClusterError(RuntimeError):
  """The Ray cluster at --address could not be joined (one line, exit 1)."""


def init_ray(address: str | None):
  """Join the cluster at `address` ('auto' or HOST:PORT), or start an embedded one
  sized to this machine."""
  token = pathlib.Path.home() / '.ray' / 'auth_token'
  if address and 'RAY_AUTH_MODE' not in os.environ and (
      token.exists() or 'RAY_AUTH_TOKEN' in os.environ):
    # `ray start` enables token authentication when a token exists, but a driver that
    # joins sends the token only with RAY_AUTH_MODE=token (read when Ray is imported).
    os.environ['RAY_AUTH_MODE'] = 'token'
  import ray
  quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
  if not address:
    ray.init(include_dashboard=False, **quiet)
    return ray
  try:
    ray.init(address=address, **quiet)
  except (ConnectionError, RuntimeError) as e:
    raise ClusterError(f'cannot join the Ray cluster at {address}: {_error_line(e)} '
                       '(is `ray start` running there?)') from None
  return ray


def _error_line(error: BaseException) -> str:
  cause = getattr(error, 'cause', None)
  text = str(cause if cause is not None else error).strip().splitlines()
  return (text[-1] if text else type(error).__name__)[:300]


def run(sweep: Sweep, trials: list[Trial], totals: dict[str, int], poll: float = 1.0,
        live: bool | None = None) -> dict[str, str]:
  """Run every unfinished trial on Ray; returns {trial name: 'done' | 'skipped' |
  'failed: why'}. Trials whose newest checkpoint has reached run.steps are skipped;
  the others start (or resume) as Ray places them."""
  board = watch.Board(trials, totals)
  todo = []
  for trial in trials:
    if watch.checkpoint_step(trial.logdir) >= totals[trial.name]:
      board.set(trial.name, 'skipped')
    else:
      todo.append(trial)
  results = {t.name: 'skipped' for t in trials if t not in todo}
  if todo:
    started = time.time()
    ray = init_ray(sweep.address)
    have = ray.cluster_resources()
    log.info('ray cluster up in %.1f s: %s', time.time() - started,
             {k: v for k, v in have.items() if k in ('CPU', 'GPU')})
    try:
      for name, need in (('CPU', sweep.resources.cpus), ('GPU', sweep.resources.gpus)):
        if need > have.get(name, 0):  # Ray would wait for them forever
          raise ClusterError(f'each trial asks for {need:g} {name}s but the Ray cluster has '
                             f'{have.get(name, 0):g}')
      results |= _schedule(ray, sweep, todo, board, poll, live)
    finally:
      ray.shutdown()
  return results


def _schedule(ray, sweep, todo, board, poll, live) -> dict[str, str]:
  task = ray.remote(run_trial)
  options = dict(num_cpus=sweep.resources.cpus, num_gpus=sweep.resources.gpus,
                 max_retries=sweep.max_retries, retry_exceptions=[TrialKilled])
  refs = {}
  for trial in todo:
    trial.logdir.mkdir(parents=True, exist_ok=True)
    watch.write_status(trial.logdir, state='queued')
    ref = task.options(name=trial.name, **options).remote(
        trial.train_args(sweep.resources), sweep.resources, str(trial.logdir))
    refs[ref] = trial
    board.set(trial.name, 'submitted')
  results: dict[str, str] = {}
  live = sys.stderr.isatty() if live is None else live
  shown = {}
  display = None
  if live:
    from rich.console import Console
    from rich.live import Live
    display = Live(board.table(), console=Console(stderr=True), refresh_per_second=1)
    display.start()
  try:
    while refs:
      ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=poll)
      for ref in ready:
        trial = refs.pop(ref)
        try:
          ray.get(ref)
          board.set(trial.name, 'done')
          results[trial.name] = 'done'
        except (ray.exceptions.RayError, TrialFailed, TrialKilled) as e:
          board.set(trial.name, 'failed')
          results[trial.name] = f'failed: {_error_line(e)}'
      if display is not None:
        display.update(board.table())
      else:
        for row in board.rows():  # one line per change of state
          if shown.get(row[0]) != row[1]:
            shown[row[0]] = row[1]
            log.info('%s: %s (step %s)', row[0], row[1], row[3])
  finally:
    if display is not None:
      display.update(board.table())
      display.stop()
  return results


def write_reports(out: pathlib.Path) -> list[pathlib.Path]:
  """DIR/table.md, table.csv, curves.png, curves.pdf, through `table` and `plot`."""
  from safedreamer.report.plot import plot_runs
  from safedreamer.report.table import final_table, write_table
  paths = write_table(final_table([out]), out)
  return paths + plot_runs([out], out)
