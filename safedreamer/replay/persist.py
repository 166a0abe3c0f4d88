"""Saving and loading a Replay's position (see replay.py for the guarantees).

The position is a small JSON-able dict:

  {'version': 1, 'chunk': steps per chunk, 'added': steps ever added,
   'rng': the sampling Generator's PCG64 state (128-bit numbers as hex strings),
   'spec': {key: [dtype str, shape]} or None,
   'streams': {str(stream): {'start': first stored step, 'end': one past the last,
                             'last': [insertion counter of the newest step of each
                                      chunk start // chunk, start // chunk + 1, ...]}}}

Chunk files hold the steps; the position says how many of them count.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from safedreamer.replay import chunkfile
from safedreamer.replay.store import Chunk, Stream

log = logging.getLogger(__name__)
VERSION = 1


def _rng_state(rng: np.random.Generator) -> dict:
  state = rng.bit_generator.state
  if state['bit_generator'] != 'PCG64':
    raise TypeError('replay expects a PCG64 Generator')
  return {'bit_generator': 'PCG64', 'state': hex(state['state']['state']),
          'inc': hex(state['state']['inc']), 'has_uint32': int(state['has_uint32']),
          'uinteger': int(state['uinteger'])}


def _set_rng_state(rng: np.random.Generator, saved: dict) -> None:
  rng.bit_generator.state = {
      'bit_generator': 'PCG64',
      'state': {'state': int(saved['state'], 16), 'inc': int(saved['inc'], 16)},
      'has_uint32': saved['has_uint32'], 'uinteger': saved['uinteger']}


def save(replay) -> tuple[dict, list[str], list[str]]:
  """Under the replay's lock: write the partial chunks (fsynced) and return the
  position, the chunk files still to fsync and the files now safe to delete
  (evicted before the previous save). `Replay.save` does those two outside the lock."""
  for sid, st in replay.streams.items():
    tail = st.chunks[-1] if st.chunks else None
    if tail is not None and tail.length < replay.chunk and tail.length != tail.saved:
      replay._write(sid, tail, fsync=True)
  to_sync, replay._unsynced = sorted(replay._unsynced), set()
  to_delete, replay._doomed, replay._evicted = replay._doomed, replay._evicted, []
  spec = None
  if replay.spec is not None:
    spec = {k: [np.dtype(d).str, list(s)] for k, (s, d) in replay.spec.items()}
  position = {
      'version': VERSION, 'chunk': replay.chunk, 'added': replay.added,
      'rng': _rng_state(replay.rng), 'spec': spec,
      'streams': {str(sid): {'start': st.start, 'end': st.end,
                             'last': [c.last for c in st.chunks]}
                  for sid, st in sorted(replay.streams.items())}}
  return position, to_sync, to_delete


def _check(path: str, sid: int, index: int, steps: int, spec) -> dict:
  header, _ = chunkfile.read_header(path)
  if header['stream'] != sid or header['index'] != index:
    raise ValueError(f'{path}: holds stream {header["stream"]} chunk {header["index"]}')
  if header['length'] < steps:
    raise ValueError(f'{path}: holds {header["length"]} steps, the position needs {steps}')
  keys = {k: [v['dtype'], v['shape']] for k, v in header['keys'].items()}
  want = {k: [np.dtype(d).str, list(s)] for k, (s, d) in spec.items()}
  if keys != want:
    raise ValueError(f'{path}: keys {keys} differ from the replay spec {want}')
  return header


def load(replay, position: dict) -> None:
  """Rebuild `replay` from its directory and `position` (see module docstring)."""
  if position.get('version') != VERSION:
    raise ValueError(f'replay position version {position.get("version")} is not {VERSION}')
  if position['chunk'] != replay.chunk:
    raise ValueError(f'replay position has chunk={position["chunk"]}, this replay '
                     f'chunk={replay.chunk}')
  C = replay.chunk
  spec = position.get('spec')
  replay.spec = None if spec is None else {
      k: (tuple(s), np.dtype(d)) for k, (d, s) in spec.items()}
  replay.added = int(position['added'])
  _set_rng_state(replay.rng, position['rng'])
  replay.streams, kept = {}, set()
  replay._unsynced, replay._evicted, replay._doomed = set(), [], []
  disk_keys = set(replay._disk_keys()) if replay.spec else set()
  for name, info in position['streams'].items():
    sid, start, end, lasts = int(name), int(info['start']), int(info['end']), info['last']
    first = start // C
    good = []   # (index, steps, last, path, header), newest first
    for j in reversed(range(len(lasts))):
      index = first + j
      steps = min(end, (index + 1) * C) - index * C
      path = os.path.join(replay.directory, chunkfile.chunk_name(sid, index))
      try:
        good.append((index, steps, lasts[j], path, _check(path, sid, index, steps, replay.spec)))
      except (OSError, ValueError) as e:
        if j == len(lasts) - 1:  # a broken newest chunk: restart the stream at its start
          log.warning('replay: dropping the newest chunk of stream %d: %s', sid, e)
          end = index * C
          continue
        # Older chunks whose files are gone were evicted after this position was saved.
        say = log.info if isinstance(e, FileNotFoundError) else log.warning
        say('replay: dropping chunks %d..%d of stream %d: %s', first, index, sid, e)
        break
    good.reverse()
    st = Stream(good[0][0] * C if good else end // C * C)
    for index, steps, last, path, header in good:
      if steps < C:   # the partial newest chunk: all keys back in memory, room to grow
        c = Chunk(index, chunkfile.read_arrays(path, header, replay.spec, replay.spec, steps, C))
      else:
        mem_keys = [k for k in replay.spec if k not in disk_keys]
        c = Chunk(index, chunkfile.read_arrays(path, header, replay.spec, mem_keys, steps, steps))
      c.length, c.last, c.path, c.saved = steps, last, path, steps
      c.offsets = {k: v['offset'] for k, v in header['keys'].items()}
      st.chunks.append(c)
      kept.add((sid, index))
    st.end = st.start + sum(c.length for c in st.chunks)
    replay.streams[sid] = st
  for fname in os.listdir(replay.directory):   # stale files: after the position, temp
    if fname.endswith(chunkfile.TMP_SUFFIX):
      stale = chunkfile.parse_name(fname[:-len(chunkfile.TMP_SUFFIX)]) is not None
    else:
      parsed = chunkfile.parse_name(fname)
      stale = parsed is not None and parsed not in kept
    if stale:
      os.remove(os.path.join(replay.directory, fname))
  chunkfile.sync_dir(replay.directory)
