"""The on-disk format of one replay chunk: a small header and raw per-key arrays.

Layout of `<stream:04d>-<index:08d>.chunk`:

  bytes 0..7     magic b'SDCHUNK1'
  bytes 8..15    header size H (uint64, little endian)
  bytes 16..16+H JSON header: {"stream", "index", "length", "keys":
                 {key: {"dtype", "shape", "offset"}}}  (shape excludes the step axis)
  then, for each key at its 4096-aligned offset, `length` steps of that key stored
  contiguously (C order), so a window of consecutive steps of one key is one
  contiguous byte range that a single `os.preadv` copies straight into a batch.

Files are written under a temporary name and renamed over the final name
(`os.replace`), so a reader sees either the old complete file or the new complete
file, never a half-written one. Whether the data is also on the disk platter is the
caller's business (`fsync=True` or `sync_file` later).
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

MAGIC = b'SDCHUNK1'
ALIGN = 4096
SUFFIX = '.chunk'
TMP_SUFFIX = '.tmp'


def chunk_name(stream: int, index: int) -> str:
  return f'{stream:04d}-{index:08d}{SUFFIX}'


def parse_name(name: str) -> tuple[int, int] | None:
  """(stream, index) of a chunk file name, None for anything else."""
  if not name.endswith(SUFFIX):
    return None
  stem = name[:-len(SUFFIX)]
  parts = stem.split('-')
  if len(parts) != 2 or not all(p.isdigit() for p in parts):
    return None
  return int(parts[0]), int(parts[1])


def _layout(spec: dict[str, tuple[tuple[int, ...], np.dtype]], length: int,
            start: int) -> tuple[dict, int]:
  keys, offset = {}, start
  for key, (shape, dtype) in spec.items():
    offset = -(-offset // ALIGN) * ALIGN
    keys[key] = {'dtype': np.dtype(dtype).str, 'shape': list(shape), 'offset': offset}
    offset += length * int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
  return keys, offset


def write(path: str, stream: int, index: int, length: int,
          arrays: dict[str, np.ndarray], fsync: bool = False) -> dict:
  """Atomically write the first `length` steps of `arrays` to `path`; returns
  the header (with each key's byte offset)."""
  spec = {k: (v.shape[1:], v.dtype) for k, v in arrays.items()}
  # The header size depends on the offsets it holds: lay out twice with a padded guess.
  probe = json.dumps({'stream': stream, 'index': index, 'length': length,
                      'keys': _layout(spec, length, 1 << 40)[0]}).encode()
  keys, total = _layout(spec, length, 16 + len(probe))
  header = {'stream': stream, 'index': index, 'length': length, 'keys': keys}
  blob = json.dumps(header).encode()
  assert len(blob) <= len(probe)
  tmp = path + TMP_SUFFIX
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  try:
    try:
      os.pwrite(fd, MAGIC + struct.pack('<Q', len(blob)) + blob, 0)
      for key, info in keys.items():
        data = np.ascontiguousarray(arrays[key][:length])
        view, pos = memoryview(data).cast('B'), info['offset']
        while len(view):
          n = os.pwrite(fd, view, pos)
          view, pos = view[n:], pos + n
      os.ftruncate(fd, total)
      if fsync:
        os.fsync(fd)
    finally:
      os.close(fd)
    os.replace(tmp, path)
  except BaseException:
    # A full disk (ENOSPC) or any other failure: give the half-written file's space back.
    # The previous complete file under `path`, if any, is untouched.
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise
  return header


def read_header(path: str) -> tuple[dict, int]:
  """(header, file size); raises ValueError if the file is not a complete chunk."""
  with open(path, 'rb') as f:
    head = f.read(16)
    if len(head) != 16 or head[:8] != MAGIC:
      raise ValueError(f'{path}: not a replay chunk file')
    (size,) = struct.unpack('<Q', head[8:])
    if size > 1 << 24:
      raise ValueError(f'{path}: corrupt header size')
    blob = f.read(size)
    size_on_disk = os.fstat(f.fileno()).st_size
  try:
    header = json.loads(blob)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f'{path}: corrupt header ({e})') from None
  need = max((info['offset'] + header['length'] * int(np.prod(info['shape'], dtype=np.int64))
              * np.dtype(info['dtype']).itemsize for info in header['keys'].values()),
             default=0)
  if size_on_disk < need:
    raise ValueError(f'{path}: truncated ({size_on_disk} of {need} bytes)')
  return header, size_on_disk


def read_into(fd: int, info: dict, first: int, out: np.ndarray) -> None:
  """Copy steps [first, first + len(out)) of one key into `out` (C-contiguous)."""
  step_bytes = out[0].nbytes if len(out) else 0
  view, pos = memoryview(out).cast('B'), info['offset'] + first * step_bytes
  while len(view):
    n = os.preadv(fd, [view], pos)
    if n <= 0:
      raise OSError(f'short read from replay chunk at byte {pos}')
    view, pos = view[n:], pos + n


def read_arrays(path: str, header: dict, spec, keys, steps: int, size: int) -> dict:
  """Arrays [size, ...] (spec's shapes and dtypes) holding the first `steps` steps of
  `keys` from the chunk file at `path`, whose header is `header`."""
  out = {}
  fd = os.open(path, os.O_RDONLY)
  try:
    for k in keys:
      shape, dtype = spec[k]
      out[k] = np.empty((size,) + tuple(shape), dtype)
      read_into(fd, header['keys'][k], 0, out[k][:steps])
  finally:
    os.close(fd)
  return out


def sync_file(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def sync_dir(directory: str) -> None:
  """fsync a folder, so that renames inside it are durable."""
  sync_file(directory)
