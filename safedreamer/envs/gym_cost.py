"""Adapter for any Gymnasium env that reports its cost in `info["cost"]`.

- Cost: `info["cost"]` of each step (missing -> 0).
- Actions: a Box action space; the agent's [-1, 1] actions are rescaled onto its
  bounds. Other action spaces are refused with a one-line error.
- Observations: a Box of uint8 with 2 or 3 dimensions is an image -> key 'image'
  ([H, W, C] uint8, resized to `image_size` if given); any other Box is flattened to
  float32 -> key 'vector'. Dict spaces are split the same way: images keep their own
  key ('image' if there is only one image), everything else (Box, Discrete as
  one-hot) is concatenated into 'vector' in the space's key order.
- Episodes: `terminated` -> is_terminal, `truncated` -> is_last only.
  `episode_length` is the env's `spec.max_episode_steps`, else its attribute
  `max_episode_steps`, else the argument (used by planners only).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from safedreamer.envs.base import CostEnv, Step, make_step
from safedreamer.envs.safety_gym_compat import import_gymnasium
from safedreamer.envs.wrappers import rescale_action


def _is_image(space) -> bool:
  gymnasium = import_gymnasium()
  return (isinstance(space, gymnasium.spaces.Box) and space.dtype == np.uint8
          and len(space.shape) in (2, 3) and min(space.shape[:2]) >= 8)


class GymCostEnv(CostEnv):
  """Wrap a `gymnasium.Env` (or an id for `gymnasium.make`) as a CostEnv.

  Args:
    env: the env, or a registered Gymnasium id.
    image_size: resize image observations to [image_size, image_size] (None: keep).
    seed: seed of the first reset (later resets without a seed continue the env's
      own generator, as in Gymnasium).
    episode_length: used when the env's spec has no `max_episode_steps`.
    make_kwargs: passed to `gymnasium.make` when `env` is an id.
  """

  def __init__(self, env, image_size: int | None = None, seed: int | None = None,
               episode_length: int = 1000, make_kwargs: dict[str, Any] | None = None):
    gymnasium = import_gymnasium()
    if isinstance(env, str):
      env = gymnasium.make(env, **(make_kwargs or {}))
    self.env = env
    self.image_size = image_size
    self._seed = seed
    act = env.action_space
    if not isinstance(act, gymnasium.spaces.Box):
      raise ValueError(f'{_name(env)}: only Box (continuous) action spaces are supported, '
                       f'got {type(act).__name__}')
    self._low, self._high = act.low.astype(np.float64), act.high.astype(np.float64)
    self._act_shape = act.shape
    self.act_dim = int(np.prod(act.shape))
    spec = getattr(env, 'spec', None)
    steps = getattr(spec, 'max_episode_steps', None) or getattr(env, 'max_episode_steps', None)
    self.episode_length = int(steps) if steps else int(episode_length)
    space = env.observation_space
    subspaces = dict(space.spaces) if isinstance(space, gymnasium.spaces.Dict) else {None: space}
    images = [k for k, s in subspaces.items() if _is_image(s)]
    self._image_keys = {k: ('image' if len(images) == 1 or k is None else f'image_{k}') for k in images}
    self._vector_keys = [k for k in subspaces if k not in self._image_keys]
    self._spaces = subspaces
    self.obs_space = {}
    for key, name in self._image_keys.items():
      shape = subspaces[key].shape
      h, w = (image_size, image_size) if image_size else shape[:2]
      self.obs_space[name] = ((h, w, shape[2] if len(shape) == 3 else 1), np.uint8)
    if self._vector_keys:
      size = sum(int(gymnasium.spaces.flatdim(subspaces[k])) for k in self._vector_keys)
      self.obs_space['vector'] = ((size,), np.float32)

  def reset(self, seed: int | None = None) -> Step:
    if seed is None:
      seed, self._seed = self._seed, None
    else:
      self._seed = None
    obs, _ = self.env.reset(seed=seed)
    return make_step(self._convert(obs), is_first=True)

  def step(self, action: np.ndarray) -> Step:
    action = rescale_action(np.reshape(action, self._act_shape), self._low, self._high)
    action = action.astype(self.env.action_space.dtype)
    obs, reward, terminated, truncated, info = self.env.step(action)
    cost = float(info.get('cost', 0.0)) if isinstance(info, dict) else 0.0
    return make_step(self._convert(obs), reward, cost, is_last=truncated, is_terminal=terminated)

  def render(self):
    if getattr(self.env, 'render_mode', None) == 'rgb_array':
      return self.env.render()
    return None

  def close(self) -> None:
    self.env.close()

  def _convert(self, obs) -> dict[str, np.ndarray]:
    gymnasium = import_gymnasium()
    parts = obs if None not in self._spaces else {None: obs}
    out = {}
    for key, name in self._image_keys.items():
      out[name] = self._image(np.asarray(parts[key], np.uint8))
    if self._vector_keys:
      out['vector'] = np.concatenate([
          np.asarray(gymnasium.spaces.flatten(self._spaces[k], parts[k]), np.float32).ravel()
          for k in self._vector_keys])
    return out

  def _image(self, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
      image = image[:, :, None]
    size = self.image_size
    if size and image.shape[:2] != (size, size):
      from PIL import Image  # pylint: disable=import-outside-toplevel
      channels = image.shape[2]
      pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
      image = np.asarray(pil.resize((size, size), Image.BILINEAR), np.uint8)
      image = image.reshape(size, size, channels)
    return image


def _name(env) -> str:
  spec = getattr(env, 'spec', None)
  return getattr(spec, 'id', None) or type(env).__name__
