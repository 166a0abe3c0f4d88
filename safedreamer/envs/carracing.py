"""`carracing/CarRacing-v2`: Gymnasium's Box2D car racing with a wheel-skid cost.

- Actions: continuous steer in [-1, 1], gas in [0, 1], brake in [0, 1]; the agent's
  [-1, 1]^3 actions are rescaled onto these bounds.
- Observation 'image': the 96x96 top-down state frame, resized to `image_size`
  (64 by default), uint8.
- Reward and episode end as in Gymnasium (-0.1 per frame, +1000/N per new track tile;
  termination when every tile is visited or the car leaves the playfield; truncation
  after 1000 steps).
- Cost: 1 on every step in which at least one wheel skids. Gymnasium's
  `car_dynamics.Car.step` marks a wheel as skidding (it starts or extends its skid
  trace: `wheel.skid_start` or `wheel.skid_particle` is set) when the tyre force
  exceeds twice the friction limit of the surface under it (road, or grass at 0.6 of
  it); the force is then clipped to the limit. Both flags are cleared on a step
  without skidding, so after a step they say whether the wheel skidded in it.
  Wheel spin at full gas from standstill, locked wheels under hard braking and hard
  steering at speed all skid; a random policy skids on ~17% of steps.

Needs `box2d==2.3.10` and `pygame==2.6.1` (the observation is drawn with pygame;
no display is needed: SDL's dummy video driver is selected).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from safedreamer.envs.base import CostEnv, Step, make_step
from safedreamer.envs.safety_gym_compat import import_gymnasium
from safedreamer.envs.wrappers import rescale_action


def wheels_skidding(car) -> int:
  """How many wheels of a Gymnasium `car_dynamics.Car` skidded in the last step."""
  return sum(w.skid_start is not None or w.skid_particle is not None for w in car.wheels)


class CarRacingSkid(CostEnv):
  """CarRacing-v2 as a CostEnv (see the module docstring)."""

  def __init__(self, image_size: int = 64, seed: int | None = None,
               episode_length: int = 1000):
    os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')
    os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
    gym = import_gymnasium()
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')  # pygame's pkg_resources deprecation notice
      try:
        self._env = gym.make('CarRacing-v2', render_mode='rgb_array',
                             max_episode_steps=episode_length)
      except gym.error.DependencyNotInstalled as error:
        raise ImportError(f'carracing needs box2d==2.3.10 and pygame==2.6.1: {error}') from None
    self._car_env = self._env.unwrapped
    space = self._env.action_space
    self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
    self.act_dim = int(space.shape[0])
    self.image_size = int(image_size)
    self.obs_space = {'image': ((self.image_size, self.image_size, 3), np.uint8)}
    self.episode_length = int(episode_length)
    self._seed = seed

  def reset(self, seed: int | None = None) -> Step:
    if seed is None:
      seed, self._seed = self._seed, None
    obs, _ = self._env.reset(seed=seed)
    return make_step({'image': self._resize(obs)}, is_first=True)

  def step(self, action: np.ndarray) -> Step:
    action = rescale_action(action, self._low, self._high).astype(np.float32)
    obs, reward, terminated, truncated, _ = self._env.step(action)
    cost = float(wheels_skidding(self._car_env.car) > 0)
    return make_step({'image': self._resize(obs)}, reward, cost, is_last=truncated,
                     is_terminal=terminated)

  def render(self) -> np.ndarray:
    """The 600x400 view of Gymnasium's 'rgb_array' mode."""
    return self._env.render()

  def close(self) -> None:
    self._env.close()

  def _resize(self, image: np.ndarray) -> np.ndarray:
    if image.shape[0] == self.image_size and image.shape[1] == self.image_size:
      return np.asarray(image, np.uint8)
    from PIL import Image  # pylint: disable=import-outside-toplevel
    pil = Image.fromarray(np.asarray(image, np.uint8))
    return np.asarray(pil.resize((self.image_size, self.image_size), Image.BILINEAR), np.uint8)
