"""Where one update's time goes: world model against behaviour, and inside behaviour.

Each part is jitted with the run's XLA options and timed on its own (median of
--reps calls, after one warm call) on the inputs the update gives it: the world-model
loss and gradient on a replay-shaped batch; the behaviour loss and gradient from that
batch's posterior states; imagination alone (forward, and its gradient to the actor);
one head (the reward head) on all imagined states, forward and gradient to the
states; the cost signal likewise. The parts overlap (the behaviour gradient contains
imagination and the heads), so they do not add up to the update.

  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    python benchmarks/update_parts.py                  # small, batch 8 x 32 (the default run)
  python benchmarks/update_parts.py --size tiny --batch 4 16 --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _median_ms(fn, *args, reps):
  """Median wall time of fn(*args) after one warm call (the compile)."""
  import jax
  from planner_speed import median_seconds
  jax.block_until_ready(fn(*args))
  return 1000.0 * median_seconds(lambda: fn(*args), reps)


def measure(size: str, batch_size: int, batch_length: int, reps: int) -> dict[str, float]:
  import jax
  import jax.numpy as jnp

  import update_speed
  from safedreamer.agents.dreamer_core import compiler_options
  options = compiler_options()   # the XLA options the run's own update is compiled with
  jit = lambda f: jax.jit(f, compiler_options=options)
  extra = {'replay.batch_size': batch_size, 'replay.batch_length': batch_length}
  _, agent, batch = update_speed.make_agent(size, 60, 2, extra)
  core, wm, beh = agent.core, agent.core.wm, agent.core.behavior
  state, data = agent.state, agent._prepare_batch(batch)
  params, key = state['params'], jax.random.PRNGKey(0)
  wm_grad = jit(jax.value_and_grad(wm.loss, has_aux=True))
  (_, (_, post)), _ = wm_grad(params['wm'], data, key)
  start = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), post)
  cont = jnp.ones(start['deter'].shape[:1], jnp.float32)
  beh_params = {k: params[k] for k in ['actor'] + beh.critics}
  beh_grad = jit(jax.value_and_grad(beh.loss, has_aux=True))
  imagine = jit(lambda a: beh.imagine(params['wm'], a, start, key)[0])
  feat = imagine(params['actor'])
  weights = jax.random.normal(key, feat.shape)
  imagine_grad = jit(jax.grad(
      lambda a: (beh.imagine(params['wm'], a, start, key)[0] * weights).sum()))
  head = jit(lambda f: wm.reward(params['wm'], f))
  head_grad = jit(jax.grad(lambda f: wm.reward(params['wm'], f).sum()))
  parts = {
      'update': (jit(core._update), state, data),
      'world model: loss + gradient': (wm_grad, params['wm'], data, key),
      'behaviour: loss + gradient': (beh_grad, beh_params, state['slow'], params['wm'], start,
                                     cont, state['retnorm'], state['lag'], key),
      'imagination: forward': (imagine, params['actor']),
      'imagination: gradient to the actor': (imagine_grad, params['actor']),
      'reward head on imagined states: forward': (head, feat),
      'reward head on imagined states: gradient': (head_grad, feat),
  }
  if beh.cost_fn is not None and beh.use_cost_critic:
    parts['cost signal on imagined states: gradient'] = (
        jit(jax.grad(lambda f: beh.cost_fn(params['wm'], f).sum())), feat)
  return {name: _median_ms(fn, *args, reps=reps) for name, (fn, *args) in parts.items()}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', default='small', help='a size of update_speed.SIZES')
  parser.add_argument('--batch', type=int, nargs=2, default=[8, 32], metavar=('B', 'T'))
  parser.add_argument('--reps', type=int, default=20)
  parser.add_argument('--json', help='also write the figures here')
  args = parser.parse_args(argv)
  load = os.getloadavg()[0]
  parts = measure(args.size, *args.batch, args.reps)
  total = parts['update']
  print(f'{args.size}, batch {args.batch[0]} x {args.batch[1]}, XLA_FLAGS='
        f'{os.environ.get("XLA_FLAGS", "")!r}, load average at start {load:.1f}')
  for name, ms in parts.items():
    print(f'  {name:45s} {ms:9.1f} ms  {100 * ms / total:5.1f}% of the update')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'size': args.size, 'batch': args.batch, 'load': load, 'ms': parts}, f, indent=1)


if __name__ == '__main__':
  main()
