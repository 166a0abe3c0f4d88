"""Background prefetching of replay batches, so the learner does not wait on replay.

A daemon thread samples batches into a bounded queue. Sampling copies windows with
`os.preadv` and numpy copies, and the learner spends its time in XLA, so the two
overlap. The thread draws from the replay's own Generator, so batches already in the
queue have consumed draws before a `save()` records the RNG state: a run resumed from
a checkpoint samples validly but not the very same batches as an uninterrupted one.
"""
from __future__ import annotations

import queue
import threading
import time

from safedreamer.replay.store import NotEnoughData


class Dataset:
  """Iterator of {key: [B, T, ...]} batches. `close()` (or `with`) stops the thread;
  `wait_s` accumulates the seconds `next()` spent waiting for a batch."""

  def __init__(self, replay, batch_size: int, length: int, prefetch: int = 2):
    self.replay, self.batch_size, self.length = replay, batch_size, length
    self.wait_s = 0.0
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    self._stop = threading.Event()
    self._error: BaseException | None = None
    self._thread = threading.Thread(target=self._run, name='replay-prefetch', daemon=True)
    self._thread.start()

  def _run(self) -> None:
    try:
      while not self._stop.is_set():
        try:
          batch = self.replay.sample(self.batch_size, self.length)
        except NotEnoughData:
          self._stop.wait(0.05)
          continue
        while not self._stop.is_set():
          try:
            self._queue.put(batch, timeout=0.1)
            break
          except queue.Full:
            pass
    except BaseException as e:  # surfaced to the consumer by __next__
      self._error = e

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    start = time.perf_counter()
    try:
      while True:
        try:
          return self._queue.get(timeout=0.1)
        except queue.Empty:
          if self._error is not None:
            raise RuntimeError('replay prefetch thread failed') from self._error
          if self._stop.is_set():
            raise StopIteration from None
    finally:
      self.wait_s += time.perf_counter() - start

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=10)
    while not self._queue.empty():
      self._queue.get_nowait()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
