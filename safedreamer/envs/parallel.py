"""`EnvBatch`: step N environments together, in this process or in subprocesses.

Steps come back stacked: every key of the step dict holds an [N, ...] array.

Auto-reset: when env i's step is the last of its episode (is_last), the NEXT call to
`step` ignores env i's action and returns env i's reset step (is_first, reward and
cost 0). An env that was never reset is treated the same way, so a driver may call
`step` right away, or `reset()` first (which resets all envs).

Crashes: if an env raises in `step` or `reset` (or its subprocess dies), the batch
recreates it from its factory, returns its fresh reset step (is_first) in place of
the failed one, adds 1 to `crashed[i]` and keeps the one-line error in
`errors[-1]` (also logged as a warning on the 'safedreamer.envs' logger). Once the
total number of crashes exceeds `max_restarts`, `EnvCrashError` is raised instead.

Subprocesses use the 'spawn' start method by default (safe next to JAX's threads);
factories are sent with cloudpickle, so lambdas and closures work.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from safedreamer.envs.base import CostEnv, Step

log = logging.getLogger('safedreamer.envs')


class EnvCrashError(RuntimeError):
  """Environments crashed more often than `max_restarts` allows."""


def stack_steps(steps: Sequence[Step]) -> Step:
  """[{k: v}] * N -> {k: array of N values}."""
  return {k: np.stack([np.asarray(s[k]) for s in steps]) for k in steps[0]}


def _one_line(error: BaseException) -> str:
  """'Type: message (at file.py:LINE in function)' on one line."""
  text = f'{type(error).__name__}: {error}'.replace('\n', ' ')[:300]
  frames = traceback.extract_tb(error.__traceback__)
  if frames:
    last = frames[-1]
    text += f' (at {last.filename.rsplit("/", 1)[-1]}:{last.lineno} in {last.name})'
  return text


class _Local:
  """An env in this process, behind the same interface as `_Remote`."""

  def __init__(self, factory: Callable[[], CostEnv]):
    self.factory = factory
    self.env = factory()

  def send(self, method: str, *args, **kwargs) -> None:
    try:
      self._result = ('ok', getattr(self.env, method)(*args, **kwargs))
    except Exception as error:  # pylint: disable=broad-except
      self._result = ('error', _one_line(error))

  def recv(self):
    return self._result

  def restart(self) -> None:
    try:
      self.env.close()
    except Exception:  # pylint: disable=broad-except
      pass
    self.env = self.factory()

  def close(self) -> None:
    self.env.close()


def _worker(conn, payload: bytes) -> None:
  # a terminal's Ctrl-C reaches the whole process group: the trainer, not its workers,
  # decides when they close (also for a worker restarted after a crash)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  import cloudpickle  # pylint: disable=import-outside-toplevel
  from safedreamer.envs.safety_gym_compat import import_gymnasium  # pylint: disable=import-outside-toplevel
  if b'gymnasium' in payload:  # unpickling would import it: do it without its notices
    import_gymnasium()
  factory = cloudpickle.loads(payload)
  env = None
  try:
    while True:
      method, args, kwargs = conn.recv()
      if method == '_close':
        break
      try:
        if method == '_restart' or env is None:
          if env is not None:
            try:
              env.close()
            except Exception:  # pylint: disable=broad-except
              pass
            env = None
          env = factory()
        result = None if method == '_restart' else getattr(env, method)(*args, **kwargs)
        conn.send(('ok', result))
      except Exception as error:  # pylint: disable=broad-except
        conn.send(('error', _one_line(error)))
  except (EOFError, KeyboardInterrupt, BrokenPipeError):
    pass
  finally:
    if env is not None:
      try:
        env.close()
      except Exception:  # pylint: disable=broad-except
        pass


class _Remote:
  """An env in its own process, spoken to through a pipe."""

  def __init__(self, factory: Callable[[], CostEnv], context: str):
    import cloudpickle  # pylint: disable=import-outside-toplevel
    self.payload = cloudpickle.dumps(factory)
    self.ctx = multiprocessing.get_context(context)
    self._start()

  def _start(self) -> None:
    self._failed = None
    self.conn, child = self.ctx.Pipe()
    self.process = self.ctx.Process(target=_worker, args=(child, self.payload), daemon=True)
    self.process.start()
    child.close()

  def send(self, method: str, *args, **kwargs) -> None:
    try:
      self.conn.send((method, args, kwargs))
      self._failed = None
    except (BrokenPipeError, EOFError, OSError) as error:
      self._failed = f'environment process died ({_one_line(error)})'

  def recv(self):
    if self._failed:
      return ('error', self._failed)
    try:
      return self.conn.recv()
    except (EOFError, ConnectionResetError, OSError):
      code = self.process.exitcode if not self.process.is_alive() else None
      return ('error', f'environment process died (exit code {code})')

  def restart(self) -> None:
    if self.process.is_alive():
      self.send('_restart')
      status, _ = self.recv()
      if status == 'ok':
        return
    self._kill()
    self._start()

  def _kill(self) -> None:
    try:
      self.conn.close()
    except OSError:
      pass
    if self.process.is_alive():
      self.process.terminate()
    self.process.join(timeout=5)

  def close(self) -> None:
    try:
      self.conn.send(('_close', (), {}))
    except (BrokenPipeError, EOFError, OSError):
      pass
    self.process.join(timeout=5)
    self._kill()


class EnvBatch:
  """N CostEnvs stepped together (see the module docstring for the semantics).

  Args:
    factories: one zero-argument callable per env (e.g. `registry.env_factory`).
    parallel: run each env in its own subprocess.
    max_restarts: raise `EnvCrashError` once the total crash count exceeds this.
    context: multiprocessing start method for `parallel` ('spawn' or 'forkserver').
  """

  def __init__(self, factories: Sequence[Callable[[], CostEnv]], parallel: bool = False,
               max_restarts: int = 100, context: str = 'spawn'):
    if not factories:
      raise ValueError('EnvBatch needs at least one environment factory')
    self.parallel = bool(parallel)
    self.max_restarts = int(max_restarts)
    self.crashed = np.zeros(len(factories), np.int64)
    self.errors: list[str] = []
    self._envs = []
    try:
      for factory in factories:
        self._envs.append(_Remote(factory, context) if self.parallel else _Local(factory))
      keys = ('obs_space', 'act_dim', 'episode_length')
      if self.parallel:  # env 0 is built by this first call: a bad factory fails here
        info = [self.call(0, '__getattribute__', k) for k in keys]
      else:
        info = [getattr(self._envs[0].env, k) for k in keys]
    except BaseException:
      self.close()
      raise
    self.obs_space, self.act_dim, self.episode_length = info
    self._needs_reset = np.ones(len(factories), bool)

  def __len__(self) -> int:
    return len(self._envs)

  @property
  def num_crashes(self) -> int:
    return int(self.crashed.sum())

  def reset(self, seeds: Sequence[int | None] | None = None) -> Step:
    """Reset every env (env i with seeds[i] if given); stacked reset steps."""
    seeds = [None] * len(self) if seeds is None else list(seeds)
    for env, seed in zip(self._envs, seeds):
      env.send('reset', seed)
    steps = [self._receive(i) for i in range(len(self))]
    self._needs_reset[:] = [s['is_last'] for s in steps]
    return stack_steps(steps)

  def step(self, actions: np.ndarray) -> Step:
    """One step of every env; envs whose episode ended return their reset step."""
    actions = np.asarray(actions, np.float32)
    if actions.shape != (len(self), self.act_dim):
      raise ValueError(f'expected actions of shape {(len(self), self.act_dim)}, got {actions.shape}')
    for i, env in enumerate(self._envs):
      if self._needs_reset[i]:
        env.send('reset')
      else:
        env.send('step', actions[i])
    steps = [self._receive(i) for i in range(len(self))]
    self._needs_reset[:] = [s['is_last'] for s in steps]
    return stack_steps(steps)

  def call(self, index: int, method: str, *args, **kwargs) -> Any:
    """Call `method` on env `index` (e.g. 'get_state', 'render'); errors propagate."""
    env = self._envs[index]
    env.send(method, *args, **kwargs)
    status, result = env.recv()
    if status != 'ok':
      raise RuntimeError(f'env {index}: {method} failed: {result}')
    return result

  def render(self, index: int = 0):
    return self.call(index, 'render')

  def close(self) -> None:
    for env in self._envs:
      try:
        env.close()
      except Exception:  # pylint: disable=broad-except
        pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # -- internals -------------------------------------------------------------------

  def _receive(self, i: int) -> Step:
    status, result = self._envs[i].recv()
    while status != 'ok':
      self._crash(i, result)
      try:
        self._envs[i].restart()
        self._envs[i].send('reset')
        status, result = self._envs[i].recv()
      except Exception as error:  # pylint: disable=broad-except  (factory failed in-process)
        status, result = 'error', _one_line(error)
    return result

  def _crash(self, i: int, error: str) -> None:
    self.crashed[i] += 1
    self.errors = (self.errors + [f'env {i}: {error}'])[-20:]
    log.warning('environment %d crashed (%d in total): %s', i, self.num_crashes, error)
    if self.num_crashes > self.max_restarts:
      raise EnvCrashError(f'environments crashed {self.num_crashes} times (more than '
                          f'env.max_restarts={self.max_restarts}); last: env {i}: {error}')
