"""Replay: window shapes, stream separation, flags, uniformity, eviction, prefetching."""
import os
import time

import numpy as np
import psutil
import pytest

from safedreamer.replay import NotEnoughData, Replay
from test_replay_helpers import IMAGE, check_windows, fill, make_step


def make(tmp_path, **kw):
  kw = {'capacity': 10_000, 'chunk': 32, 'seed': 0, 'disk_bytes': 512, **kw}
  return Replay(str(tmp_path / 'replay'), **kw)


def test_shapes_and_dtypes(tmp_path):
  replay = make(tmp_path)
  fill(replay, {0: 100})
  batch = replay.sample(5, 20)
  want = {'image': ((5, 20) + IMAGE, np.uint8), 'sid': ((5, 20), np.int32),
          'count': ((5, 20), np.int64), 'action': ((5, 20, 2), np.float32),
          'reward': ((5, 20), np.float32), 'cost': ((5, 20), np.float32),
          'is_first': ((5, 20), np.bool_), 'is_last': ((5, 20), np.bool_),
          'is_terminal': ((5, 20), np.bool_)}
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == want   # log_ keys dropped
  assert len(replay) == 100 and replay.num_windows(20) == 81


@pytest.mark.parametrize('length', [1, 7, 32, 33, 100])
def test_windows_stay_in_one_stream_and_match_the_data(tmp_path, length):
  replay = make(tmp_path)
  fill(replay, {0: 150, 1: 230, 2: 101})   # partial tail chunks, several chunk crossings
  for _ in range(5):
    check_windows(replay.sample(16, length))


def test_starts_are_uniform_over_all_valid_positions(tmp_path):
  replay = make(tmp_path, chunk=16)
  fill(replay, {0: 40, 1: 130})
  T, seen = 10, {}
  for _ in range(50):
    batch = replay.sample(400, T)
    for s, c in zip(batch['sid'][:, 0], batch['count'][:, 0]):
      seen[(int(s), int(c))] = seen.get((int(s), int(c)), 0) + 1
  valid = {(0, c) for c in range(40 - T + 1)} | {(1, c) for c in range(130 - T + 1)}
  assert set(seen) == valid   # every valid start is drawn, nothing else is
  counts = np.array(list(seen.values()))
  mean = counts.sum() / len(valid)
  assert abs(counts.mean() - mean) < 1e-9 and counts.std() < 4 * np.sqrt(mean)
  share0 = sum(n for (s, _), n in seen.items() if s == 0) / counts.sum()
  assert abs(share0 - 31 / 152) < 0.02


def test_not_enough_data(tmp_path):
  replay = make(tmp_path)
  with pytest.raises(NotEnoughData):
    replay.sample(2, 5)
  fill(replay, {0: 4, 1: 4})
  with pytest.raises(NotEnoughData):
    replay.sample(2, 5)
  replay.add(make_step(1, 4), stream=1)
  assert (replay.sample(8, 5)['sid'] == 1).all()


def test_first_step_of_a_stream_must_be_first(tmp_path):
  replay = make(tmp_path)
  with pytest.raises(ValueError, match='is_first'):
    replay.add(make_step(0, 5), stream=0)
  replay.add(make_step(0, 0), stream=0)
  replay.add(make_step(0, 1), stream=0)   # later steps need not be
  with pytest.raises(ValueError, match='keys'):
    replay.add({k: v for k, v in make_step(0, 2).items() if k != 'cost'}, stream=0)
  with pytest.raises(ValueError, match='shape'):
    replay.add({**make_step(0, 2), 'action': np.float32(0)}, stream=0)
  with pytest.raises(ValueError, match='streams'):
    replay.add(make_step(0, 0), stream=-1)
  assert len(replay) == 2


@pytest.mark.parametrize('interleave', [True, False])
def test_fifo_eviction_keeps_the_newest_capacity_steps(tmp_path, interleave):
  capacity, chunk = 200, 16
  replay = make(tmp_path, capacity=capacity, chunk=chunk)
  order = []   # global insertion order of (stream, count)

  class Recorder:
    def add(self, step, stream):
      order.append((stream, int(step['count'])))
      replay.add(step, stream)
  for _ in range(3):   # uneven streams, several rounds of eviction
    start = {s: sum(1 for o in order if o[0] == s) for s in range(3)}
    fill(Recorder(), {0: 90, 1: 200, 2: 35}, start, interleave=interleave)
    stored = set()
    for s, st in replay.streams.items():
      stored |= {(s, c) for c in range(st.start, st.end)}
    assert set(order[-capacity:]) <= stored
    assert capacity <= len(stored) == len(replay) < capacity + 3 * chunk
    assert all(st.start % chunk == 0 for st in replay.streams.values())
    check_windows(replay.sample(16, 12))
  files = sorted(os.listdir(replay.directory))
  assert len(files) == sum(len(st.chunks) for st in replay.streams.values()) - 3 + (
      len(replay._evicted))   # full chunks on disk; evicted ones until the next saves
  replay.save()
  replay.save()   # evicted files go one save later, so the older position stays loadable
  assert len(os.listdir(replay.directory)) == sum(
      len(st.chunks) for st in replay.streams.values())


def test_in_memory_replay(tmp_path):
  replay = Replay(None, capacity=100, chunk=16)
  fill(replay, {0: 300, 1: 50})
  check_windows(replay.sample(8, 20))
  assert replay.stats()['bytes_disk'] == 0 and replay.stats()['steps'] < 100 + 2 * 16
  with pytest.raises(RuntimeError):
    replay.save()


def test_stats(tmp_path):
  replay = make(tmp_path, chunk=32)
  fill(replay, {0: 70})
  stats = replay.stats()
  assert stats['steps'] == stats['added'] == 70 and stats['chunks'] == 3
  assert stats['bytes_disk'] >= 64 * 768   # two full chunks' images on disk
  per_step_small = 4 + 8 + 8 + 4 + 4 + 3
  assert stats['bytes_memory'] == 64 * per_step_small + 32 * (per_step_small + 768)


def test_dataset_prefetches_and_closes(tmp_path):
  replay = make(tmp_path)
  with replay.dataset(4, 10, prefetch=2) as ds:
    time.sleep(0.1)   # waits for data instead of failing
    fill(replay, {0: 50})
    for _ in range(5):
      check_windows(next(ds))
    thread = ds._thread
  assert not thread.is_alive()
  with pytest.raises(StopIteration):
    next(ds)
  ds2 = replay.dataset(2, 5)
  next(ds2)
  replay.close()
  assert not ds2._thread.is_alive()


def test_dataset_while_adding_evicting_and_loading(tmp_path):
  replay = make(tmp_path, capacity=100, chunk=16)
  fill(replay, {0: 20, 1: 20})
  ds = replay.dataset(4, 10, prefetch=1)
  for c in range(20, 420, 40):   # sealing and eviction race with the sampling thread
    fill(replay, {0: 40, 1: 40}, start={0: c, 1: c})
    check_windows(next(ds))
  start = time.perf_counter()
  replay.load(replay.save())     # stops the prefetch thread instead of deadlocking
  assert time.perf_counter() - start < 5 and not ds._thread.is_alive()
  check_windows(replay.sample(8, 10))


def test_memory_stays_far_below_the_raw_bytes_of_images(tmp_path):
  """Growing the replay by 8000 steps of two 64x64x3 frames (197 MB raw) must barely
  grow RSS: full chunks' images live only in files, read with preadv (no mapping)."""
  replay = Replay(str(tmp_path / 'replay'), capacity=10_000, chunk=256)
  frames = [np.full((64, 64, 3), i, np.uint8) for i in range(256)]

  def grow(n):
    for i in range(len(replay), n):
      replay.add({'front': frames[i % 256], 'rear': frames[(i + 1) % 256],
                  'vector': np.zeros(30, np.float32), 'action': np.zeros(2, np.float32),
                  'reward': np.float32(0), 'cost': np.float32(0), 'is_first': i == 0,
                  'is_last': False, 'is_terminal': False}, 0)
    for _ in range(3):   # small batches: glibc may keep freed ones in its heap
      batch = replay.sample(2, 64)
    assert (batch['front'][:, 1:, 0, 0, 0] ==
            (batch['front'][:, :-1, 0, 0, 0] + 1) % 256).all()
  grow(600)
  base = psutil.Process().memory_info().rss
  grow(8600)
  grown = psutil.Process().memory_info().rss - base
  raw = 8000 * 2 * 64 * 64 * 3
  assert grown < raw / 10, (grown, raw)
  assert replay.stats()['bytes_memory'] < 256 * (2 * 64 * 64 * 3 + 139) + 8600 * 139
