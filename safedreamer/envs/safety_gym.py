"""Safety-Gymnasium adapter: any `safety_gymnasium` id as a `CostEnv`.

One `step` of `SafetyGymEnv` is one simulator step of Safety-Gymnasium (which itself
runs `frameskip` MuJoCo steps); action repeat is added by `wrappers.ActionRepeat`
(see `registry.make_env`). Episodes end by truncation after `episode_length`
simulator steps (1000 by default), or by termination when the package says so
(a goal that cannot be resampled, a robot that is no longer alive).

Observation modes (`obs`):
  'lidar'   key 'vector' (float32): the package's native flattened observation
            (sensors + lidar), e.g. 60 numbers for SafetyPointGoal1.
  'coords'  key 'vector' (float32): the ego-frame coordinate vector of SPEC 2.6,
            layout in `coords.coords_layout(task)`.
  'vision'  keys 'image_front', 'image_rear' (uint8 [S, S, 3]) from the robot's own
            camera and a rear camera added at run time (see `vision.py`).

`get_state()` / `set_state(state)` snapshot and restore everything that decides the
future of the episode (MuJoCo integration state, goal position, task counters and
timers, the layout used for resampling, the random generator), so a planner can roll
the simulator forward and come back. A state taken before a reset can be restored
after it (the world is rebuilt from the saved layout, which costs a compile).
"""
from __future__ import annotations

import copy

import numpy as np

from safedreamer.envs.base import CostEnv, Step, make_step
from safedreamer.envs.safety_gym_compat import import_safety_gymnasium, make_quietly
from safedreamer.envs.wrappers import rescale_action

OBS_MODES = ('lidar', 'coords', 'vision')
# Task attributes that carry per-episode progress (the rest is rebuilt or constant).
_TASK_SCALARS = ('last_dist_goal', 'last_dist_box', 'last_box_goal')


def make_safety_gym(task_id: str, obs: str = 'lidar', image_size: int = 64,
                    episode_length: int = 1000, seed: int | None = None) -> CostEnv:
  """`SafetyGymEnv` for navigation tasks (Goal, Push, Button, Circle, ...),
  `SafetyVelocityEnv` for the MuJoCo locomotion tasks (`Safety*Velocity-v*`)."""
  if obs == 'vision':
    from safedreamer.envs import vision  # pylint: disable=import-outside-toplevel
    vision.select_gl_backend()  # before anything creates a GL context
  gym_env = make_quietly(task_id)
  if hasattr(gym_env.unwrapped, 'task'):
    return SafetyGymEnv(task_id, obs, image_size, episode_length, seed, _gym=gym_env)
  if obs != 'lidar':
    raise ValueError(f"{task_id} only has its native vector observation: use --env.obs lidar "
                     f"(got '{obs}')")
  return SafetyVelocityEnv(gym_env, episode_length, seed)


def task_ids() -> list[str]:
  """Every registered Safety-Gymnasium environment id."""
  import_safety_gymnasium()
  from safety_gymnasium.utils.registration import safe_registry  # pylint: disable=import-outside-toplevel
  return sorted(safe_registry)


class SafetyGymEnv(CostEnv):
  """A Safety-Gymnasium task with actions in [-1, 1] and dict steps.

  Args:
    task_id: e.g. 'SafetyPointGoal1-v0'.
    obs: 'lidar', 'coords' or 'vision' (see the module docstring).
    image_size: side of the square camera images in 'vision' mode.
    episode_length: simulator steps per episode (truncation).
    seed: seeds the layout generator once at construction; later resets without a
      seed continue its stream, so a run of episodes is reproducible from it.
    render_size: side of the frames that `render()` returns (videos).
  """

  def __init__(self, task_id: str, obs: str = 'lidar', image_size: int = 64,
               episode_length: int = 1000, seed: int | None = None,
               render_size: int = 256, _gym=None):
    if obs not in OBS_MODES:
      raise ValueError(f"unknown observation mode '{obs}' (choose from {', '.join(OBS_MODES)})")
    if obs == 'vision':
      from safedreamer.envs import vision  # pylint: disable=import-outside-toplevel
      vision.select_gl_backend()  # before anything creates a GL context
    self.task_id = task_id
    self.mode = obs
    self.image_size = int(image_size)
    self.render_size = int(render_size)
    if _gym is None:
      _gym = make_quietly(task_id)
    self._gym = _gym
    self._env = self._gym.unwrapped  # the Builder: skip the checker/time-limit wrappers
    if not hasattr(self._env, 'task'):
      raise ValueError(f'{task_id} is not a navigation task: use make_safety_gym()')
    self._task = self._env.task
    self._task.num_steps = int(episode_length)
    self._task.render_conf.lidar_markers = False  # markers break with mujoco >= 3.2
    self._randomize = bool(self._task.mechanism_conf.randomize_layout)
    if seed is not None and self._randomize:
      self._env.set_seed(int(seed))
    space = self._env.action_space
    self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
    self.act_dim = int(space.shape[0])
    self.episode_length = int(episode_length)
    self._cameras = None
    if obs == 'lidar':
      self.obs_space = {'vector': ((int(self._env.observation_space.shape[0]),), np.float32)}
    elif obs == 'coords':
      from safedreamer.envs import coords  # pylint: disable=import-outside-toplevel
      self._layout = coords.coords_layout(self._task)
      self.obs_space = {'vector': ((coords.layout_size(self._layout),), np.float32)}
    else:
      from safedreamer.envs import vision  # pylint: disable=import-outside-toplevel
      vision.add_rear_camera(self._task)
      self._cameras = vision.Cameras(self._task, self.image_size)
      size = (self.image_size, self.image_size, 3)
      self.obs_space = {'image_front': (size, np.uint8), 'image_rear': (size, np.uint8)}
    self._started = False
    self._world, self._next_world = -1, 0  # id of the current build of the world

  # -- CostEnv ---------------------------------------------------------------------

  def reset(self, seed: int | None = None) -> Step:
    seed = None if not self._randomize else (None if seed is None else int(seed))
    native, _ = self._env.reset(seed=seed)
    self._started = True
    self._world = self._next_world
    self._next_world += 1
    return make_step(self._observe(native), is_first=True)

  def step(self, action: np.ndarray) -> Step:
    if not self._started:
      raise RuntimeError('reset() must be called before step()')
    native, reward, cost, terminated, truncated, _ = self._env.step(
        rescale_action(action, self._low, self._high))
    return make_step(self._observe(native), reward, cost, is_last=truncated,
                     is_terminal=terminated)

  def render(self) -> np.ndarray | None:
    """An overview of the arena from above and behind ('fixedfar' camera),
    uint8 [render_size, render_size, 3], for videos."""
    from safedreamer.envs import vision  # pylint: disable=import-outside-toplevel
    if self._cameras is None:
      vision.select_gl_backend()
      self._cameras = vision.Cameras(self._task, self.image_size)
    if self._task.world is None:
      raise RuntimeError('reset() must be called before render()')
    return self._cameras.render('fixedfar', self.render_size)

  def close(self) -> None:
    if self._cameras is not None:
      self._cameras.close()
      self._cameras = None
    self._gym.close()

  # -- coordinate observations (obs='coords') ---------------------------------------

  @property
  def coords_layout(self) -> dict[str, slice]:
    """{name: slice} of the 'vector' in coords mode (see coords.py)."""
    from safedreamer.envs import coords  # pylint: disable=import-outside-toplevel
    return coords.coords_layout(self._task)

  def coords_params(self) -> dict:
    """{'sizes', 'footprint'} for `coords.cost_from_coords` on this task's vectors."""
    from safedreamer.envs import coords  # pylint: disable=import-outside-toplevel
    if self._task.world is None:  # build a world once to measure the robot; keep the RNG
      rng = self._task.random_generator.random_generator
      saved = rng.get_state() if rng is not None else None
      self._env.reset()
      if saved is not None:
        rng.set_state(saved)
      self._started = False
    return coords.coords_params(self._task)

  # -- observations ----------------------------------------------------------------

  def _observe(self, native) -> dict[str, np.ndarray]:
    if self.mode == 'lidar':
      return {'vector': np.asarray(native, np.float32)}
    if self.mode == 'coords':
      from safedreamer.envs import coords  # pylint: disable=import-outside-toplevel
      return {'vector': coords.coords_obs(self._task, self._layout)}
    return {'image_front': self._cameras.render('vision'),
            'image_rear': self._cameras.render('vision_rear')}

  # -- state snapshots (planners) --------------------------------------------------

  def get_state(self) -> dict:
    """A deep copy of everything that decides how the episode continues."""
    import mujoco  # pylint: disable=import-outside-toplevel
    env, task = self._env, self._task
    model, data = task.model, task.data
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    physics = np.empty(mujoco.mj_stateSize(model, spec), np.float64)
    mujoco.mj_getState(model, data, physics, spec)
    state = {
        'world': self._world,  # which build of the world the snapshot belongs to
        'physics': physics,
        'body_pos': model.body_pos.copy(),  # the goal body moves when a goal is resampled
        'world_config': copy.deepcopy(task.world_info.world_config_dict),
        'layout': copy.deepcopy(task.world_info.layout),
        'rng': task.random_generator.random_generator.get_state(),
        'builder': (env.steps, env.terminated, env.truncated, copy.deepcopy(env.cost)),
        'task': {k: copy.deepcopy(getattr(task, k)) for k in _TASK_SCALARS if hasattr(task, k)},
        'started': self._started,
    }
    if hasattr(task, 'buttons'):
      state['buttons'] = (task.buttons.goal_button, task.buttons.timer)
    return state

  def set_state(self, state: dict) -> None:
    """Restore a snapshot from `get_state` (stepping then replays identically)."""
    import mujoco  # pylint: disable=import-outside-toplevel
    env, task = self._env, self._task
    if task.world is None or self._world != state['world']:
      # The world was rebuilt (a reset) since the snapshot: rebuild the saved one.
      if task.world is None:
        env.reset()
      task.world.rebuild(copy.deepcopy(state['world_config']), state=False)
      self._world = state['world']
    model, data = task.model, task.data
    model.body_pos[:] = state['body_pos']
    mujoco.mj_setState(model, data, state['physics'], mujoco.mjtState.mjSTATE_INTEGRATION)
    task.world_info.world_config_dict = copy.deepcopy(state['world_config'])
    task.world_info.layout = copy.deepcopy(state['layout'])
    task.random_generator.layout = task.world_info.layout
    task.random_generator.random_generator.set_state(state['rng'])
    steps, terminated, truncated, cost = state['builder']
    env.steps, env.terminated, env.truncated = steps, terminated, truncated
    env.cost = copy.deepcopy(cost)
    for key, value in state['task'].items():
      setattr(task, key, copy.deepcopy(value))
    if 'buttons' in state:
      task.buttons.goal_button, task.buttons.timer = state['buttons']
    self._started = state['started']
    mujoco.mj_forward(model, data)


class SafetyVelocityEnv(CostEnv):
  """A Safety-Gymnasium locomotion task (`Safety*Velocity-v*`, a Gymnasium MuJoCo env
  whose step also returns a cost) with its native observation under 'vector'.

  Episodes are truncated after `episode_length` steps; `get_state`/`set_state` cover
  the MuJoCo integration state and the step counter.
  """

  def __init__(self, gym_env, episode_length: int = 1000, seed: int | None = None):
    self._gym = gym_env
    self._env = gym_env.unwrapped
    space = self._env.action_space
    self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
    self.act_dim = int(space.shape[0])
    self.obs_space = {'vector': ((int(np.prod(self._env.observation_space.shape)),), np.float32)}
    self.episode_length = int(episode_length)
    self._seed, self._t = seed, 0

  def reset(self, seed: int | None = None) -> Step:
    if seed is None:
      seed, self._seed = self._seed, None
    native, _ = self._env.reset(seed=seed)
    self._t = 0
    return make_step({'vector': np.asarray(native, np.float32).ravel()}, is_first=True)

  def step(self, action: np.ndarray) -> Step:
    native, reward, cost, terminated, truncated, _ = self._env.step(
        rescale_action(action, self._low, self._high).astype(self._env.action_space.dtype))
    self._t += 1
    return make_step({'vector': np.asarray(native, np.float32).ravel()}, reward, cost,
                     is_last=truncated or self._t >= self.episode_length, is_terminal=terminated)

  def get_state(self) -> dict:
    import mujoco  # pylint: disable=import-outside-toplevel
    model, data = self._env.model, self._env.data
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    physics = np.empty(mujoco.mj_stateSize(model, spec), np.float64)
    mujoco.mj_getState(model, data, physics, spec)
    return {'physics': physics, 't': self._t}

  def set_state(self, state: dict) -> None:
    import mujoco  # pylint: disable=import-outside-toplevel
    model, data = self._env.model, self._env.data
    mujoco.mj_setState(model, data, state['physics'], mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(model, data)
    self._t = state['t']

  def close(self) -> None:
    self._gym.close()
