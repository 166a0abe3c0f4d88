"""`toy/hazard`: a tiny, fast, deterministic CMDP where safety costs return.

A point moves in the square arena [-1.5, 1.5]^2. Its action a in [-1, 1]^2 is a
velocity command: each step the point moves by MAX_SPEED * a / max(1, |a|) (so at
most MAX_SPEED = 0.1 per step in any direction) and is clipped to the arena.

Two goal spots sit at x = -1 and x = +1 (y jittered by the seed). The point starts on
the left spot and the active goal is the right one. On arrival (within GOAL_RADIUS)
it earns ARRIVAL_BONUS and the goal respawns on the other spot: the task is a
shuttle run, and the episode always lasts EPISODE_LENGTH steps (truncation).

A round hazard of radius HAZARD_RADIUS sits in the middle, on the straight line
between the spots. Each step that ends inside it costs 1.

Reward per step = (previous distance to goal - new distance) + bonus on arrival.
Going straight through the hazard: every step makes 0.1 of progress, so the return
is exactly 100 x 0.1 + 5 arrivals = 15, at a cost of ~51 per episode; nothing can do
better. Around it, hugging the hazard's edge: return ~13.07, cost 0, the best a
zero-cost policy can do up to the 0.1-step discretisation (the shortest path around a
disc: tangent, arc, tangent). So an unconstrained learner prefers the shortcut, and
a constrained one (cost limit e.g. 2) can reach zero cost with a clearly positive
return. `scripted_policy` implements both; `oracle_returns` measures them.

Observation 'vector' (float32, 8): goal - pos (2), hazard - pos (2), velocity (2),
pos (2). Everything is decided by the seed: `reset(seed)` reseeds, `reset()`
continues the generator seeded at construction.
"""
from __future__ import annotations

import math

import numpy as np

from safedreamer.envs.base import CostEnv, Step

ARENA = 1.5
MAX_SPEED = 0.1
GOAL_X = 1.0
GOAL_RADIUS = 0.15
HAZARD_RADIUS = 0.5
ARRIVAL_BONUS = 1.0
EPISODE_LENGTH = 100
JITTER = 0.1  # seeded jitter of the goal spots' and the hazard's y positions


class ToyHazard(CostEnv):
  """The `toy/hazard` task (see the module docstring)."""

  obs_space = {'vector': ((8,), np.float32)}
  act_dim = 2

  def __init__(self, seed: int | None = None, episode_length: int = EPISODE_LENGTH):
    self.episode_length = int(episode_length)
    self._rng = np.random.default_rng(seed)
    self._spots = ((-GOAL_X, 0.0), (GOAL_X, 0.0))
    self._hazard = (0.0, 0.0)
    self._pos = self._vel = (0.0, 0.0)
    self._goal = 1  # index of the active goal spot
    self._t = 0
    self._dist = 0.0

  # -- CostEnv ---------------------------------------------------------------------

  def reset(self, seed: int | None = None) -> Step:
    if seed is not None:
      self._rng = np.random.default_rng(seed)
    ya, yb, yh = self._rng.uniform(-JITTER, JITTER, 3)
    self._spots = ((-GOAL_X, float(ya)), (GOAL_X, float(yb)))
    self._hazard = (0.0, float(yh))
    self._pos, self._vel = self._spots[0], (0.0, 0.0)
    self._goal, self._t = 1, 0
    self._dist = self._goal_dist()
    return self._step(0.0, 0.0, True, False)

  def step(self, action: np.ndarray) -> Step:
    ax, ay = float(action[0]), float(action[1])
    ax, ay = min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0)
    scale = MAX_SPEED / max(1.0, math.hypot(ax, ay))
    x, y = self._pos
    nx = min(max(x + ax * scale, -ARENA), ARENA)
    ny = min(max(y + ay * scale, -ARENA), ARENA)
    self._vel, self._pos = (nx - x, ny - y), (nx, ny)
    dist = self._goal_dist()
    reward = self._dist - dist
    if dist <= GOAL_RADIUS:
      reward += ARRIVAL_BONUS
      self._goal = 1 - self._goal
      dist = self._goal_dist()
    self._dist = dist
    hx, hy = self._hazard
    cost = 1.0 if math.hypot(nx - hx, ny - hy) < HAZARD_RADIUS else 0.0
    self._t += 1
    return self._step(reward, cost, False, self._t >= self.episode_length)

  # -- state snapshots (planners, tests) -------------------------------------------

  def get_state(self) -> dict:
    return {'spots': self._spots, 'hazard': self._hazard, 'pos': self._pos, 'vel': self._vel,
            'goal': self._goal, 't': self._t, 'dist': self._dist,
            'rng': self._rng.bit_generator.state}

  def set_state(self, state: dict) -> None:
    self._spots, self._hazard = state['spots'], state['hazard']
    self._pos, self._vel, self._goal = state['pos'], state['vel'], state['goal']
    self._t, self._dist = state['t'], state['dist']
    self._rng.bit_generator.state = state['rng']

  # -- helpers ---------------------------------------------------------------------

  @property
  def goal_pos(self) -> tuple[float, float]:
    return self._spots[self._goal]

  @property
  def hazard_pos(self) -> tuple[float, float]:
    return self._hazard

  @property
  def pos(self) -> tuple[float, float]:
    return self._pos

  def _goal_dist(self) -> float:
    gx, gy = self._spots[self._goal]
    return math.hypot(gx - self._pos[0], gy - self._pos[1])

  def _step(self, reward, cost, is_first, is_last) -> Step:
    (x, y), (vx, vy) = self._pos, self._vel
    gx, gy = self._spots[self._goal]
    hx, hy = self._hazard
    vector = np.array((gx - x, gy - y, hx - x, hy - y, vx, vy, x, y), np.float32)
    return {'vector': vector, 'reward': np.float32(reward), 'cost': np.float32(cost),
            'is_first': is_first, 'is_last': is_last, 'is_terminal': False}


def scripted_policy(env: ToyHazard, detour: bool, margin: float = 0.1) -> np.ndarray:
  """Head for the goal: straight through the hazard, or around it when `detour`.

  The detour steers for the tangent point of a circle of radius HAZARD_RADIUS +
  `margin` around the hazard whenever the straight line to the goal crosses it.
  """
  (x, y), (gx, gy), (hx, hy) = env.pos, env.goal_pos, env.hazard_pos
  tx, ty = gx - x, gy - y
  if detour:
    safe = HAZARD_RADIUS + margin
    dx, dy = hx - x, hy - y
    length = math.hypot(tx, ty)
    along = (dx * tx + dy * ty) / max(length, 1e-9)
    off = abs(dx * ty - dy * tx) / max(length, 1e-9)
    dist_h = math.hypot(dx, dy)
    if 0 < along < length and off < safe and dist_h > 1e-9:
      # Rotate the direction to the hazard by the tangent angle, on the side the goal
      # lies (the upper side when exactly in line).
      side = -1.0 if (dx * ty - dy * tx) < 0 else 1.0
      angle = math.asin(min(1.0, safe / dist_h)) if dist_h > safe else math.pi / 2
      base = math.atan2(dy, dx) + side * angle
      tx, ty = math.cos(base), math.sin(base)
  norm = max(math.hypot(tx, ty), 1e-9)
  return np.array((tx / norm, ty / norm), np.float32)


def oracle_returns(episodes: int = 40, seed: int = 0) -> dict[str, dict[str, float]]:
  """Mean EpRet / EpCost of the scripted oracles over `episodes` seeded episodes:
  'unconstrained' goes straight (the optimum: 15), 'safe' goes around the hazard on
  its edge (margin 0: cost is charged strictly inside the radius), the zero-cost
  optimum up to the discretisation (~13.07)."""
  out = {}
  for name, detour in (('unconstrained', False), ('safe', True)):
    rets, costs = [], []
    for i in range(episodes):
      env = ToyHazard()
      env.reset(seed=seed + i)
      ret = cost = 0.0
      while True:
        step = env.step(scripted_policy(env, detour, margin=0.0))
        ret, cost = ret + float(step['reward']), cost + float(step['cost'])
        if step['is_last']:
          break
      rets.append(ret)
      costs.append(cost)
    out[name] = {'EpRet': float(np.mean(rets)), 'EpCost': float(np.mean(costs))}
  return out
