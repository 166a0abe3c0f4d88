"""Data-parallel updates over several devices (`jax.devices N`), with jax.sharding.

The agent state (parameters, optimiser and Lagrangian states, RNG key) is
replicated on a one-axis mesh of N devices, and each training batch [B, T, ...] is
split along B, B/N sequences per device. The update itself is the single-device
program: XLA's SPMD partitioner (GSPMD) inserts the all-reduces that the batch
means and the gradients need, so parameters stay identical on every device and the
result equals the single-device update up to the order of float sums (random
draws do not depend on the split: JAX's threefry is partitionable). The
imagination that trains actor and critics starts from every posterior state of the
batch, so it is split the same way.

When it helps: when one update is large enough to keep several devices busy (the
`paper` and vision presets on GPUs, long batches). For `tiny`/`small` models the
all-reduces cost more than they save; running several trials per GPU
(`sweep --gpus-per-trial 0.25`) is then the better use of the hardware.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from safedreamer.config.load import ConfigError

AXIS = 'data'


class DeviceError(ConfigError):
  """Too few devices, or a batch that does not split evenly (one line, exit 2)."""


def make_mesh(n: int, devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  if n > len(devices):
    platform = devices[0].platform if devices else 'none'
    hint = (' (on the CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N)'
            if platform == 'cpu' else '')
    raise DeviceError(f'jax.devices {n} asks for more devices than the {len(devices)} '
                      f'{platform} device(s) JAX sees{hint}')
  return Mesh(np.array(devices[:n]), (AXIS,))


def check_batch(batch_size: int, n: int) -> None:
  if batch_size % n:
    raise DeviceError(f'replay.batch_size {batch_size} does not split across jax.devices {n}; '
                      'use a multiple of it')


class DataParallel:
  """Jitted init/update functions whose state is replicated and whose batch is split."""

  def __init__(self, n: int, devices=None):
    self.n = n
    self.mesh = make_mesh(n, devices)
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self.split = NamedSharding(self.mesh, PartitionSpec(AXIS))

  def put_state(self, state):
    """The state replicated on the mesh (arrays already there are passed through)."""
    return jax.device_put(state, self.replicated)

  def put_batch(self, batch):
    leading = {np.shape(x)[0] for x in jax.tree.leaves(batch)}
    for size in leading:
      check_batch(size, self.n)
    return jax.device_put(batch, self.split)

  def init_state(self, fn, **jit_kwargs):
    return jax.jit(fn, out_shardings=self.replicated, **jit_kwargs)

  def update(self, fn, **jit_kwargs):
    """fn(state, batch) -> (state, metrics), with state donated and replicated."""
    compiled = jax.jit(fn, in_shardings=(self.replicated, self.split),
                       out_shardings=(self.replicated, self.replicated), donate_argnums=0,
                       **jit_kwargs)

    def update(state, batch):
      return compiled(self.put_state(state), self.put_batch(batch))
    update.compiled = compiled
    return update


def data_parallel(n: int, init_state_fn, update_fn, compiler_options: dict):
  """(init_state, update) for DreamerCore on `n` devices."""
  dp = DataParallel(n)
  return (dp.init_state(init_state_fn, compiler_options=compiler_options),
          dp.update(update_fn, compiler_options=compiler_options))
