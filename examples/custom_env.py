"""Plug your own cost-carrying environment into safedreamer.

Any Gymnasium env works if its `step` reports the safety cost in `info["cost"]`
(missing -> 0) and its action space is a Box: safedreamer rescales the agent's
[-1, 1] actions onto the Box, puts Box observations under 'vector' and uint8 image
observations under 'image'. Register it under a 'SUITE/ID' name:

    from safedreamer.envs import register
    register('mysuite/PuddleWorld-v0', PuddleWorld)           # one task
    register('mysuite', lambda task_id, seed: make(task_id))  # a whole suite

The factory receives whichever of `task_id`, `config`, `seed` it declares and may
return a `gymnasium.Env` or a `safedreamer.envs.CostEnv`.

Run this file to step the env through `make_env` and through an `EnvBatch` of two
subprocesses:

    .venv/bin/python examples/custom_env.py

Train on it from the command line: name this module in SAFEDREAMER_ENV_MODULES so
the registry imports it (in subprocess workers too):

    PYTHONPATH=examples SAFEDREAMER_ENV_MODULES=custom_env \\
        safedreamer train --task mysuite/PuddleWorld-v0 --env.action_repeat 1

or from Python: `python examples/custom_env.py --train [more CLI arguments]`.
"""
from __future__ import annotations

import sys

import numpy as np

from safedreamer.envs import make_env, make_env_batch, register
from safedreamer.envs.safety_gym_compat import import_gymnasium

gymnasium = import_gymnasium()  # = `import gymnasium`, minus a plugin's import notice


class PuddleWorld(gymnasium.Env):
  """Walk from (0, 0) to (1, 1) in 50 steps; standing in the puddle costs 1.

  Actions: velocity in [-0.1, 0.1]^2. Reward: progress towards the goal. The puddle
  is a disc of radius 0.25 around (0.5, 0.5), right on the diagonal.
  """

  metadata = {'render_modes': []}

  def __init__(self, max_steps: int = 50):
    self.action_space = gymnasium.spaces.Box(-0.1, 0.1, (2,), np.float32)
    self.observation_space = gymnasium.spaces.Box(-2, 2, (4,), np.float32)
    self.goal, self.puddle, self.radius = np.ones(2), np.full(2, 0.5), 0.25
    self.max_episode_steps = max_steps  # tells safedreamer the episode length
    self.pos, self.t = np.zeros(2), 0

  def _obs(self):
    return np.concatenate([self.goal - self.pos, self.puddle - self.pos]).astype(np.float32)

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.pos, self.t = self.np_random.uniform(-0.05, 0.05, 2), 0
    return self._obs(), {}

  def step(self, action):
    before = np.linalg.norm(self.goal - self.pos)
    self.pos = np.clip(self.pos + np.clip(action, -0.1, 0.1), -2, 2)
    self.t += 1
    reward = before - np.linalg.norm(self.goal - self.pos)
    cost = float(np.linalg.norm(self.pos - self.puddle) < self.radius)
    return self._obs(), float(reward), False, self.t >= self.max_episode_steps, {'cost': cost}


register('mysuite/PuddleWorld-v0', PuddleWorld)


def _demo() -> None:
  from safedreamer.config.schema import Config  # pylint: disable=import-outside-toplevel
  config = Config(task='mysuite/PuddleWorld-v0')
  config.env.action_repeat = 1
  env = make_env(config.task, config)
  step, ret, cost = env.reset(), 0.0, 0.0
  while not step['is_last']:  # head straight for the goal, through the puddle
    step = env.step(np.clip(10 * step['vector'][:2], -1, 1))
    ret, cost = ret + step['reward'], cost + step['cost']
  print(f'make_env: obs {env.obs_space}, {env.episode_length} steps, '
        f'straight-line return {ret:.2f}, cost {cost:.0f}')
  config.run.num_envs = 2
  batch = make_env_batch(config.task, config, parallel=True)
  try:
    steps = batch.reset()
    for _ in range(10):
      steps = batch.step(np.random.uniform(-1, 1, (2, batch.act_dim)).astype(np.float32))
    print(f"EnvBatch (2 subprocesses): vector {steps['vector'].shape}, cost {steps['cost']}")
  finally:
    batch.close()


def _train(args: list[str]) -> None:
  try:
    from safedreamer.cli import main  # pylint: disable=import-outside-toplevel
  except ImportError:
    sys.exit('safedreamer.cli is not available in this install')
  sys.argv = ['safedreamer', 'train', '--task', 'mysuite/PuddleWorld-v0', *args]
  main()


if __name__ == '__main__':
  if '--train' in sys.argv:
    _train([a for a in sys.argv[1:] if a != '--train'])
  else:
    _demo()
