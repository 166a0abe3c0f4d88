"""Fit a fresh world model, alone, to a finished run's replay and measure its cost head.

  python benchmarks/wm_fit.py LOGDIR [--configs bsrp_lag small] [--set KEY VALUE]...
      [--updates 6000] [--eval_every 2000] [--heldout 10000] [--seed 0] [--json OUT]

An offline check of what makes the cost head place costs well, without the cost of a
learning run: the data is fixed (LOGDIR's stream-0 replay), only the world model and
its settings change. The newest `heldout` agent steps are held out. The model (task
from LOGDIR's config, sizes from --configs / --set) trains on uniformly drawn windows
of the rest, with the run's batch shape and optimiser, for `updates` world-model
updates (no actor, no critics). Every `eval_every` updates it prints
`benchmarks/cost_head.py`'s table on 512 held-out windows: 25 posterior steps, then
prior predictions on the recorded actions.

Nothing under LOGDIR is written.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cost_head import cost_table, read_newest, windows  # noqa: E402


def train_windows(data: dict, count: int, length: int, rng) -> dict[str, np.ndarray]:
  """`count` windows of `length` steps from uniformly drawn starts."""
  starts = rng.integers(0, len(data['is_first']) - length + 1, count)
  return {k: np.stack([v[s:s + length] for s in starts]) for k, v in data.items()}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('logdir', type=pathlib.Path)
  ap.add_argument('--configs', nargs='+', default=['bsrp_lag', 'small'])
  ap.add_argument('--set', nargs=2, action='append', default=[], metavar=('KEY', 'VALUE'))
  ap.add_argument('--updates', type=int, default=6000)
  ap.add_argument('--eval_every', type=int, default=2000)
  ap.add_argument('--heldout', type=int, default=10_000, help='newest agent steps held out')
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--json', type=pathlib.Path)
  args = ap.parse_args()

  import jax
  import yaml
  from safedreamer.agents import make_agent
  from safedreamer.agents.dreamer_core import _adam
  from safedreamer.config.load import ConfigError, from_yaml, load_config
  from safedreamer.model.openloop import CONTEXT
  try:
    run = from_yaml((args.logdir / 'config.yaml').read_text(encoding='utf-8'))
    overrides = {'task': run.task, 'env.obs': run.env.obs,
                 'env.action_repeat': run.env.action_repeat, 'seed': args.seed}
    overrides.update({k: yaml.safe_load(v) for k, v in args.set})
    config = load_config(args.configs, overrides)
    data = read_newest(args.logdir / 'replay', 10**9)
  except (OSError, ValueError, ConfigError) as e:
    sys.exit(f'wm_fit: {e}')
  if len(data['is_first']) <= args.heldout + 1000:
    sys.exit(f'wm_fit: {len(data["is_first"])} replayed steps, too few to hold out {args.heldout}')
  train = {k: v[:-args.heldout] for k, v in data.items()}
  test = windows({k: v[-args.heldout:] for k, v in data.items()}, 512, CONTEXT, args.seed)
  steps_keys = ('action', 'reward', 'cost', 'is_first', 'is_last', 'is_terminal')
  obs_space = {k: (v.shape[2:], v.dtype) for k, v in test.items() if k not in steps_keys}
  agent = make_agent(config, obs_space, test['action'].shape[-1])
  wm, m = agent.wm, config.model
  opt = _adam(m.lr, m.eps, m.clip)

  @jax.jit
  def update(params, opt_state, batch, key):
    (_, (metrics, _)), grads = jax.value_and_grad(wm.loss, has_aux=True)(params, batch, key)
    updates, opt_state = opt.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p + u, params, updates), opt_state, metrics

  params = agent.params['wm']
  opt_state = opt.init(params)
  rng, key = np.random.default_rng(args.seed), jax.random.PRNGKey(args.seed)
  shape = (config.replay.batch_size, config.replay.batch_length)
  print(f'{args.logdir}: {len(train["cost"])} training steps ({(train["cost"] > 0).mean():.2%} '
        f'costly), {len(test["cost"])} held-out windows; configs {args.configs} {args.set}; '
        f'batch {shape[0]} x {shape[1]}', flush=True)
  record, start = [], time.time()
  for i in range(1, args.updates + 1):
    key, sub = jax.random.split(key)
    batch = agent._prepare_batch(train_windows(train, shape[0], shape[1], rng))
    params, opt_state, metrics = update(params, opt_state, batch, sub)
    if i % args.eval_every == 0 or i == args.updates:
      agent.state['params']['wm'] = params
      out = agent.report(test)
      rows = cost_table(np.asarray(out['truth']['cost'], np.float64),
                        np.asarray(out['prediction']['cost'], np.float64), out['context'])
      record.append({'updates': i, 'wm_cost_loss': float(metrics['wm/cost']), 'rows': rows})
      print(f'updates {i}  ({time.time() - start:.0f} s)  wm/cost {float(metrics["wm/cost"]):.3f}')
      print(f'  {"part":<12}{"true|>0":>9}{"pred|>0":>9}{"pred|=0":>9}{"pred/true":>10}{"AUC":>7}')
      for r in rows:
        ratio = (r['pred_pos'] * r['n_pos'] + r['pred_neg'] * r['n_neg']) / max(
            r['true_pos'] * r['n_pos'], 1e-9)
        print(f'  {r["part"]:<12}{r["true_pos"]:>9.3f}{r["pred_pos"]:>9.3f}{r["pred_neg"]:>9.4f}'
              f'{ratio:>10.2f}{r["auc"]:>7.3f}', flush=True)
  if args.json:
    args.json.write_text(json.dumps({'logdir': str(args.logdir), 'configs': args.configs,
                                     'set': args.set, 'record': record}, indent=1))


if __name__ == '__main__':
  main()
