"""Environment steps per second: the bare environment versus through the driver.

  python benchmarks/driver_speed.py [--task safetygym/SafetyPointGoal1-v0] [--obs lidar]
      [--steps 20000] [--num_envs 1] [--parallel]

`env loop`: our environment (adapter, action repeat, rendering for vision) stepped in
a tight loop with random actions and its own resets. `driver`: the same environments
inside the training driver with a random agent, every step written to a disk-backed
replay, as in `safedreamer train` during prefill. Both count simulator steps.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def env_loop(config, steps: int) -> float:
  from safedreamer.envs.registry import make_env
  env = make_env(config.task, config)
  rng = np.random.default_rng(0)
  env.reset(seed=0)
  done, start = 0, time.perf_counter()
  while done < steps:
    step = env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32))
    done += config.env.action_repeat
    if step['is_last']:
      env.reset()
  rate = done / (time.perf_counter() - start)
  env.close()
  return rate


def driver_loop(config, steps: int) -> float:
  from safedreamer.agents.random import RandomAgent
  from safedreamer.envs.registry import make_env_batch
  from safedreamer.replay.replay import Replay
  from safedreamer.run.driver import Driver
  envs = make_env_batch(config.task, config)
  agent = RandomAgent(envs.act_dim)
  with tempfile.TemporaryDirectory() as folder:
    replay = Replay(folder, capacity=10**6, chunk=config.replay.chunk)
    driver = Driver(envs, config.env.action_repeat)
    driver.on_step.append(lambda step, i: replay.add(step, stream=i))
    driver.reset(agent, list(range(len(envs))))
    done, start = 0, time.perf_counter()
    while done < steps:
      done += driver.step(agent, 'train')
    rate = done / (time.perf_counter() - start)
    replay.close()
  envs.close()
  return rate


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--task', default='safetygym/SafetyPointGoal1-v0')
  parser.add_argument('--obs', default='lidar')
  parser.add_argument('--steps', type=int, default=20000)
  parser.add_argument('--num_envs', type=int, default=1)
  parser.add_argument('--parallel', action='store_true')
  parser.add_argument('--action_repeat', type=int, default=4)
  args = parser.parse_args(argv)
  from safedreamer.config.load import load_config
  config = load_config([], {'task': args.task, 'env.obs': args.obs, 'run.num_envs': args.num_envs,
                            'run.parallel': args.parallel, 'env.action_repeat': args.action_repeat})
  raw = env_loop(config, args.steps)
  through = driver_loop(config, args.steps)
  result = {'task': args.task, 'obs': args.obs, 'num_envs': args.num_envs,
            'parallel': args.parallel, 'env_loop_sps': round(raw), 'driver_sps': round(through),
            'driver_over_env': round(through / raw, 3)}
  print(json.dumps(result))
  return result


if __name__ == '__main__':
  main()
