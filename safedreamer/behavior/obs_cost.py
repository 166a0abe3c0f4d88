"""Cost from decoded observations (SPEC 2.6): `planner.cost_source='obs'` for the
planners, `behavior.cost_source='obs'` for the cost critic and BSRP-Lag's actor.

For vector tasks the paper judges an imagined state's cost from the observation the
world model decodes from it, not from the cost head: decoder mean (symlog space for
vector keys, see model/codec.py) -> symexp -> count the constrained objects the
robot is inside of or touching (`envs.coords.cost_from_coords`, in jax.numpy). For
an actor trained by backpropagation the count passes the gradient of a smooth count
(`feat_cost`'s softness), so the actor feels where a hazard's boundary is.

What is covered is what `cost_from_coords` covers, for every Safety-Gymnasium
navigation task in `env.obs='coords'` mode: hazards (robot centre within the hazard
size + 0.05), vases, pillars, gremlins and (wrong) buttons (contact with the robot's
footprint). Not visible in coordinates, hence not charged: a vase's velocity cost
after a hit and the button timer. `toy/hazard` is covered too (its vector holds
hazard - position at entries 2:4; radius 0.5), see `_toy_spec`. Any other task has
no coordinate layout: `coords_spec` raises, use cost_source 'head'.

The layout, sizes and robot footprint come from the environment itself
(`coords_layout` and `coords_params()` of `envs/safety_gym.py`), asked once
through the EnvBatch in `attach`.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from safedreamer.envs import coords
from safedreamer.nn.functions import symexp

OBS_KEY = 'vector'   # the observation key that holds the coordinate vector


class CoordsSpec(NamedTuple):
  """Everything `cost_from_coords` needs besides the vectors (static under jit)."""
  layout: dict          # {name: slice}
  sizes: dict           # {type: threshold}
  footprint: np.ndarray  # [K, 5] rounded boxes of the robot

  @property
  def size(self) -> int:
    return coords.layout_size(self.layout)

  def key(self) -> tuple:
    """What decides whether a compiled policy still fits: layout and sizes. The
    footprint is left out on purpose: it is measured from the current simulator
    state, and a Car's wheels change their bounding boxes as they turn, so agents
    keep the footprint of the first environments they were attached to."""
    return (tuple((k, s.start, s.stop) for k, s in self.layout.items()),
            tuple((k, round(float(v), 6)) for k, v in sorted(self.sizes.items())))


def _toy_spec() -> CoordsSpec:
  from safedreamer.envs import toy  # pylint: disable=import-outside-toplevel
  layout = {'goal': slice(0, 2), 'hazards': slice(2, 4), 'velocity': slice(4, 6),
            'position': slice(6, 8)}   # toy.py's 8-number 'vector'
  return CoordsSpec(layout,
                    {'hazards': float(toy.HAZARD_RADIUS)}, coords.POINT_FOOTPRINT)


KNOWN_SPECS: dict[str, Callable[[], CoordsSpec]] = {'toy/hazard': _toy_spec}


def require_coords(env_obs: str, key: str) -> None:
  """The cost from observations reads coordinates: a clear error for other modes."""
  if env_obs != 'coords':
    raise ValueError(f"{key} 'obs' reads the decoded coordinate observation: set env.obs "
                     f"to 'coords' (it is {env_obs!r})")


def _env_attribute(envs, name: str, index: int = 0) -> Any:
  """Attribute `name` of env `index` of an EnvBatch (through wrappers), or None."""
  for method in ('__getattr__', '__getattribute__'):  # wrapped / bare env
    try:
      return envs.call(index, method, name)
    except (RuntimeError, AttributeError):
      continue
  return None


def coords_spec(envs, task: str) -> CoordsSpec:
  """The coordinate layout of the environments of `envs` (an EnvBatch), asked from
  env 0 (`coords_params()` and `coords_layout`), or the built-in one of `task`."""
  try:
    params = envs.call(0, 'coords_params')
  except (RuntimeError, AttributeError):
    params = None
  if params is not None:
    layout = params.get('layout') or _env_attribute(envs, 'coords_layout')
    if layout is not None:
      return CoordsSpec(dict(layout), {**coords.DEFAULT_SIZES, **params['sizes']},
                        np.asarray(params['footprint'], np.float32))
  if task in KNOWN_SPECS:
    return KNOWN_SPECS[task]()
  raise ValueError(f"cost_source 'obs' needs a coordinate observation: {task!r} has no "
                   "coords layout (use a Safety-Gymnasium navigation task with --env.obs "
                   "coords, or cost_source head)")


def feat_cost(wm, spec: CoordsSpec, softness: float = 0.0,
              scale: float = 1.0) -> Callable[[Any, jnp.ndarray], jnp.ndarray]:
  """(wm_params, feat [..., F]) -> [...] cost of the observation decoded from model
  features, x `scale`. softness > 0 (metres) passes gradients: the value is still
  the count, its gradient that of the smooth count (`coords.cost_by_type`), so that
  an actor trained through the dynamics feels a hazard's boundary (straight-through)."""
  if OBS_KEY not in wm.codec.vec:
    raise ValueError(f"the cost from observations needs the observation key {OBS_KEY!r}")
  if wm.codec.vec[OBS_KEY] != spec.size:
    raise ValueError(f'the {OBS_KEY!r} observation has {wm.codec.vec[OBS_KEY]} numbers but '
                     f'the coordinate layout {spec.size}: is env.obs "coords"?')

  def cost(wm_params, feat):
    vec = symexp(wm.codec.decode(wm_params['decoder'], feat)[OBS_KEY])
    count = partial(coords.cost_from_coords, vec, spec.layout, spec.sizes, spec.footprint,
                    xp=jnp)
    value = count()
    if softness > 0:
      smooth = count(softness=softness)
      value = value + smooth - jax.lax.stop_gradient(smooth)
    return scale * value
  return cost
