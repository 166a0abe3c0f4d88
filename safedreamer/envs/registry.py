"""Task names -> environments: `make_env('SUITE/ID', config)`.

Built-in suites (imported only when used):
  safetygym/<id>   any Safety-Gymnasium id, e.g. safetygym/SafetyPointGoal1-v0
                   (config.env.obs picks 'lidar', 'coords' or 'vision')
  toy/hazard       the tiny CMDP of `toy.py`
  gym/<id>         any Gymnasium id whose steps report info["cost"] (see gym_cost.py)
  carracing/CarRacing-v2   Box2D car racing with a wheel-skid cost (carracing.py)

Your own environments: `register('mysuite', factory)` adds a whole suite (any id),
`register('mysuite/MyEnv-v0', factory)` one task (exact names win over suites). The
factory is called with whichever of the keyword arguments `task_id` (the part after
the slash), `config` (the validated Config) and `seed` (int) it declares, and returns
a `CostEnv` or a `gymnasium.Env` (wrapped by `GymCostEnv`: cost from info["cost"]).

To make `safedreamer train --task mysuite/MyEnv-v0` find a suite that lives in your
own module, name the module in the environment variable SAFEDREAMER_ENV_MODULES
(comma-separated, e.g. `SAFEDREAMER_ENV_MODULES=my_envs`); it is imported before an
unknown task is reported (subprocess workers inherit it too).

Every env gets `config.env.action_repeat` through `wrappers.ActionRepeat`, so its
`episode_length` is in agent steps.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
from typing import Any, Callable

from safedreamer.envs.base import CostEnv
from safedreamer.envs.safety_gym_compat import import_gymnasium
from safedreamer.envs.wrappers import ActionRepeat, Wrapper

ENV_MODULES_VAR = 'SAFEDREAMER_ENV_MODULES'
Factory = Callable[..., Any]


class UnknownTaskError(ValueError):
  """A task name that no suite provides; the message is one line."""


# -- built-in suites -----------------------------------------------------------------

def _safetygym(task_id: str, config, seed: int) -> CostEnv:
  from safedreamer.envs.safety_gym import make_safety_gym  # pylint: disable=import-outside-toplevel
  return make_safety_gym(task_id, obs=config.env.obs, image_size=config.env.image_size,
                         episode_length=config.env.episode_length, seed=seed)


def _safetygym_ids() -> list[str]:
  from safedreamer.envs.safety_gym import task_ids  # pylint: disable=import-outside-toplevel
  return task_ids()


def _toy(task_id: str, config, seed: int) -> CostEnv:
  from safedreamer.envs.toy import ToyHazard  # pylint: disable=import-outside-toplevel
  if config.env.obs == 'vision':
    raise ValueError("toy/hazard has no images: use --env.obs lidar or coords (both give its "
                     "8-number 'vector')")
  return ToyHazard(seed=seed)


def _gym(task_id: str, config, seed: int) -> CostEnv:
  from safedreamer.envs.gym_cost import GymCostEnv  # pylint: disable=import-outside-toplevel
  return GymCostEnv(task_id, image_size=config.env.image_size, seed=seed)


def _gym_ids() -> list[str]:
  gymnasium = import_gymnasium()
  return sorted(gymnasium.envs.registry)


def _carracing(task_id: str, config, seed: int) -> CostEnv:
  from safedreamer.envs.carracing import CarRacingSkid  # pylint: disable=import-outside-toplevel
  return CarRacingSkid(image_size=config.env.image_size, seed=seed)


# suite -> (factory, function listing its valid ids or None when any id is accepted)
_BUILTIN: dict[str, tuple[Factory, Callable[[], list[str]] | None]] = {
    'safetygym': (_safetygym, _safetygym_ids),
    'toy': (_toy, lambda: ['hazard']),
    'gym': (_gym, _gym_ids),
    'carracing': (_carracing, lambda: ['CarRacing-v2']),
}
_SUITES: dict[str, Factory] = {}
_TASKS: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
  """Register a suite ('mysuite') or a single task ('mysuite/MyEnv-v0').

  Registering the same name again replaces the earlier factory. Built-in suite names
  cannot be replaced (their single tasks can be added to, e.g. 'toy/mine').
  """
  if not callable(factory):
    raise TypeError(f'factory for {name!r} must be callable, got {type(factory).__name__}')
  if not name or name.count('/') > 1 or name.startswith('/') or name.endswith('/'):
    raise ValueError(f"cannot register {name!r}: use 'SUITE' or 'SUITE/ID'")
  if '/' in name:
    _TASKS[name] = factory
  elif name in _BUILTIN:
    raise ValueError(f"cannot register suite {name!r}: it is built in (register '{name}/ID' "
                     'for a single task instead)')
  else:
    _SUITES[name] = factory


def registered() -> dict[str, list[str]]:
  """{'suites': [...], 'tasks': [...]}: what `make_env` knows besides Gymnasium ids."""
  _import_user_modules()
  return {'suites': sorted(set(_BUILTIN) | set(_SUITES)), 'tasks': sorted(_TASKS)}


def _safetygym_obs(task_id: str) -> tuple[str, ...]:
  # The MuJoCo locomotion tasks have only their native vector (see safety_gym.py).
  return ('lidar',) if 'Velocity' in task_id else ('lidar', 'coords', 'vision')


# suite -> the observation modes (`--env.obs`) of one of its ids, where known.
_OBS: dict[str, Callable[[str], tuple[str, ...]]] = {
    'safetygym': _safetygym_obs,
    'toy': lambda task_id: ('lidar', 'coords'),
    'carracing': lambda task_id: ('image',),
}


def catalogue() -> list[dict]:
  """What `make_env` knows, suite by suite: [{'suite', 'kind', 'tasks': [(name, modes)]}].

  kind is 'built-in', 'registered' (a user suite, which accepts any id: its one entry
  is 'SUITE/*') or 'registered tasks' (single tasks registered under a suite name that
  is not itself a registered suite). modes are the `--env.obs` values of the task where
  known, else (). Gymnasium's ids are all listed under 'gym', though only those whose
  steps report info["cost"] are useful.
  """
  _import_user_modules()
  out = []
  for suite, (_, list_ids) in _BUILTIN.items():
    obs = _OBS.get(suite, lambda task_id: ())
    tasks = {f'{suite}/{i}': obs(i) for i in list_ids()}
    tasks.update({t: () for t in _TASKS if t.startswith(suite + '/')})  # user tasks win
    out.append({'suite': suite, 'kind': 'built-in', 'tasks': sorted(tasks.items())})
  for suite in sorted(_SUITES):
    extra = sorted(t for t in _TASKS if t.startswith(suite + '/'))
    out.append({'suite': suite, 'kind': 'registered',
                'tasks': [(f'{suite}/*', ())] + [(t, ()) for t in extra]})
  loose = sorted({t.split('/', 1)[0] for t in _TASKS} - set(_BUILTIN) - set(_SUITES))
  for suite in loose:
    out.append({'suite': suite, 'kind': 'registered tasks',
                'tasks': [(t, ()) for t in sorted(_TASKS) if t.startswith(suite + '/')]})
  return out


@functools.lru_cache(maxsize=None)
def _import_module(name: str) -> None:
  try:
    importlib.import_module(name)
  except ImportError as error:
    raise UnknownTaskError(f'cannot import module {name!r} named in ${ENV_MODULES_VAR}: '
                           f'{error}') from None


def _import_user_modules() -> None:
  for name in os.environ.get(ENV_MODULES_VAR, '').split(','):
    if name.strip():
      _import_module(name.strip())


def resolve(task: str) -> tuple[Factory, str]:
  """(factory, id) for a task name, or UnknownTaskError with a one-line message."""
  _import_user_modules()
  if task in _TASKS:
    return _TASKS[task], task.split('/', 1)[1]
  if '/' not in task:
    raise UnknownTaskError(f"unknown task '{task}': task names are 'SUITE/ID', e.g. "
                           "'safetygym/SafetyPointGoal1-v0' or 'toy/hazard'")
  suite, task_id = task.split('/', 1)
  if suite in _SUITES:
    return _SUITES[suite], task_id
  if suite not in _BUILTIN:
    known = ', '.join(sorted(set(_BUILTIN) | set(_SUITES)))
    raise UnknownTaskError(f"unknown task '{task}': no suite '{suite}' (known: {known}; add "
                           'yours with safedreamer.envs.register)')
  factory, list_ids = _BUILTIN[suite]
  ids = list_ids() if list_ids else None
  if ids is not None and task_id not in ids:
    near = difflib.get_close_matches(task_id, ids, n=3, cutoff=0.6)
    hint = (f"did you mean {', '.join(near)}?" if near else
            f"{len(ids)} ids are known: 'safedreamer tasks {suite}/' lists them")
    raise UnknownTaskError(f"unknown task '{task}': {suite} has no '{task_id}' ({hint})")
  return factory, task_id


def env_factory(task: str, config, seed: int | None = None) -> Callable[[], CostEnv]:
  """A callable that builds the env (resolved now, so a bad name fails here).

  The callable can be pickled with cloudpickle and sent to a subprocess.
  """
  factory, task_id = resolve(task)
  seed = config.seed if seed is None else int(seed)
  return functools.partial(_build, factory, task_id, config, seed)


def make_env(task: str, config, seed: int | None = None) -> CostEnv:
  """Build the env named `task` ('SUITE/ID') for `config` (seed: config.seed by
  default), with config.env.action_repeat applied."""
  return env_factory(task, config, seed)()


def make_env_batch(task: str, config, num_envs: int | None = None,
                   parallel: bool | None = None):
  """An `EnvBatch` of config.run.num_envs envs (seeds config.seed + i), stepped in
  subprocesses when config.run.parallel."""
  from safedreamer.envs.parallel import EnvBatch  # pylint: disable=import-outside-toplevel
  num_envs = config.run.num_envs if num_envs is None else num_envs
  parallel = config.run.parallel if parallel is None else parallel
  factories = [env_factory(task, config, config.seed + i) for i in range(num_envs)]
  return EnvBatch(factories, parallel=parallel, max_restarts=config.env.max_restarts)


def _build(factory: Factory, task_id: str, config, seed: int) -> CostEnv:
  offered = {'task_id': task_id, 'config': config, 'seed': seed}
  params = inspect.signature(factory).parameters
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    kwargs = offered
  else:
    kwargs = {k: v for k, v in offered.items() if k in params}
  env = factory(**kwargs)
  if not isinstance(env, CostEnv):
    gymnasium = import_gymnasium()
    if not isinstance(env, gymnasium.Env):
      raise TypeError(f'the factory of {task_id!r} returned {type(env).__name__}, '
                      'expected a CostEnv or a gymnasium.Env')
    from safedreamer.envs.gym_cost import GymCostEnv  # pylint: disable=import-outside-toplevel
    env = GymCostEnv(env, image_size=config.env.image_size, seed=seed)
  elif 'seed' not in kwargs:
    env = _SeedFirstReset(env, seed)
  if config.env.action_repeat > 1:
    env = ActionRepeat(env, config.env.action_repeat)
  return env


class _SeedFirstReset(Wrapper):
  """Passes the seed to the first reset of an env whose factory took no seed."""

  def __init__(self, env: CostEnv, seed: int):
    super().__init__(env)
    self._seed = seed

  def reset(self, seed: int | None = None):
    if seed is None:
      seed, self._seed = self._seed, None
    return self.env.reset(seed)
