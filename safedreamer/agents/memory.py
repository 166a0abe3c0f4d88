"""Keep freed memory in the process instead of handing it back to the OS (glibc).

XLA:CPU allocates one temporary buffer per execution of a compiled program (about
1.3 GB for the `small` update) and frees it afterwards. glibc serves such blocks
with mmap and returns them with munmap, so every update page-faults its whole
working set back in (~325k faults and ~0.5 s of kernel time per update measured
here, worse inside VMs). With one malloc arena, no mmap and no trimming, freed
blocks stay mapped and the next update reuses them without faults.

It only works if applied before the XLA worker threads make their first
allocation (they keep the arena they started with), i.e. before the first JAX
computation in the process; `keep_freed_memory()` is idempotent and a no-op where
it does not apply (non-glibc platforms). The environment variables
MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 have the
same effect from outside the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_applied = None


def keep_freed_memory() -> bool:
  """Configure glibc malloc as above; returns whether it was applied."""
  global _applied
  if _applied is None:
    _applied = False
    if sys.platform.startswith('linux'):
      try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        _applied = bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
                        and libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
      except (OSError, AttributeError):
        _applied = False
  return _applied
