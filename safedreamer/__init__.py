"""SafeDreamer: safe model-based RL with a world model, in JAX."""
from importlib import metadata as _metadata

try:
  __version__ = _metadata.version('safedreamer')
except _metadata.PackageNotFoundError:  # a source tree that was never installed
  __version__ = '0+unknown'
