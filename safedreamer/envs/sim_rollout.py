"""Scoring many action sequences at once in MuJoCo's native batched rollout.

MPC:sim (behavior/mpc_sim.py) rolls hundreds of action sequences from one snapshot of
the real environment. Stepping a Python env per sample costs ~2 ms per agent step;
`BatchedScorer` instead hands all sequences to `mujoco.rollout` (C, threaded) from the
snapshot's physics state and computes each simulator step's reward and cost from the
rolled states with array operations, reproducing Safety-Gymnasium's own rules:

  physics   per simulator step: ctrl = clip(rescale(action), ctrlrange), then
            `frameskip_binom_n` mj_steps (the Builder's deterministic frameskip,
            binom p = 1); the warm start of the constraint solver is the snapshot's
  reward    (last_dist_goal - dist_goal) * goal.reward_distance, + goal.reward_goal
            if dist_goal <= goal.size; clipped to +-reward_clip; dist_goal the xy
            distance of the agent's body to the goal's
  cost      hazards: sum of hazards.cost * (size - d) over hazards with d <= size
            (d the agent-hazard xy distance), as an indicator (> 0) when the task's
            cost_conf.constrain_indicator (the default)
  the end   the Builder's step counter reaching num_steps (truncation)
  goals     where a goal is reached, the env itself draws the next one: the copy is
            put at that step's positions with its generator advanced as the env's
            would be (one frameskip draw per simulator step), `update_layout` and
            `update_world` place the new goal, and the rewards of the steps after it
            are recomputed from it (the goal has no physics: the rolled states stay)

then sums them as the env chain does: each simulator step's reward and cost rounded
to float32 (`make_step`), summed per agent step over the action repeat in float64,
rounded to float32 again (`ActionRepeat`), and summed per sequence in float64,
stopping at the end of the episode. So the scores equal those of stepping the env
(`mpc_sim.rollout`), checked in tests/test_sim_rollout.py.

Covered: Safety-Gymnasium navigation tasks whose constrained objects are hazards
only and that have no moving (mocap) objects or static-geom contact costs (Goal0/1,
Push0/... with hazards; the robots Point, Car, Racecar, Doggo), under ActionRepeat.
`BatchedScorer.for_env(env)` returns None for anything else, and the planner steps
the env as before.

The agent's xy position is computed from the rolled joint positions as MuJoCo's
forward kinematics computes it for a body on slide/hinge joints (or a free joint)
attached to the world; `for_env` checks that on the snapshot.
"""
from __future__ import annotations

import os

import numpy as np


def _unwrap(env):
  """(SafetyGymEnv, action repeat) of a chain of pass-through wrappers and at most one
  ActionRepeat, else (None, 0)."""
  from safedreamer.envs.wrappers import ActionRepeat, Wrapper, TimeLimit  # pylint: disable=import-outside-toplevel
  from safedreamer.envs.safety_gym import SafetyGymEnv  # pylint: disable=import-outside-toplevel
  repeat = 1
  while isinstance(env, Wrapper):
    if isinstance(env, TimeLimit):
      return None, 0
    if isinstance(env, ActionRepeat):
      repeat *= env.repeat
    elif type(env).step is not Wrapper.step:  # a wrapper that changes steps
      return None, 0
    env = env.env
  return (env, repeat) if type(env) is SafetyGymEnv else (None, 0)


class BatchedScorer:
  """Scores [N, H, A] action sequences from a snapshot of a Safety-Gymnasium env."""

  ROBOTS = ('Point', 'Car', 'Racecar', 'Doggo')   # always alive (Ant can die)

  def __init__(self, env, inner, repeat: int, threads: int | None = None):
    self.env, self.inner, self.repeat = env, inner, int(repeat)
    self.threads = int(threads or min(4, os.cpu_count() or 1))
    self._pool = None

  @classmethod
  def for_env(cls, env, threads: int | None = None) -> 'BatchedScorer | None':
    inner, repeat = _unwrap(env)
    if inner is None:
      return None
    task = inner._task  # pylint: disable=protected-access
    constrained = [o.name for o in task._obstacles if o.is_constrained]  # pylint: disable=protected-access
    if (type(task.agent).__name__ not in cls.ROBOTS or set(constrained) - {'hazards'}
        or task._mocaps or task.action_noise or task.reward_conf.reward_orientation  # pylint: disable=protected-access
        or (task._is_load_static_geoms and task.static_geoms_contact_cost)  # pylint: disable=protected-access
        or task.sim_conf.frameskip_binom_p != 1.0 or not hasattr(task, 'goal')
        or not hasattr(task, 'last_dist_goal') or hasattr(task, 'push_box')
        or hasattr(task, 'buttons')):
      return None
    return cls(env, inner, repeat, threads)

  # -- geometry -----------------------------------------------------------------------

  def _agent_xy_fn(self, model, data):
    """A function qpos [..., nq] -> agent xy [..., 2] equal to MuJoCo's body xpos, or
    None if the agent's joints are not of the kind covered."""
    body = model.body('agent').id
    if model.body_parentid[body] != 0:
      return None
    import mujoco  # pylint: disable=import-outside-toplevel
    first, count = model.body_jntadr[body], model.body_jntnum[body]
    kinds = [int(model.jnt_type[j]) for j in range(first, first + count)]
    if kinds and kinds[0] == mujoco.mjtJoint.mjJNT_FREE:
      adr = int(model.jnt_qposadr[first])
      return lambda q: q[..., adr:adr + 2]
    slides = []
    for j, kind in zip(range(first, first + count), kinds):
      if kind == mujoco.mjtJoint.mjJNT_SLIDE:
        slides.append((int(model.jnt_qposadr[j]), data.xaxis[j][:2].copy()))
      elif kind != mujoco.mjtJoint.mjJNT_HINGE or np.any(model.jnt_pos[j] != 0):
        return None
    if kinds[:len(slides)] != [mujoco.mjtJoint.mjJNT_SLIDE] * len(slides):
      return None  # a hinge before a slide would turn the slide's axis
    base = model.body_pos[body][:2].copy()

    def xy(q):
      out = np.broadcast_to(base, q.shape[:-1] + (2,)).copy()
      for adr, axis in slides:
        out = out + axis * q[..., adr:adr + 1]
      return out
    return xy

  # -- scoring ------------------------------------------------------------------------

  def _rollout(self, model, data, actions):
    import mujoco  # pylint: disable=import-outside-toplevel
    from mujoco import rollout  # pylint: disable=import-outside-toplevel
    from safedreamer.envs.wrappers import rescale_action  # pylint: disable=import-outside-toplevel
    inner, task = self.inner, self.inner._task  # pylint: disable=protected-access
    frameskip = int(task.sim_conf.frameskip_binom_n)
    ctrl = rescale_action(actions, inner._low, inner._high)  # pylint: disable=protected-access
    ctrl = np.clip(ctrl, model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1])
    n, h = actions.shape[:2]
    ctrl = np.repeat(ctrl, self.repeat * frameskip, axis=1)          # [N, H*R*F, nu]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    start = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, start, spec)
    warm = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_WARMSTART))
    mujoco.mj_getState(model, data, warm, mujoco.mjtState.mjSTATE_WARMSTART)
    if self._pool is None:
      self._pool = rollout.Rollout(nthread=self.threads if self.threads > 1 else 0)
    datas = [mujoco.MjData(model) for _ in range(self.threads)]
    flags = model.opt.disableflags
    # Sensors are outputs only (no effect on the dynamics) and not read here. The model
    # is the planner's private copy's; a deep copy would cost more than the rollout.
    model.opt.disableflags = flags | mujoco.mjtDisableBit.mjDSBL_SENSOR
    try:
      states, _ = self._pool.rollout(model, datas, np.tile(start, (n, 1)), ctrl,
                                     initial_warmstart=np.tile(warm, (n, 1)))
    finally:
      model.opt.disableflags = flags
    qpos_at = 1 + np.arange(model.nq)  # after the time entry
    ends = np.arange(frameskip - 1, states.shape[1], frameskip)    # each simulator step
    return states[:, ends][..., qpos_at]                           # [N, H*R, nq]

  def _rewards(self, agent, goal, last):
    """Rewards [..., S] of consecutive simulator steps at agent positions [..., S, 2]
    with the goal at `goal` and `last` the distance before the first of them; also
    the distances [..., S] and where the goal is reached [..., S]."""
    goal_cfg = self.inner._task.goal  # pylint: disable=protected-access
    dist = np.sqrt(np.sum(np.square(goal - agent), axis=-1))
    before = np.concatenate([np.broadcast_to(last, dist.shape[:-1] + (1,)), dist[..., :-1]], -1)
    reward = (before - dist) * goal_cfg.reward_distance
    reached = dist <= goal_cfg.size
    return np.where(reached, reward + goal_cfg.reward_goal, reward), dist, reached

  def _after_goals(self, state, qpos, agent, reward, end, steps0):
    """Redo the rewards of one sequence from its first goal on, as the env does: a
    new goal drawn from the env's generator (advanced by one frameskip draw per
    simulator step) where the goal is reached, or the episode's end if none can be
    placed. Returns the sequence's last simulator step (`end` if not cut short)."""
    from safety_gymnasium.utils.common_utils import ResamplingError  # pylint: disable=import-outside-toplevel
    import mujoco  # pylint: disable=import-outside-toplevel
    task = self.inner._task  # pylint: disable=protected-access
    model, data = task.model, task.data
    # What goal placement reads and writes, back at the snapshot (the whole env is
    # restored by `score` at the end; a full set_state per sequence costs more).
    task.world_info.layout = {k: np.array(v) for k, v in state['layout'].items()}
    task.random_generator.layout = task.world_info.layout
    rng = task.random_generator.random_generator
    rng.set_state(state['rng'])
    model.body_pos[:] = state['body_pos']
    task.last_dist_goal = state['task']['last_dist_goal']
    mujoco.mj_kinematics(model, data)
    n_skip, p_skip = task.sim_conf.frameskip_binom_n, task.sim_conf.frameskip_binom_p
    drawn = 0
    j = 0
    while j <= end:
      goal = data.body('goal').xpos[:2].copy()
      part, _, reached = self._rewards(agent[j:end + 1], goal, float(task.last_dist_goal))
      hits = np.flatnonzero(reached)
      if not len(hits):
        reward[j:end + 1] = part
        return end
      k = j + int(hits[0])
      reward[j:k + 1] = part[:k + 1 - j]
      if not task.mechanism_conf.continue_goal:
        return k
      for _ in range(k + 1 - drawn):   # the frameskip draws of steps drawn..k
        rng.binomial(n_skip, p_skip)
      drawn = k + 1
      data.qpos[:] = qpos[k]
      mujoco.mj_forward(model, data)
      task.update_layout()
      try:
        task.update_world()   # a new goal; last_dist_goal from the agent at step k
      except ResamplingError:
        if task.mechanism_conf.terminate_resample_failure:
          return k
        raise
      if steps0 + k + 1 >= task.num_steps:
        return k
      j = k + 1
    return end

  def score(self, state, actions) -> tuple[np.ndarray, np.ndarray]:
    """(returns [N], costs [N]) of `actions` [N, H, A] in [-1, 1] from `state` (a
    snapshot of `env.get_state()`), equal to stepping the env; the env is left at
    `state`."""
    actions = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
    env, inner = self.env, self.inner
    env.set_state(state)
    task = inner._task  # pylint: disable=protected-access
    model, data = task.model, task.data
    xy_fn = self._agent_xy_fn(model, data)
    if xy_fn is None or not np.array_equal(xy_fn(data.qpos), data.body('agent').xpos[:2]):
      raise NotImplementedError('the agent body is not covered (see sim_rollout.py)')
    n, h = actions.shape[:2]
    qpos = self._rollout(model, data, actions).reshape(n, h * self.repeat, model.nq)
    agent = xy_fn(qpos)                                              # [N, S, 2]
    goal = data.body('goal').xpos[:2].copy()
    reward, _, reached = self._rewards(agent, goal, float(task.last_dist_goal))
    # The Builder's counter ends the episode: simulator step k (0-based) is the last
    # when steps0 + k + 1 >= num_steps; later steps never happen.
    steps0 = int(inner._env.steps)  # pylint: disable=protected-access
    ends = np.full(n, min(h * self.repeat, max(int(task.num_steps) - steps0, 1)) - 1)
    flat = np.arange(h * self.repeat)
    for i in np.flatnonzero(np.any(reached & (flat <= ends[:, None]), axis=1)):
      ends[i] = self._after_goals(state, qpos[i], agent[i], reward[i], ends[i], steps0)
    env.set_state(state)
    clip = task.reward_conf.reward_clip
    if clip:
      reward = np.where((reward > -clip) & (reward < clip), reward, np.clip(reward, -clip, clip))
    cost = np.zeros_like(reward)
    hazards = getattr(task, 'hazards', None)
    if hazards is not None and hazards.is_constrained and hazards.num:
      for i in range(hazards.num):  # in the env's order, for the same float sums
        spot = data.body(f'hazard{i}').xpos[:2].copy()
        d = np.sqrt(np.sum(np.square(spot - agent), axis=-1))
        cost = np.where(d <= hazards.size, cost + hazards.cost * (hazards.size - d), cost)
      if task.cost_conf.constrain_indicator:
        cost = (cost > 0.0).astype(np.float64)
    alive = flat <= ends[:, None]
    reward = np.where(alive, reward.astype(np.float32).astype(np.float64), 0.0)
    cost = np.where(alive, cost.astype(np.float32).astype(np.float64), 0.0)
    reward, cost = reward.reshape(n, h, self.repeat), cost.reshape(n, h, self.repeat)
    ret_steps, cost_steps = np.zeros((n, h)), np.zeros((n, h))
    for k in range(self.repeat):  # ActionRepeat's float64 sums, in order
      ret_steps = ret_steps + reward[:, :, k]
      cost_steps = cost_steps + cost[:, :, k]
    ret_steps = ret_steps.astype(np.float32).astype(np.float64)
    cost_steps = cost_steps.astype(np.float32).astype(np.float64)
    returns, costs = np.zeros(n), np.zeros(n)
    for t in range(h):  # mpc_sim.rollout's float sums, in order
      returns = returns + ret_steps[:, t]
      costs = costs + cost_steps[:, t]
    return returns, costs

  def close(self) -> None:
    if self._pool is not None:
      self._pool.close()
      self._pool = None
