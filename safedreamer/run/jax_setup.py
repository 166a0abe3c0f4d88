"""JAX settings made before JAX compiles anything: host devices for `--jax.devices N`
on the CPU, `jax.debug_nans`, and the persistent compilation cache.

The cache keeps XLA executables on disk, keyed by the computation, the compile
options, the JAX/jaxlib version and the device, so the second start of the same
run (a resume, the next seed of a sweep, the next test session) loads them
instead of compiling. Stale or foreign entries are never used (the key differs);
an unreadable entry is recompiled. The folder is `jax.compile_cache`, else
$SAFEDREAMER_JAX_CACHE, else $XDG_CACHE_HOME/safedreamer/jax (~/.cache/...);
'off' disables it. It is capped at MAX_BYTES, least recently used entries first.
"""
from __future__ import annotations

import os
import pathlib

ENV_VAR = 'SAFEDREAMER_JAX_CACHE'
MAX_BYTES = 4 << 30            # LRU eviction beyond 4 GiB (needs the filelock package)
MIN_COMPILE_SECS = 0.2         # JAX's default (1 s) skips most of a small model's jits
HOST_DEVICES_FLAG = '--xla_force_host_platform_device_count'


def cache_dir(setting: str = '', environ=os.environ) -> pathlib.Path | None:
  """The cache folder for a `jax.compile_cache` value, or None when it is off."""
  value = setting or environ.get(ENV_VAR, '')
  if value.lower() == 'off':
    return None
  if value:
    return pathlib.Path(value).expanduser()
  base = environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'safedreamer' / 'jax'


def with_host_devices(xla_flags: str, devices: int) -> str:
  """XLA_FLAGS asking the CPU backend for `devices` devices (kept if already asked).
  Put first: XLA stops reading flags at a word without '--' (such as the common
  'intra_op_parallelism_threads=1')."""
  if devices <= 1 or HOST_DEVICES_FLAG in xla_flags:
    return xla_flags
  return f'{HOST_DEVICES_FLAG}={devices} {xla_flags}'.strip()


def enable_compile_cache(path: pathlib.Path | None) -> pathlib.Path | None:
  """Point JAX's persistent cache at `path` (None: leave it off). Call before the
  first compile: JAX opens the cache once per process."""
  if path is None:
    return None
  import jax
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None  # a read-only home: run without the cache rather than fail
  jax.config.update('jax_compilation_cache_dir', str(path))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_COMPILE_SECS)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  jax.config.update('jax_compilation_cache_max_size', MAX_BYTES)
  return path


def configure(config, environ=os.environ) -> pathlib.Path | None:
  """Before JAX starts: host devices for `jax.devices` on the CPU (XLA_FLAGS), then
  the compile cache. Returns the cache folder (None when off)."""
  if config.jax.platform == 'cpu' and config.jax.devices > 1:
    environ['XLA_FLAGS'] = with_host_devices(environ.get('XLA_FLAGS', ''), config.jax.devices)
  if config.jax.devices > 1:  # too few devices: one line, exit 2, before anything is written
    from safedreamer.agents.sharding import make_mesh
    make_mesh(config.jax.devices)
  if config.jax.debug_nans:   # JAX re-runs a computation that made a NaN op by op
    import jax
    jax.config.update('jax_debug_nans', True)
  return enable_compile_cache(cache_dir(config.jax.compile_cache, environ))
