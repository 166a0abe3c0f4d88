"""Sequence replay: uniform windows over parallel streams, chunk files on disk.

A *stream* is one environment's continuous sequence of steps (flat dicts of numpy
values, see envs/base.py); episodes follow each other in it and `is_first` marks
where one begins. Step i of stream s is stored in chunk i // chunk of that stream.
`sample(B, T)` draws windows uniformly over every valid start position of every
stream; a window never mixes streams but may cross episode boundaries (DreamerV3's
convention: the model resets its state at is_first).

Storage, and why. Two 64x64x3 uint8 frames per step make 1e6 steps ~25 GB, more
than this machine's RAM, so image-sized keys (per-step bytes >= `disk_bytes`) live
only in chunk files once their chunk fills; smaller keys (vectors, rewards, flags:
~0.3 KB/step, ~0.3 GB per 1e6 steps) stay in memory as well. Windows are copied
out of the files with `os.preadv` straight into the batch arrays rather than through
`np.load(mmap_mode='r')`: pages of a mapped file that the process touches count in
its RSS (RssFile; measured: reading a 196 MB .npy through a memory map grew RSS by
192 MB, reading it with preadv grew it by under 1 MB), so a memory-mapped 25 GB
replay would show up to 25 GB of RSS, whereas preadv leaves caching to the kernel's
page cache, which is reclaimable and not the process's memory. Files are
uncompressed: a batch of 16x64 image steps is 25 MB; zlib shrank smooth 64x64
frames with 2 bits of pixel noise only 1.3x here and decompressed them at ~90 MB/s
(~0.3 s a batch on a core that the learner needs), while uncompressed reads run
at page-cache speed (or ~1.4 GB/s from this machine's disk when cold).

Capacity: after each add, the chunk of a stream whose newest step is the oldest is
evicted (whole chunk) as long as at least `capacity` stored steps are newer than
all of its steps. So every one of the newest `capacity` steps is always kept, and
the replay holds fewer than `capacity + streams * chunk` steps.

Persistence: `save()` writes every partially filled chunk (atomically: temporary
name, fsync, rename), fsyncs the chunk files written since the previous save and
returns a small JSON-able position. `load(position)` (also in a fresh process, from
the directory and the position alone) restores exactly that content and RNG state:
steps added after the save are dropped, files past the position and temporary
files are deleted, and the next step added to every stream must have is_first
(the env was reset; a window may span the resumption, since is_first marks it).
Files of evicted chunks are deleted one `save()` later, so the previous checkpoint's
position stays loadable; a position whose oldest chunks are gone loads without them.
A Replay owns its directory: do not share one directory between two replays.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from safedreamer.replay import chunkfile, persist
from safedreamer.replay.dataset import Dataset
from safedreamer.replay.store import Chunk, NotEnoughData, Spec, Stream

__all__ = ['NotEnoughData', 'Replay']

class Replay:
  """Replay(directory, capacity=1e6, chunk=1024, seed=0, disk_bytes=4096).

  directory: where chunk files go (created); None keeps everything in memory and
    cannot `save`. capacity: steps kept (see module docstring for the bound).
  chunk: steps per chunk file. seed: seeds the sampling Generator.
  disk_bytes: keys with at least this many bytes per step are read from the chunk
    files once their chunk is full (images); the others also stay in memory.
  Thread-safe: one thread may `add` while another samples (see `dataset`).
  Every step needs the keys and shapes of the first one (values are cast to its
  dtypes) including 'is_first'; keys starting with 'log_' are not stored. Each
  stream keeps its partially filled chunk in memory (chunk x step bytes).
  """

  def __init__(self, directory: str | None, capacity: int = 1_000_000, chunk: int = 1024,
               seed: int = 0, disk_bytes: int = 4096):
    if capacity < 1 or chunk < 1:
      raise ValueError('replay capacity and chunk must be positive')
    self.directory, self.capacity, self.chunk = directory, int(capacity), int(chunk)
    self.disk_bytes = disk_bytes
    if directory is not None:
      os.makedirs(directory, exist_ok=True)
    self.rng = np.random.default_rng(seed)
    self.lock = threading.RLock()
    self.added = 0                 # steps ever added (global insertion counter)
    self.spec: Spec | None = None
    self.streams: dict[int, Stream] = {}
    self._unsynced: set[str] = set()   # written since the last save, not fsynced
    self._evicted: list[str] = []      # files of chunks evicted since the last save
    self._doomed: list[str] = []       # evicted before the last save: delete next save
    self._datasets = []

  # ---------------------------------------------------------------- adding
  def add(self, step: dict, stream: int = 0) -> None:
    """Append one step to `stream`. Its first step, and the first one after a
    `load`, must have is_first (ValueError otherwise)."""
    step = {k: v for k, v in step.items() if not k.startswith('log_')}
    with self.lock:
      if self.spec is None:
        if 'is_first' not in step:
          raise ValueError("replay steps need an 'is_first' entry")
        self.spec = {k: (np.shape(v), np.asarray(v).dtype) for k, v in step.items()}
      elif step.keys() != self.spec.keys():
        raise ValueError(f'replay step keys {sorted(step)} differ from the first step '
                         f'{sorted(self.spec)}')
      for k, (shape, _) in self.spec.items():
        if np.shape(step[k]) != shape:
          raise ValueError(f'replay step {k!r} has shape {np.shape(step[k])}, not {shape}')
      st = self.streams.get(stream)
      if st is None:
        if not isinstance(stream, (int, np.integer)) or stream < 0:
          raise ValueError(f'replay streams are ints >= 0, not {stream!r}')
        st = self.streams[stream] = Stream()
      if st.need_first and not step['is_first']:
        raise ValueError(f'replay stream {stream}: the first step added (after a start or a '
                         'load) must have is_first=True')
      st.need_first = False
      tail = st.chunks[-1] if st.chunks and st.chunks[-1].length < self.chunk else None
      if tail is None:
        tail = Chunk(st.end // self.chunk, {
            k: np.empty((self.chunk,) + shape, dtype) for k, (shape, dtype) in self.spec.items()})
        st.chunks.append(tail)
      i = tail.length
      for k, buf in tail.mem.items():
        buf[i] = step[k]
      tail.length, tail.last = i + 1, self.added
      st.end += 1
      self.added += 1
      if tail.length == self.chunk:
        self._seal(stream, tail)
      self._evict()

  def _disk_keys(self) -> list[str]:
    if self.directory is None:
      return []
    return [k for k, (shape, dtype) in self.spec.items()
            if int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize >= self.disk_bytes]

  def _write(self, stream: int, c: Chunk, fsync: bool) -> None:
    path = os.path.join(self.directory, chunkfile.chunk_name(stream, c.index))
    header = chunkfile.write(path, stream, c.index, c.length, c.mem, fsync=fsync)
    c.path, c.saved = path, c.length
    c.offsets = {k: v['offset'] for k, v in header['keys'].items()}

  def _seal(self, stream: int, c: Chunk) -> None:
    """A chunk just filled: write its file, keep only the memory keys in RAM."""
    if self.directory is None:
      return
    # Replacing a file that a saved position references: make the data durable first.
    self._write(stream, c, fsync=c.saved > 0)
    self._unsynced.add(c.path)
    for k in self._disk_keys():
      del c.mem[k]

  def _evict(self) -> None:
    while True:
      best = None
      for sid, st in self.streams.items():
        if st.chunks and st.chunks[0].length == self.chunk and (
            best is None or st.chunks[0].last < best[1].chunks[0].last):
          best = (sid, st)
      if best is None or self.added - 1 - best[1].chunks[0].last < self.capacity:
        return
      st = best[1]
      c = st.chunks.pop(0)
      st.start += c.length
      if c.path:
        self._evicted.append(c.path)
        self._unsynced.discard(c.path)

  # ---------------------------------------------------------------- sampling
  def __len__(self) -> int:
    with self.lock:
      return sum(st.end - st.start for st in self.streams.values())

  def num_windows(self, length: int) -> int:
    """How many distinct windows of `length` steps can be sampled."""
    with self.lock:
      return sum(max(0, st.end - st.start - length + 1) for st in self.streams.values())

  def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
    """B windows of T consecutive steps of one stream each, start positions uniform
    over all valid ones: {key: [B, T, ...]}. NotEnoughData (a ValueError) if no
    stream holds T steps."""
    out, reads, fds = {}, [], {}
    try:
      with self.lock:
        sids = sorted(self.streams)
        counts = np.array([max(0, self.streams[s].end - self.streams[s].start - length + 1)
                           for s in sids], np.int64)
        total = int(counts.sum())
        if total == 0:
          raise NotEnoughData(f'replay holds no window of {length} steps yet ({len(self)} steps)')
        draws = self.rng.integers(0, total, size=batch_size)
        cum = np.cumsum(counts)
        which = np.searchsorted(cum, draws, side='right')
        out = {k: np.empty((batch_size, length) + shape, dtype)
               for k, (shape, dtype) in self.spec.items()}
        for b in range(batch_size):
          st = self.streams[sids[which[b]]]
          pos = st.start + int(draws[b] - (cum[which[b]] - counts[which[b]]))
          first_index, t = st.chunks[0].index, 0
          while t < length:
            c = st.chunks[pos // self.chunk - first_index]
            lo = pos - c.index * self.chunk
            n = min(length - t, c.length - lo)
            for k, arr in out.items():
              if k in c.mem:
                arr[b, t:t + n] = c.mem[k][lo:lo + n]
              else:
                if c.path not in fds:  # open under the lock: an evicted file may go later
                  fds[c.path] = os.open(c.path, os.O_RDONLY)
                reads.append((fds[c.path], c.offsets[k], lo, arr[b, t:t + n]))
            t, pos = t + n, pos + n
      for fd, offset, lo, dest in reads:   # file reads outside the lock
        chunkfile.read_into(fd, {'offset': offset}, lo, dest)
    finally:
      for fd in fds.values():
        os.close(fd)
    return out

  def dataset(self, batch_size: int, length: int, prefetch: int = 2):
    """An iterator of batches sampled by a background thread into a queue of
    `prefetch` batches; waits for enough data. Close it (or the replay) to stop."""
    ds = Dataset(self, batch_size, length, prefetch)
    self._datasets.append(ds)
    return ds

  def close(self) -> None:
    for ds in self._datasets:
      ds.close()
    self._datasets = []

  def stats(self) -> dict:
    """Numbers for logging: steps, chunks, bytes in memory and on disk."""
    with self.lock:
      chunks = [c for st in self.streams.values() for c in st.chunks]
      disk = 0
      for path in {c.path for c in chunks if c.path} | set(self._evicted) | set(self._doomed):
        try:
          disk += os.path.getsize(path)
        except OSError:
          pass
      return {'steps': sum(st.end - st.start for st in self.streams.values()),
              'added': self.added, 'streams': len(self.streams), 'chunks': len(chunks),
              'bytes_memory': sum(a.nbytes for c in chunks for a in c.mem.values()),
              'bytes_disk': disk}

  # ---------------------------------------------------------------- persistence
  def save(self) -> dict:
    """Make everything added so far durable; returns the JSON-able position."""
    if self.directory is None:
      raise RuntimeError('an in-memory replay (directory=None) cannot be saved')
    with self.lock:
      position, to_sync, to_delete = persist.save(self)
    for path in to_sync:   # sealed chunk files are never rewritten: no lock needed
      chunkfile.sync_file(path)
    chunkfile.sync_dir(self.directory)
    for path in to_delete:
      try:
        os.remove(path)
      except FileNotFoundError:
        pass
    return position

  def load(self, position: dict) -> None:
    """Restore the content and RNG state of a `save()` (see module docstring)."""
    if self.directory is None:
      raise RuntimeError('an in-memory replay (directory=None) cannot be loaded')
    self.close()   # stop prefetching first: its thread may be waiting for the lock
    with self.lock:
      persist.load(self, position)
