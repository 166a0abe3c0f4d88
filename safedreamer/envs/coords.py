"""The ego-frame coordinate observation of SPEC 2.6 and cost-from-observation.

Layout of the 'vector' in `obs='coords'` mode (all float32), in this order:

  velocimeter    2   robot-frame linear velocity x, y
  accelerometer  1   robot-frame acceleration x
  gyro           1   angular velocity about z
  magnetometer   3   robot-frame magnetic field (an orientation cue)
  goal           2   the goal's x, y in the robot frame (for Button: the goal button)
  push_box       2   Push tasks only: the box's x, y in the robot frame
  hazards        2n  each hazard's x, y in the robot frame (if the task has hazards)
  vases, pillars, gremlins, buttons
                 2n  each CONSTRAINED object's x, y in the robot frame (objects that
                     cost nothing, e.g. Goal1's vase or Push1's pillar, are left out)
  heading        2   cos, sin of the robot's yaw in the world frame
  position       2   the robot's world x, y
  robot          k   robots other than Point: their remaining native sensors
                     (e.g. Car's rear-ball joint), so the state stays Markov

That is 2+1+1+3+2+16+2+2 = 29 numbers for SafetyPointGoal1 (8 hazards).
`coords_layout(task)` gives {name: slice} of a task; for several objects, object i
of `name` sits at `layout[name]` entries [2i, 2i+2).

`cost_from_coords(obs, layout, sizes, footprint)` estimates the cost of such vectors
(also decoded or imagined ones, [..., D]) by counting constrained objects that are
  hazards   within `sizes['hazards']` of the robot's centre: the env charges a robot
            centre inside the hazard (size 0.2, 0.3 in Push1); the default threshold
            adds 0.05 (0.25 for 0.2 hazards, as the authors did);
  vases, pillars, gremlins, buttons (not the goal button)
            touching the robot: a disc of radius `sizes[type]` (vase 0.11, gremlin
            0.12: boxes of half-size 0.1; pillar 0.2, button 0.1) reaching the robot's
            footprint: rounded boxes in the robot frame from `coords_footprint(task)`
            (default: the Point robot, a sphere of radius 0.1 with its 0.05 nose box).
`coords_params(task)` returns both for a task. Vase velocity costs (a vase still
sliding after a hit) are not visible in coordinates, and the button timer (no cost
for 10 steps after a goal press) neither, so those parts are estimates. Measured
against the env's own per-type costs on 3000 steps of a noisy goal-seeking Point
(tests/test_envs_coords.py): hazards miss nothing (false alarms only inside the
0.05 margin); buttons and gremlins agree on ~99% of steps; vase contacts on ~94%
(~70% of contacts seen: a box's corners reach further than its faces). Plain array
operations only: pass `xp=jax.numpy` to use it under jit.

Ego frame = the robot body's frame: x is the Point's heading; the Car drives along
its body's -y axis (its front bumper is at -y), so its goal straight ahead reads
(0, -d).
"""
from __future__ import annotations

import numpy as np

SENSORS = (('velocimeter', slice(0, 2)), ('accelerometer', slice(0, 1)),
           ('gyro', slice(2, 3)), ('magnetometer', slice(0, 3)))
CONSTRAINED_TYPES = ('hazards', 'vases', 'pillars', 'gremlins', 'buttons')
DEFAULT_SIZES = {'hazards': 0.25, 'vases': 0.11, 'pillars': 0.2, 'gremlins': 0.12,
                 'buttons': 0.1}
HAZARD_MARGIN = 0.05
CONTACT_MARGIN = 0.0
# Rounded boxes (centre x, y, half-size x, y, rounding radius) in the robot frame.
POINT_FOOTPRINT = np.array([[0.0, 0.0, 0.0, 0.0, 0.1], [0.1, 0.0, 0.05, 0.05, 0.0]], np.float32)


def _task(task):
  if isinstance(task, str):
    from safedreamer.envs.safety_gym_compat import make_quietly  # pylint: disable=import-outside-toplevel
    task = make_quietly(task).unwrapped.task
  return task


def _objects(task) -> list[tuple[str, int]]:
  """(name, count) of the ego-xy entries of a task, in layout order."""
  found = []
  if hasattr(task, 'push_box'):
    found.append(('push_box', 1))
  for name in CONSTRAINED_TYPES:
    obj = getattr(task, name, None)
    if obj is None or not obj.is_constrained:
      continue
    if obj.num > 0:
      found.append((name, int(obj.num)))
  return found


def _robot_sensors(task) -> list[tuple[str, int]]:
  space = task.agent.build_sensor_observation_space()
  standard = {name for name, _ in SENSORS}
  return [(k, int(np.prod(v.shape))) for k, v in space.items() if k not in standard]


def coords_layout(task) -> dict[str, slice]:
  """{name: slice} of the coords vector of `task` (a Safety-Gymnasium task object of a
  navigation env, e.g. `env.unwrapped.task`, or an id like 'SafetyPointGoal1-v0')."""
  task = _task(task)
  layout, start = {}, 0

  def add(name, size):
    nonlocal start
    layout[name] = slice(start, start + size)
    start += size

  for name, part in SENSORS:
    add(name, part.stop - part.start)
  add('goal', 2)
  for name, count in _objects(task):
    add(name, 2 * count)
  add('heading', 2)
  add('position', 2)
  extra = sum(size for _, size in _robot_sensors(task))
  if extra:
    add('robot', extra)
  return layout


def layout_size(layout: dict[str, slice]) -> int:
  return max(s.stop for s in layout.values())


def coords_obs(task, layout: dict[str, slice]) -> np.ndarray:
  """The coords vector of the task's current state (see the module docstring)."""
  agent = task.agent
  out = np.zeros(layout_size(layout), np.float32)
  for name, part in SENSORS:
    out[layout[name]] = agent.get_sensor(name)[part]
  pos, mat = agent.pos, agent.mat

  def ego(points) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 3)
    return ((points - pos) @ mat)[:, :2].ravel()

  out[layout['goal']] = ego(np.r_[task.goal.pos[:2], 0.0])
  for name in layout:
    if name == 'push_box' or name in CONSTRAINED_TYPES:
      positions = getattr(task, name).pos
      if len(np.shape(positions)) == 1:
        positions = [positions]
      points = [np.r_[np.asarray(p)[:2], 0.0] for p in positions]
      if points:
        out[layout[name]] = ego(points)
  out[layout['heading']] = (mat[0, 0], mat[1, 0])
  out[layout['position']] = pos[:2]
  if 'robot' in layout:
    sensors = agent.obs_sensor()
    out[layout['robot']] = np.concatenate(
        [np.ravel(sensors[k]) for k, _ in _robot_sensors(task)])
  return out


def coords_footprint(task) -> np.ndarray:
  """The robot's shape seen from above, as rounded boxes [K, 5] (centre x, y,
  half-size x, y, rounding radius) in the robot frame, from its geoms in the current
  state (spheres exactly, other geoms by their bounding box)."""
  import mujoco  # pylint: disable=import-outside-toplevel
  model, data = task.model, task.data
  pos, mat = task.agent.pos, task.agent.mat
  rows = []
  for name in task.agent.body_info.geom_names:
    geom = model.geom(name)
    centre = (data.geom(name).xpos - pos) @ mat
    if geom.type[0] == mujoco.mjtGeom.mjGEOM_SPHERE:
      rows.append([centre[0], centre[1], 0.0, 0.0, geom.size[0]])
      continue
    aabb = model.geom_aabb[geom.id]  # centre offset (3) and half sizes (3), geom frame
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    corners = aabb[:3] + signs * aabb[3:]
    rot = data.geom(name).xmat.reshape(3, 3)
    local = (corners @ rot.T + data.geom(name).xpos - pos) @ mat
    low, high = local[:, :2].min(0), local[:, :2].max(0)
    rows.append([*(low + high) / 2, *(high - low) / 2, 0.0])
  return np.asarray(rows, np.float32)


def coords_params(task) -> dict:
  """{'sizes': {...}, 'footprint': [K, 5]} of a task, for `cost_from_coords`."""
  task = _task(task)
  sizes = dict(DEFAULT_SIZES)
  if getattr(task, 'hazards', None) is not None:
    sizes['hazards'] = float(task.hazards.size) + HAZARD_MARGIN
  for name in ('pillars', 'buttons'):
    if getattr(task, name, None) is not None:
      sizes[name] = float(getattr(task, name).size)
  footprint = coords_footprint(task) if task.world is not None else POINT_FOOTPRINT
  return {'sizes': sizes, 'footprint': footprint}


def _gap(xy, footprint, xp):
  """Distance from points xy [..., N, 2] to the footprint [K, 5] -> [..., N].
  (The 1e-12 under the root keeps its gradient finite at zero.)"""
  d = xp.abs(xy[..., None, :] - footprint[:, :2]) - footprint[:, 2:4]
  outside = xp.sqrt(xp.sum(xp.maximum(d, 0.0) ** 2, axis=-1) + 1e-12)
  inside = xp.minimum(xp.max(d, axis=-1), 0.0)
  return xp.min(outside + inside - footprint[:, 4], axis=-1)


def margins(obs, layout: dict[str, slice], sizes: dict[str, float] | None = None,
            footprint=None, xp=np) -> dict:
  """{type: [..., n] how far each object of the type is inside its cost threshold}
  (metres; >= 0: entered or touched, see the module docstring; the goal button of a
  Button task is never inside)."""
  sizes = {**DEFAULT_SIZES, **(sizes or {})}
  footprint = xp.asarray(POINT_FOOTPRINT if footprint is None else footprint, obs.dtype)
  out = {}
  for name in CONSTRAINED_TYPES:
    if name not in layout:
      continue
    part = obs[..., layout[name]]
    xy = xp.reshape(part, part.shape[:-1] + (part.shape[-1] // 2, 2))
    if name == 'hazards':
      margin = sizes[name] - xp.sqrt(xp.sum(xy * xy, axis=-1) + 1e-12)
    else:
      margin = sizes[name] + CONTACT_MARGIN - _gap(xy, footprint, xp)
    if name == 'buttons':  # touching the goal button is the task, not a violation
      goal = obs[..., layout['goal']][..., None, :]
      is_goal = xp.sum((xy - goal) ** 2, axis=-1) < 1e-4
      margin = xp.where(is_goal, -1e3, margin)
    out[name] = margin
  return out


def cost_by_type(obs, layout: dict[str, slice], sizes: dict[str, float] | None = None,
                 footprint=None, xp=np, softness: float = 0.0) -> dict:
  """{type: number of objects of that type touched (hazards: entered)} over obs[..., D].
  softness > 0 (metres) counts each object smoothly instead, sigmoid(margin /
  softness): 1/2 on the threshold, 0.12 at 2 x softness outside it."""
  out = {}
  for name, margin in margins(obs, layout, sizes, footprint, xp).items():
    if softness > 0:
      near = 0.5 * (1.0 + xp.tanh(margin / (2.0 * softness)))
    else:
      near = (margin >= 0).astype(obs.dtype)
    out[name] = xp.sum(near, axis=-1)
  return out


def cost_from_coords(obs, layout: dict[str, slice], sizes: dict[str, float] | None = None,
                     footprint=None, xp=np, softness: float = 0.0):
  """Estimated cost of coords vectors obs[..., D]: the number of constrained objects
  entered or touched (see the module docstring for what is covered and how; softness
  as in `cost_by_type`)."""
  parts = cost_by_type(obs, layout, sizes, footprint, xp, softness)
  total = xp.zeros(obs.shape[:-1], obs.dtype)
  for value in parts.values():
    total = total + value
  return total
