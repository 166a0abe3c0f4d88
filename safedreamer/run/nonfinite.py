"""Stop a run at the first update whose metrics are not finite.

Every update's metrics reach the host as floats (one fetch per update), so checking
them costs nothing. A NaN or inf in a loss, a gradient norm, the return scale or the
Lagrangian means the agent state it came from is poisoned: the run stops before
anything after it is written (no checkpoint, no metrics row of it), naming the first
non-finite metric in the update's order (`STAGES`: world model, imagination, critics,
actor, Lagrangian; by name within a stage), which is where the NaN came from. `jax.debug_nans` additionally makes JAX re-run the failing computation
op by op to name the primitive that produced the NaN (slow; for debugging).
"""
from __future__ import annotations

import math


class NonFiniteError(RuntimeError):
  """An update produced a NaN or inf: the run stops, nothing after it is written."""


# The update computes these in this order (agents/dreamer_core.py); jit returns its
# metrics sorted by name, so the order is restored here.
STAGES = ('wm/', 'imag/', 'critic/', 'cost_critic/', 'actor/', 'lag/')


def _stage(name: str) -> int:
  return next((i for i, prefix in enumerate(STAGES) if name.startswith(prefix)), len(STAGES))


def check_finite(metrics: dict[str, float], step: int) -> None:
  """Raise NonFiniteError naming the first non-finite value of `metrics`."""
  for name in sorted(metrics, key=lambda n: (_stage(n), n)):
    value = metrics[name]
    if not math.isfinite(value):
      raise NonFiniteError(
          f'update at step {step} gave {name} = {value}; nothing after it was written, the '
          'newest checkpoint is from before it (re-run with --jax.debug_nans true to find '
          'the operation)')
