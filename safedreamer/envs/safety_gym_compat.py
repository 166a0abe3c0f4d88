"""The one place that makes Safety-Gymnasium 1.0.0 importable on Python 3.11
(and that imports Gymnasium quietly).

Safety-Gymnasium 1.0.0 declares dataclass fields whose class-level default is a numpy
array (e.g. `color: np.array = COLOR['hazard']` in `safety_gymnasium/assets`). Python
3.11's `dataclasses` rejects such defaults ("mutable default <class 'numpy.ndarray'>
for field color is not allowed"), so `import safety_gymnasium` fails.

`import_safety_gymnasium()` imports the package while `dataclasses.dataclass` is
temporarily replaced by a wrapper that turns every numpy-array class attribute that is
an annotated field into `dataclasses.field(default_factory=<copy of the array>)` —
each instance gets its own copy, which is what the package's authors meant. The
original `dataclasses.dataclass` is restored afterwards, even if the import fails.
Installed files are never edited.

It also silences the import-time chatter of the package's optional dependencies,
at its source: gymnasium and gymnasium-robotics print, on import, whatever the
`farama_notifications` package lists for their installed version (gymnasium-robotics
1.2.2: a notice about the Adroit environments' rewards, on stderr). Importing this
module empties that list, so whichever path later imports gymnasium or its plugins
(`gym.make` loads them lazily) prints nothing. Errors still propagate as exceptions.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import sys
import warnings
from types import ModuleType

import numpy as np


def silence_notices() -> None:
  """Empty `farama_notifications.notifications`, the table of version notices that
  gymnasium and gymnasium-robotics print to stderr when imported."""
  try:
    from farama_notifications import notifications  # pylint: disable=import-outside-toplevel
  except ImportError:
    return
  notifications.clear()


silence_notices()


def _array_defaults_to_factories(cls: type) -> type:
  """Replace annotated numpy-array class attributes of `cls` by default factories."""
  for name in cls.__dict__.get('__annotations__', {}):
    value = cls.__dict__.get(name)
    if isinstance(value, np.ndarray):
      setattr(cls, name, dataclasses.field(default_factory=functools.partial(np.copy, value)))
  return cls


def _tolerant_dataclass(original):
  """A drop-in for `dataclasses.dataclass` that accepts numpy-array defaults."""

  @functools.wraps(original)
  def dataclass(cls=None, /, **kwargs):
    def wrap(c):
      return original(_array_defaults_to_factories(c), **kwargs)
    return wrap if cls is None else wrap(cls)

  return dataclass


@contextlib.contextmanager
def tolerant_dataclasses():
  """Context in which `dataclasses.dataclass` accepts numpy-array field defaults."""
  original = dataclasses.dataclass
  dataclasses.dataclass = _tolerant_dataclass(original)
  try:
    yield
  finally:
    dataclasses.dataclass = original


def import_safety_gymnasium() -> ModuleType:
  """Import and return `safety_gymnasium` (works on Python 3.10 and 3.11).

  Idempotent: later calls return the already-imported module.
  """
  module = sys.modules.get('safety_gymnasium')
  if module is not None and hasattr(module, 'make'):
    return module
  # A failed earlier attempt may have left half-initialised submodules behind.
  for name in [n for n in sys.modules if n == 'safety_gymnasium' or n.startswith('safety_gymnasium.')]:
    del sys.modules[name]
  with tolerant_dataclasses(), warnings.catch_warnings(), \
      contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
    warnings.simplefilter('ignore')
    return importlib.import_module('safety_gymnasium')


def make_quietly(task_id: str):
  """`safety_gymnasium.make(task_id)` without the package's NumPy deprecation warnings."""
  sg = import_safety_gymnasium()
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    return sg.make(task_id)


def import_gymnasium() -> ModuleType:
  """Import and return `gymnasium` without the notices its plugins print on import
  (gymnasium-robotics 1.2.2 writes an Adroit notice to stderr)."""
  module = sys.modules.get('gymnasium')
  if module is not None:
    return module
  with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
    return importlib.import_module('gymnasium')


class _Discard:
  def write(self, text):
    return len(text)

  def flush(self):
    pass
