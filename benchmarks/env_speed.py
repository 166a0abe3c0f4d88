"""Environment throughput: raw Safety-Gymnasium vs our adapter vs EnvBatch.

Counts simulator steps per second with random actions within one episode (at most
990 simulator steps, so no reset falls inside the timing); the time of one reset
(or of starting the batch) is reported separately:

  raw        safety_gymnasium.make(id) stepped directly (6-tuple API)
  adapter    SafetyGymEnv (dict steps, rescaling)
  repeat     make_env with action repeat 4 (what training uses)
  batch1     EnvBatch of 1 env in-process
  batchNp    EnvBatch of N envs in N subprocesses (spawn)
  toy        toy/hazard through make_env (no action repeat)
  vision     (--vision) SafetyGymEnv with obs='vision': front + rear 64x64 renders
  carracing  (--vision) carracing/CarRacing-v2 with its 64x64 image

Usage (keep it short on a shared machine):
  .venv/bin/python benchmarks/env_speed.py --steps 2000 [--task SafetyPointGoal1-v0]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _rate(step_fn, steps: int, repeat: int = 1) -> float:
  start = time.perf_counter()
  for _ in range(steps):
    step_fn()
  return steps * repeat / (time.perf_counter() - start)


def raw(task: str, steps: int) -> dict:
  from safedreamer.envs.safety_gym_compat import import_safety_gymnasium
  env = import_safety_gymnasium().make(task)
  start = time.perf_counter()
  env.reset(seed=0)
  reset_s = time.perf_counter() - start
  rng = np.random.default_rng(0)
  actions = rng.uniform(-1, 1, (steps, env.action_space.shape[0]))
  it = iter(actions)

  return {'steps_per_s': _rate(lambda: env.step(next(it)), steps), 'reset_s': reset_s}


def adapter(task: str, steps: int, repeat: int) -> dict:
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env
  config = Config()
  config.env.action_repeat = repeat
  env = make_env(f'safetygym/{task}', config)
  start = time.perf_counter()
  env.reset()
  reset_s = time.perf_counter() - start
  n = steps // repeat
  actions = np.random.default_rng(0).uniform(-1, 1, (n, env.act_dim)).astype(np.float32)
  it = iter(actions)

  return {'steps_per_s': _rate(lambda: env.step(next(it)), n, repeat), 'reset_s': reset_s}


def batch(task: str, steps: int, num: int, parallel: bool) -> dict:
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env_batch
  config = Config()
  config.env.action_repeat = 1
  start = time.perf_counter()
  envs = make_env_batch(f'safetygym/{task}', config, num_envs=num, parallel=parallel)
  envs.reset()
  startup_s = time.perf_counter() - start
  n = steps // num
  actions = np.random.default_rng(0).uniform(-1, 1, (n, num, envs.act_dim)).astype(np.float32)
  it = iter(actions)
  try:
    return {'steps_per_s': _rate(lambda: envs.step(next(it)), n, num), 'startup_s': startup_s}
  finally:
    envs.close()


def toy(steps: int) -> dict:
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env
  config = Config()
  config.env.action_repeat = 1
  env = make_env('toy/hazard', config)
  env.reset()
  action = np.array([0.5, 0.1], np.float32)

  def step():
    if env.step(action)['is_last']:
      env.reset()
  return {'steps_per_s': _rate(step, steps * 10)}


def images(task: str, steps: int) -> dict:
  from safedreamer.config.schema import Config
  from safedreamer.envs.registry import make_env
  config = Config()
  config.env.action_repeat = 1
  config.env.obs = 'vision'
  out = {}
  for name, full in (('vision', f'safetygym/{task}'), ('carracing', 'carracing/CarRacing-v2')):
    env = make_env(full, config)
    start = time.perf_counter()
    env.reset()
    reset_s = time.perf_counter() - start
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, env.act_dim)).astype(np.float32)
    it = iter(actions)
    out[name] = {'steps_per_s': _rate(lambda: env.step(next(it)), steps), 'reset_s': reset_s}
    env.close()
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--task', default='SafetyPointGoal1-v0')
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--procs', type=int, default=2)
  parser.add_argument('--vision', action='store_true', help='also time image observations')
  args = parser.parse_args()
  args.steps = min(args.steps, 990)
  results = {
      'raw': raw(args.task, args.steps),
      'adapter': adapter(args.task, args.steps, 1),
      'repeat4': adapter(args.task, args.steps, 4),
      'batch1': batch(args.task, args.steps, 1, False),
      f'batch{args.procs}p': batch(args.task, args.steps, args.procs, True),
      'toy': toy(args.steps),
  }
  if args.vision:
    results.update(images(args.task, min(args.steps, 300)))
  for name, result in results.items():
    extras = ', '.join(f'{k} {v:.2f}' for k, v in result.items() if k != 'steps_per_s')
    print(f"{name:>10}: {result['steps_per_s']:9.0f} simulator steps/s  {extras}")
  print(json.dumps({k: {m: round(v, 3) for m, v in r.items()} for k, r in results.items()}))


if __name__ == '__main__':
  main()
