"""A clean stop on Ctrl-C or SIGTERM.

`StopRequest` replaces the SIGINT and SIGTERM handlers while a run trains: the first
signal only records itself (`signum`), so the loop can finish its current step,
write a checkpoint, flush its logs and return; a second one stops at once by raising
KeyboardInterrupt, as Ctrl-C did before. The previous handlers come back on
`restore()`. Outside the main thread (where Python allows no handlers) it does
nothing and `signum` stays None.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
  """The shell's status of a process stopped by `signum`: 130 (SIGINT), 143 (SIGTERM)."""
  return 128 + int(signum)


def signal_name(signum: int) -> str:
  return signal.Signals(int(signum)).name


class StopRequest:

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.signum is not None:  # the second signal: stop now
      self.restore()
      raise KeyboardInterrupt
    self.signum = signum

  def install(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for sig in STOP_SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()


class ignoring_sigint:  # pylint: disable=invalid-name
  """Context in which SIGINT is ignored, for starting subprocesses: a spawned child
  keeps the ignored disposition (so a terminal's Ctrl-C, sent to the whole process
  group, reaches only the trainer, which then closes its environments itself)."""

  def __enter__(self):
    self._main = threading.current_thread() is threading.main_thread()
    if self._main:
      self._old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return self

  def __exit__(self, *exc):
    if self._main:
      signal.signal(signal.SIGINT, self._old)
