"""Replay memory and sampling speed with synthetic vision steps.

Fills a Replay with steps of two 64x64x3 uint8 frames plus small vectors (~24.7 KB
a step, so 1e6 steps need ~25 GB of disk: check `df -h`), and at several fill
levels prints the process RSS (current, peak, anonymous vs file-backed), the
replay's own accounting, and batches of B x T per second: `warm` right after
filling (chunk files mostly in the page cache), `cold` after the chunk files were
evicted from the page cache (posix_fadvise DONTNEED, so reads hit the disk), and
`prefetch` through `dataset()` with a learner that works `--work` seconds per batch
(reported as the learner's mean wait per batch).

  .venv/bin/python benchmarks/replay_speed.py --steps 100000
  .venv/bin/python benchmarks/replay_speed.py            # 1e6 steps, ~25 GB of disk
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from safedreamer.replay import Replay  # noqa: E402


def memory() -> dict:
  status = dict(line.split(':', 1) for line in open('/proc/self/status')
                if line.startswith(('Rss', 'VmHWM')))
  mib = {k: int(v.split()[0]) / 1024 for k, v in status.items()}
  return {'rss': psutil.Process().memory_info().rss / 2**20, 'anon': mib['RssAnon'],
          'file': mib['RssFile'],
          'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def drop_page_cache(directory: str) -> None:
  """Evict this replay's files (only them) from the kernel page cache."""
  for name in os.listdir(directory):
    fd = os.open(os.path.join(directory, name), os.O_RDONLY)
    try:
      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
      os.close(fd)


def rate(replay, batch, length, n) -> float:
  replay.sample(batch, length)
  start = time.perf_counter()
  for _ in range(n):
    replay.sample(batch, length)
  return n / (time.perf_counter() - start)


def prefetch_wait(replay, batch, length, n, work) -> float:
  with replay.dataset(batch, length, prefetch=2) as ds:
    next(ds)
    ds.wait_s = 0.0
    for _ in range(n):
      next(ds)
      time.sleep(work)   # the learner's update; the GIL is free as in XLA
    return ds.wait_s / n


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=float, default=1e6)
  parser.add_argument('--levels', default='0.1,0.5,1.0', help='fractions of --steps')
  parser.add_argument('--streams', type=int, default=1)
  parser.add_argument('--chunk', type=int, default=1024)
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--length', type=int, default=64)
  parser.add_argument('--batches', type=int, default=50, help='batches timed per row')
  parser.add_argument('--work', type=float, default=0.1, help='learner s/batch (prefetch)')
  parser.add_argument('--dir', default=None, help='replay directory (default: a temp dir)')
  parser.add_argument('--keep', action='store_true', help='keep the chunk files')
  args = parser.parse_args()

  steps = int(args.steps)
  root = args.dir or tempfile.mkdtemp(prefix='replay_speed_')
  need = steps * (2 * 64 * 64 * 3 + 200) / 2**30
  free = shutil.disk_usage(os.path.dirname(os.path.abspath(root))).free / 2**30
  print(f'directory {root}: needs ~{need:.1f} GiB, {free:.1f} GiB free')
  if need > free * 0.9:
    sys.exit('not enough free disk')
  replay = again = Replay(root, capacity=steps, chunk=args.chunk, seed=0)
  rng = np.random.default_rng(0)
  pool = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
  vector = rng.normal(size=(64, 32)).astype(np.float32)
  counts = [0] * args.streams
  print(f'start: {memory()}')
  header = ('steps', 'fill steps/s', 'save s', 'warm b/s', 'cold b/s', 'prefetch wait ms',
            'RSS MiB', 'anon', 'file', 'peak RSS', 'replay mem MiB', 'disk GiB')
  rows, filled, fill_time = [], 0, 0.0
  try:
    for level in [float(x) for x in args.levels.split(',')]:
      target = int(level * steps)
      start = time.perf_counter()
      while filled < target:
        s = filled % args.streams
        i = counts[s]
        front, rear = pool[i % 64].copy(), pool[(i * 7 + 3) % 64]
        front[0, 0, :] = (i % 256, (i >> 8) % 256, s)
        replay.add({'front': front, 'rear': rear, 'vector': vector[i % 64],
                    'action': np.zeros(2, np.float32) if i % 250 == 0 else vector[i % 64, :2],
                    'reward': np.float32(1), 'cost': np.float32(i % 7 == 0),
                    'is_first': i % 250 == 0, 'is_last': i % 250 == 249,
                    'is_terminal': False}, stream=s)
        counts[s] += 1
        filled += 1
      fill_time += time.perf_counter() - start
      start = time.perf_counter()
      position = replay.save()
      save_s = time.perf_counter() - start
      warm = rate(replay, args.batch, args.length, args.batches)
      drop_page_cache(root)
      cold = rate(replay, args.batch, args.length, args.batches)
      wait = prefetch_wait(replay, args.batch, args.length, min(20, args.batches), args.work)
      mem, stats = memory(), replay.stats()
      rows.append((f'{filled:,}', f'{filled / fill_time:,.0f}', f'{save_s:.2f}', f'{warm:.1f}',
                   f'{cold:.1f}', f'{1000 * wait:.1f}', f'{mem["rss"]:.0f}', f'{mem["anon"]:.0f}',
                   f'{mem["file"]:.0f}', f'{mem["peak"]:.0f}',
                   f'{stats["bytes_memory"] / 2**20:.0f}', f'{stats["bytes_disk"] / 2**30:.2f}'))
      print(' | '.join(rows[-1]), flush=True)
    replay.close()
    del replay
    start = time.perf_counter()
    again = Replay(root, capacity=steps, chunk=args.chunk, seed=1)
    again.load(position)
    load_s = time.perf_counter() - start
    print(f'load of {len(again):,} steps in a new Replay: {load_s:.1f} s, then '
          f'{rate(again, args.batch, args.length, args.batches):.1f} batches/s, {memory()}')
  finally:
    again.close()
    if not args.keep and not args.dir:
      shutil.rmtree(root, ignore_errors=True)
  print(f'\nB={args.batch} T={args.length}, {args.streams} stream(s), chunk {args.chunk}, '
        f'{os.cpu_count()} CPUs')
  widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
  print('| ' + ' | '.join(h.ljust(w) for h, w in zip(header, widths)) + ' |')
  print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
  for r in rows:
    print('| ' + ' | '.join(c.rjust(w) for c, w in zip(r, widths)) + ' |')


if __name__ == '__main__':
  main()
