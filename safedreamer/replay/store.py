"""The replay's in-memory records, shared by replay.py (adding, sampling) and
persist.py (saving, loading): chunks, streams, and the error of a replay too short to
sample from. This module imports nothing of the replay package, so the folder reads
bottom-up: chunkfile, store -> dataset, persist -> replay."""
from __future__ import annotations

import numpy as np

Spec = dict[str, tuple[tuple[int, ...], np.dtype]]


class NotEnoughData(ValueError):
  """`sample` was asked for windows longer than any stream holds."""


class Chunk:
  """Up to `chunk` consecutive steps of one stream. `mem` holds every key while the
  chunk is being filled (preallocated to the full chunk) and only the memory keys
  once its file holds the rest; `saved` is the number of steps its file holds."""
  __slots__ = ('index', 'length', 'last', 'mem', 'path', 'offsets', 'saved')

  def __init__(self, index: int, mem: dict[str, np.ndarray]):
    self.index, self.length, self.last, self.mem = index, 0, -1, mem
    self.path, self.offsets, self.saved = None, {}, 0


class Stream:
  __slots__ = ('start', 'end', 'chunks', 'need_first')

  def __init__(self, start: int = 0):
    self.start = self.end = start   # global step indices [start, end) are stored
    self.chunks: list[Chunk] = []   # ordered by index; the last may be partial
    self.need_first = True          # the next added step must be is_first
