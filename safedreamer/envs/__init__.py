"""Cost-carrying environments behind one interface (`base.CostEnv`).

Light to import: the simulators (Safety-Gymnasium, MuJoCo, Box2D, Gymnasium) are
imported only when an env of theirs is made.
"""
from safedreamer.envs.base import STEP_KEYS, CostEnv, Step, make_step
from safedreamer.envs.parallel import EnvBatch, EnvCrashError, stack_steps
from safedreamer.envs.registry import (UnknownTaskError, env_factory, make_env, make_env_batch,
                                       register, registered)

__all__ = [
    'STEP_KEYS', 'CostEnv', 'Step', 'make_step', 'EnvBatch', 'EnvCrashError', 'stack_steps',
    'UnknownTaskError', 'env_factory', 'make_env', 'make_env_batch', 'register', 'registered',
]
