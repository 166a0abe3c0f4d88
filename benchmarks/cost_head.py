"""How well a trained world model's cost head predicts cost on the run's own newest data.

  python benchmarks/cost_head.py LOGDIR [--windows 512] [--recent 10000] [--json OUT]

Loads LOGDIR's newest checkpoint and config, cuts windows of 64 agent steps from the
newest `recent` steps of the replay, and runs the model's open-loop report on them:
25 steps of posterior context, then prior predictions on the recorded actions alone
(what imagination sees). For the context and for the open-loop steps 1-5, 6-15 and
16-39 ahead it prints the mean predicted cost on steps whose true cost is > 0 and on
the others, the ROC AUC of the prediction for "cost > 0", and precision / recall at
a prediction of 0.5. A head that ranks hazard steps well (AUC near 1) can still be
useless to the actor if its predictions on them are a small fraction of the truth
while the many safe steps carry a background of predicted cost.

With `env.obs coords` (a coordinate layout) it prints the same table for the cost
counted from the decoded coordinates (x action_repeat, what `cost_source obs`
imagines) and, as its ceiling, for the count on the true observations.

Nothing under LOGDIR is written: replay chunk files are read directly.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np
from scipy.stats import rankdata

LENGTH = 64
PARTS = (('context', -10**9, 0), ('ahead 1-5', 1, 5), ('ahead 6-15', 6, 15),
         ('ahead 16-39', 16, 39))


def auc(score, label) -> float:
  """ROC AUC of `score` for the boolean `label` (Mann-Whitney U, ties get mean ranks)."""
  score, label = np.asarray(score, np.float64).ravel(), np.asarray(label, bool).ravel()
  npos, nneg = int(label.sum()), int((~label).sum())
  if npos == 0 or nneg == 0:
    return float('nan')
  ranks = rankdata(score)
  return float((ranks[label].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def cost_table(true, pred, context: int, threshold: float = 0.5) -> list[dict]:
  """One row per part of the window (see PARTS) for [B, T] true and predicted costs."""
  ahead = np.arange(true.shape[1]) - context + 1        # 1 = first open-loop step
  rows = []
  for name, lo, hi in PARTS:
    cols = (ahead >= lo) & (ahead <= hi)
    t, p = true[:, cols].ravel(), pred[:, cols].ravel()
    pos, flag = t > 0, p >= threshold
    rows.append({
        'part': name, 'n_pos': int(pos.sum()), 'n_neg': int((~pos).sum()),
        'true_mean': float(t.mean()) if t.size else float('nan'),
        'pred_pos': float(p[pos].mean()) if pos.any() else float('nan'),
        'true_pos': float(t[pos].mean()) if pos.any() else float('nan'),
        'pred_neg': float(p[~pos].mean()) if (~pos).any() else float('nan'),
        'auc': auc(p, pos),
        'precision': float((flag & pos).sum() / flag.sum()) if flag.any() else float('nan'),
        'recall': float((flag & pos).sum() / pos.sum()) if pos.any() else float('nan'),
    })
  return rows


def read_newest(replay_dir: pathlib.Path, steps: int) -> dict[str, np.ndarray]:
  """The newest `steps` agent steps of stream 0, read-only from its chunk files."""
  from safedreamer.replay import chunkfile
  found = sorted(p for p in (chunkfile.parse_name(f) for f in os.listdir(replay_dir))
                 if p is not None and p[0] == 0)
  parts, have = [], 0
  for _, index in reversed(found):              # newest first, until enough steps
    path = replay_dir / chunkfile.chunk_name(0, index)
    header, _ = chunkfile.read_header(str(path))
    spec = {k: (info['shape'], np.dtype(info['dtype'])) for k, info in header['keys'].items()}
    parts.append(chunkfile.read_arrays(str(path), header, spec, spec, header['length'],
                                       header['length']))
    have += header['length']
    if have >= steps:
      break
  if not parts:
    raise FileNotFoundError(f'no replay chunks in {replay_dir}')
  parts.reverse()
  return {k: np.concatenate([p[k] for p in parts])[-steps:] for k in parts[0]}


def windows(data: dict, count: int, context: int, seed: int) -> dict[str, np.ndarray]:
  """`count` windows of LENGTH steps; an episode may start inside the context (the
  posterior resets there) but not in the open-loop part, where nothing resets."""
  n = len(data['is_first'])
  starts = [s for s in range(n - LENGTH + 1) if not data['is_first'][s + context:s + LENGTH].any()]
  if not starts:
    raise ValueError(f'no window of {LENGTH} steps without an episode start after step {context}')
  pick = np.sort(np.random.default_rng(seed).choice(starts, min(count, len(starts)), replace=False))
  return {k: np.stack([v[s:s + LENGTH] for s in pick]) for k, v in data.items()}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('logdir', type=pathlib.Path)
  ap.add_argument('--windows', type=int, default=512)
  ap.add_argument('--recent', type=int, default=10_000, help='newest agent steps to use')
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--json', type=pathlib.Path)
  args = ap.parse_args()

  from safedreamer.agents import make_agent
  from safedreamer.agents.dreamer import METHODS
  from safedreamer.config.load import ConfigError, from_yaml
  from safedreamer.model.openloop import CONTEXT
  from safedreamer.run.checkpoint import CheckpointError, load_checkpoint
  try:
    config = from_yaml((args.logdir / 'config.yaml').read_text(encoding='utf-8'))
    if config.method not in METHODS:
      sys.exit(f'cost_head: method {config.method} has no world model')
    step, state, meta = load_checkpoint(args.logdir)
    data = read_newest(args.logdir / 'replay', args.recent)
    batch = windows(data, args.windows, CONTEXT, args.seed)
  except (OSError, ValueError, ConfigError, CheckpointError) as e:
    sys.exit(f'cost_head: {e}')
  steps_keys = ('action', 'reward', 'cost', 'is_first', 'is_last', 'is_terminal')
  obs_space = {k: (v.shape[2:], v.dtype) for k, v in batch.items() if k not in steps_keys}
  agent = make_agent(config, obs_space, batch['action'].shape[-1])
  agent.load(state['agent'])
  out = agent.report(batch)
  true = np.asarray(out['truth']['cost'], np.float64)
  pred = np.asarray(out['prediction']['cost'], np.float64)
  rows = cost_table(true, pred, out['context'])

  print(f'{args.logdir}: checkpoint {step} (agent step {meta["counters"]["agent_steps"]}), '
        f'{len(true)} windows from the newest {len(data["cost"])} agent steps, '
        f'{(data["cost"] > 0).mean():.2%} of them with cost > 0')
  tables = {'cost head': rows}
  if config.env.obs == 'coords':
    count = coords_counter(config)
    tables['decoded coords'] = cost_table(true, count(out['prediction']['vector']), out['context'])
    tables['true coords'] = cost_table(true, count(out['truth']['vector']), out['context'])
  for name, table in tables.items():
    print(f'{name:<12}{"n>0":>6}{"n=0":>7}{"true|>0":>9}{"pred|>0":>9}{"pred|=0":>9}'
          f'{"AUC":>7}{"prec":>7}{"recall":>7}')
    for r in table:
      print(f'{r["part"]:<12}{r["n_pos"]:>6}{r["n_neg"]:>7}{r["true_pos"]:>9.3f}'
            f'{r["pred_pos"]:>9.3f}{r["pred_neg"]:>9.4f}{r["auc"]:>7.3f}{r["precision"]:>7.3f}'
            f'{r["recall"]:>7.3f}')
  if args.json:
    args.json.write_text(json.dumps({'logdir': str(args.logdir), 'step': step, 'rows': rows,
                                     'tables': tables}, indent=1), encoding='utf-8')


def coords_counter(config):
  """vectors [..., D] -> cost counted from coordinates x action_repeat, with the
  layout of the run's task (asked from one environment)."""
  from safedreamer.behavior import obs_cost
  from safedreamer.envs import coords
  from safedreamer.envs.registry import make_env_batch
  envs = make_env_batch(config.task, config, num_envs=1, parallel=False)
  try:
    spec = obs_cost.coords_spec(envs, config.task)
  finally:
    envs.close()
  repeat = config.env.action_repeat
  return lambda vec: repeat * coords.cost_from_coords(
      np.asarray(vec, np.float32), spec.layout, spec.sizes, spec.footprint)


if __name__ == '__main__':
  main()
