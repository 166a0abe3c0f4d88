"""Synthetic steps for the replay tests (no tests here): each step encodes its stream
and counter, so windows can be checked for consecutiveness."""
import numpy as np

IMAGE = (16, 16, 3)   # 768 bytes a step: on disk with disk_bytes=512


def episode_length(stream: int) -> int:
  return 37 + 11 * stream


def pixel(stream: int, count) -> np.ndarray:
  return (np.asarray(count) * 7 + stream * 13) % 256


def make_step(stream: int, count: int, first: bool | None = None) -> dict:
  ep = episode_length(stream)
  is_first = count % ep == 0 if first is None else first
  return {
      'image': np.full(IMAGE, pixel(stream, count), np.uint8),
      'sid': np.int32(stream), 'count': np.int64(count),
      'action': np.zeros(2, np.float32) if is_first else np.full(2, 0.5, np.float32),
      'reward': np.float32(count), 'cost': np.float32(count % 3 == 0),
      'is_first': bool(is_first), 'is_last': bool(count % ep == ep - 1),
      'is_terminal': False, 'log_ignored': np.float32(1)}


def fill(replay, counts: dict[int, int], start: dict[int, int] | None = None,
         interleave: bool = True) -> None:
  """Add `counts[s]` steps to each stream s (round-robin if interleave)."""
  start = start or {}
  pos = {s: start.get(s, 0) for s in counts}
  ends = {s: pos[s] + n for s, n in counts.items()}
  order = sorted(counts)
  while any(pos[s] < ends[s] for s in order):
    for s in order:
      todo = ends[s] - pos[s] if not interleave else min(1, ends[s] - pos[s])
      for _ in range(todo):
        replay.add(make_step(s, pos[s]), stream=s)
        pos[s] += 1


def check_windows(batch: dict) -> None:
  """Every window is one stream's consecutive steps with consistent flags and data."""
  sid, count = batch['sid'], batch['count']
  B, T = count.shape
  assert (sid == sid[:, :1]).all(), 'a window mixes streams'
  assert (np.diff(count, axis=1) == 1).all(), 'a window skips or repeats steps'
  for b in range(B):
    s = int(sid[b, 0])
    ep = episode_length(s)
    np.testing.assert_array_equal(batch['is_first'][b], count[b] % ep == 0)
    np.testing.assert_array_equal(batch['is_last'][b], count[b] % ep == ep - 1)
    np.testing.assert_array_equal(batch['reward'][b], count[b].astype(np.float32))
    np.testing.assert_array_equal(batch['image'][b], np.broadcast_to(
        pixel(s, count[b])[:, None, None, None], (T,) + IMAGE))
    np.testing.assert_array_equal(batch['action'][b][batch['is_first'][b]], 0)
