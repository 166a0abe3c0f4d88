"""One process per log folder: an OS file lock on LOGDIR/.lock.

`hold(logdir)` takes an exclusive `fcntl.flock` on LOGDIR/.lock and writes the
holder's pid into it. The kernel drops the lock when the holder's file is closed,
also when the process is killed (SIGKILL included), so a dead holder never leaves
the folder locked: the next `train` just takes it over. A second process that finds
the lock held stops with `LogdirBusy` (a ConfigError: one line, exit 2) naming the
holder's pid, having only opened the lock file to read it.

The lock file is opened close-on-exec and environment subprocesses are spawned
(not forked), so no child inherits the lock.
"""
from __future__ import annotations

import fcntl
import os
import pathlib

from safedreamer.config.load import ConfigError

LOCK_NAME = '.lock'


class LogdirBusy(ConfigError):
  """Another live process holds the log folder."""


def _holder(fd: int) -> str:
  try:
    text = os.pread(fd, 64, 0).decode(errors='replace').strip()
  except OSError:
    text = ''
  return text if text.isdigit() else 'unknown'


def check_free(logdir: str | os.PathLike) -> None:
  """Raise LogdirBusy if a live process holds `logdir`; writes nothing."""
  path = pathlib.Path(logdir) / LOCK_NAME
  try:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
  except FileNotFoundError:
    return
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      raise LogdirBusy(f'{logdir} is in use by process {_holder(fd)} (one run per log '
                       'folder); stop it or choose another --logdir') from None
  finally:
    os.close(fd)


class LogdirLock:
  """The held lock; `release()` (or process exit) frees it."""

  def __init__(self, logdir: str | os.PathLike):
    self.path = pathlib.Path(logdir) / LOCK_NAME
    self.fd: int | None = None

  def acquire(self) -> 'LogdirLock':
    check_free(self.path.parent)  # fail before creating anything
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(fd)
      os.close(fd)
      raise LogdirBusy(f'{self.path.parent} is in use by process {holder} (one run per log '
                       'folder); stop it or choose another --logdir') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
    self.fd = fd
    return self

  def release(self) -> None:
    if self.fd is not None:
      os.close(self.fd)  # closing drops the flock; the file stays (harmless)
      self.fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def hold(logdir: str | os.PathLike) -> LogdirLock:
  """Take the lock of `logdir` (creating the folder) or raise LogdirBusy."""
  return LogdirLock(logdir).acquire()
