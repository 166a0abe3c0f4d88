"""The typed schema of every config key, with its default.

Each section is a pydantic model that forbids unknown keys, so a typo or a value of
the wrong type fails validation. Presets (presets.yaml) and command-line overrides
are partial nested dicts merged on top of these defaults; see config/load.py.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Every numeric key carries bounds (tests/test_config_bounds.py refuses one without):
PosInt = Annotated[int, Field(ge=1)]             # sizes, counts
NonNegInt = Annotated[int, Field(ge=0)]          # step counts, intervals (0: never)
PosFloat = Annotated[float, Field(gt=0)]         # learning rates, epsilons, clips
NonNegFloat = Annotated[float, Field(ge=0)]      # weights, ratios, limits
Fraction = Annotated[float, Field(ge=0, le=1)]   # probabilities, rates, discounts
Percentile = Annotated[float, Field(ge=0, le=100)]


class Inconsistent(ValueError):
  """A key whose value contradicts another key; `key` is relative to the section
  that raised it (config/load.py prefixes the section's path)."""

  def __init__(self, key: str, value, allowed: str):
    super().__init__(f'{key}={value!r} (allowed: {allowed})')
    self.key, self.value, self.allowed = key, value, allowed


inconsistent = Inconsistent


class Section(BaseModel):
  model_config = ConfigDict(extra='forbid', validate_assignment=True)


class Run(Section):
  steps: PosInt = 250_000               # simulator steps to train in total
  train_ratio: NonNegFloat = 512.0         # replayed steps per agent (policy) step
  prefill: NonNegInt = 5_000               # simulator steps of random actions before training
  num_envs: PosInt = 1                  # environments stepped per agent step
  parallel: bool = False             # step the environments in separate processes
  log_every: PosInt = 2_000             # simulator steps between scalar logs
  ckpt_every: PosInt = 10_000           # simulator steps between checkpoints
  eval_every: NonNegInt = 25_000           # simulator steps between evaluations (0: never)
  eval_episodes: PosInt = 3
  report_every: NonNegInt = 50_000         # simulator steps between open-loop reports (0: never)
  keep_checkpoints: PosInt = 2
  progress: bool = True              # progress bar on the terminal


class Env(Section):
  action_repeat: PosInt = 4
  obs: Literal['lidar', 'coords', 'vision'] = 'lidar'
  image_size: int = Field(64, ge=8, le=512)  # a power of two (the CNN halves it to 4x4)
  episode_length: PosInt = 1000         # simulator steps of a Safety-Gymnasium episode
  max_restarts: NonNegInt = 100            # give up after this many environment crashes


  @model_validator(mode='after')
  def _image_size(self):
    if self.image_size & (self.image_size - 1):
      raise inconsistent('image_size', self.image_size, 'a power of two from 8 to 512')
    return self


class Replay(Section):
  capacity: PosInt = 1_000_000          # steps kept (FIFO eviction of whole chunks)
  chunk: PosInt = 1024                  # steps per chunk file
  batch_size: PosInt = 16
  batch_length: PosInt = 64


class Model(Section):
  deter: PosInt = 256
  units: PosInt = 256
  stoch: PosInt = 16                    # number of categorical latents
  classes: PosInt = 16                  # classes per latent
  mlp_layers: PosInt = 2                # encoder/decoder MLP depth
  mlp_units: PosInt = 256               # encoder/decoder MLP width
  head_layers: PosInt = 2               # reward/cost/continue head depth (width: units)
  cnn_depth: PosInt = 32
  unimix: Fraction = 0.01
  bins: int = Field(255, ge=2)
  free_nats: NonNegFloat = 1.0
  dyn_scale: NonNegFloat = 0.5
  rep_scale: NonNegFloat = 0.1
  # 'twohot': like the reward head (the authors'); 'hurdle': P(cost > 0) x size, for
  # rare costs (nn/functions.py)
  cost_head: Literal['twohot', 'hurdle'] = 'twohot'
  cost_weight: NonNegFloat = 10.0          # cost loss multiplier on costly steps (see world_model)
  # The world model learns reward * reward_scale, so imagined returns, the critics and
  # the planner's J_R are in these units; EpRet is always the environment's.
  reward_scale: float = Field(1.0, gt=0)
  lr: PosFloat = 1e-4
  eps: PosFloat = 1e-8
  clip: PosFloat = 1000.0
  # World-model updates per agent update, each on its own batch of replay.batch_size
  # (so the model replays this many times train_ratio); actor and critics learn once.
  updates: int = Field(1, ge=1, le=64)
  # Steps of prior rollouts along the recorded actions whose predicted costs are also
  # fitted (world_model.overshoot_loss); 0: off, as DreamerV3 and the paper.
  cost_overshoot: int = Field(0, ge=0, le=64)
  overshoot_every: int = Field(1, ge=1, le=64)   # rollouts start at every n-th step


class Behavior(Section):
  horizon: PosInt = 15
  gamma: Fraction = 0.997
  return_lambda: Fraction = 0.95   # lambda of the lambda-returns
  layers: PosInt = 2                    # actor and critic MLP depth
  units: PosInt = 256
  actor_lr: PosFloat = 3e-5
  critic_lr: PosFloat = 3e-5
  eps: PosFloat = 1e-5
  clip: PosFloat = 100.0
  entropy: NonNegFloat = 3e-4
  slow_mix: Fraction = 0.02             # EMA rate of the slow critics
  slow_reg: NonNegFloat = 1.0              # weight of the slow-critic regression target
  # Weight of the critics' second loss on the replay batch: lambda-returns of the real
  # rewards and costs, bootstrapped with the imagined returns (DreamerV3's later 'repval',
  # 0.3; behavior/returns.py). 0: imagination only, as the paper.
  replay_critic: NonNegFloat = 0.0
  retnorm_decay: Fraction = 0.99
  retnorm_low: Percentile = 5.0           # percentile
  retnorm_high: Percentile = 95.0
  # S = max(floor, P95 - P5). DreamerV3 uses 1; tasks whose returns span much less
  # than 1 (Safety-Gymnasium's distance rewards) leave the actor a weak reward signal
  # next to the entropy bonus and the Lagrangian term unless the floor is lower.
  retnorm_floor: float = Field(1.0, gt=0)
  min_std: PosFloat = 0.1
  max_std: PosFloat = 1.0
  # Cost of imagined states for the cost critic (and so BSRP-Lag's actor): 'head' =
  # the cost head; 'obs' = counted from the decoded ego-frame coordinates (SPEC 2.6;
  # needs env.obs 'coords'; behavior/obs_cost.py) x env.action_repeat (one count per
  # state, an agent step spans action_repeat simulator steps), with the gradient of a
  # smooth count of width cost_softness metres (0: no gradient through the count).
  cost_source: Literal['head', 'obs'] = 'head'
  cost_softness: float = Field(0.05, ge=0)

  @model_validator(mode='after')
  def _ordered(self):
    if self.min_std > self.max_std:
      raise inconsistent('min_std', self.min_std,
                         f'at most max_std = {self.max_std}')
    if self.retnorm_low >= self.retnorm_high:
      raise inconsistent('retnorm_low', self.retnorm_low,
                         f'below retnorm_high = {self.retnorm_high}')
    return self


class PID(Section):
  """OSRP-Lag PID Lagrangian (SPEC 2.5; behavior/pid.py), one update per finished
  training episode. EMAs are bias-corrected; D is 0 until d_delay updates exist."""
  kp: float = Field(0.1, ge=0)
  ki: float = Field(0.01, ge=0)
  kd: float = Field(0.01, ge=0)
  lam_init: float = Field(0.0, ge=0)       # multiplier before the first update
  lam_max: float = Field(0.1, ge=0)
  i_init: float = Field(0.001, ge=0)       # integral term before the first update
  cost_ema: float = Field(0.99, ge=0, lt=1)  # decay of the episode-cost EMA (Jbar)
  p_ema: float = Field(0.95, ge=0, lt=1)     # decay of the EMA of Jbar - cost_limit (P)
  d_delay: int = Field(10, ge=1)           # D = max(0, Jbar - Jbar d_delay updates ago)
  warmup_episodes: int = Field(0, ge=0)    # lam stays lam_init, I i_init, for this many

  @model_validator(mode='after')
  def _lam_range(self):
    if self.lam_init > self.lam_max:
      raise inconsistent('lam_init', self.lam_init, f'at most lam_max = {self.lam_max}')
    return self


class LagrangianPID(PID):
  """BSRP-Lag's PID (lagrangian.multiplier 'pid'). Its lam weighs cost against the
  return scaled to S, not the planner's J_R in reward units, hence other gains than
  OSRP-Lag's: a ~10-episode cost average, P on its excess over the limit, a small
  integral, no D (single episodes' costs are too noisy to differentiate)."""
  kp: float = Field(0.05, ge=0)
  ki: float = Field(5e-4, ge=0)
  kd: float = Field(0.0, ge=0)
  lam_max: float = Field(10.0, ge=0)
  i_init: float = Field(0.0, ge=0)
  cost_ema: float = Field(0.9, ge=0, lt=1)
  p_ema: float = Field(0.0, ge=0, lt=1)


class Lagrangian(Section):
  """BSRP-Lag's multiplier (SPEC 2.3). 'augmented' (the paper): the augmented
  Lagrangian Psi(C - b) on the imagined cost estimate C, lam and mu moved after every
  update. 'pid': lam from a PID controller (`pid` below) on the costs of finished
  training episodes, and the actor's loss gains lam * C / max(S, 1) (S the return
  scale of its advantages), so lam is the return one unit of cost is worth
  (behavior/actor_critic.py)."""
  multiplier: Literal['augmented', 'pid'] = 'augmented'
  multiplier_init: NonNegFloat = 1e-6
  penalty_init: PosFloat = 5e-9
  penalty_power: NonNegFloat = 1e-5        # mu <- min(penalty_max, mu * (1 + penalty_power))
  penalty_max: PosFloat = 1.0
  pessimistic: bool = True           # sum cost returns over the horizon (else mean)
  pid: LagrangianPID = LagrangianPID()  # the controller for multiplier 'pid'

  @model_validator(mode='after')
  def _penalty_range(self):
    if self.penalty_init > self.penalty_max:
      raise inconsistent('penalty_init', self.penalty_init,
                         f'at most penalty_max = {self.penalty_max}')
    return self


class Planner(Section):
  """Constrained cross-entropy planning (SPEC 2.4; behavior/ccem.py). Also MPC:sim's
  settings (SPEC 2.7: samples 150, horizon 15, iterations 6, mixture 0)."""
  horizon: int = Field(15, ge=1)
  samples: int = Field(500, ge=1)          # N Gaussian sequences per iteration
  elites: int = Field(50, ge=1)            # E
  iterations: int = Field(6, ge=1)         # J
  init_std: float = Field(1.0, gt=0)
  momentum: float = Field(0.1, ge=0, lt=1)   # weight of the previous mean in the refit
  mixture: float = Field(0.05, ge=0, le=1)      # actor sequences: round(mixture * samples)
  sample_train: bool = True          # sample the first action while training
  sample_eval: bool = False
  # Per-step cost of imagined states (OSRP, OSRP-Lag): 'head' = the world model's cost
  # head; 'obs' = counted from the decoded ego-frame coordinate observation (SPEC 2.6;
  # needs env.obs 'coords'; behavior/obs_cost.py).
  cost_source: Literal['head', 'obs'] = 'head'

  @model_validator(mode='after')
  def _enough_candidates(self):
    total = self.samples + int(round(self.mixture * self.samples))
    if self.elites > total:
      raise inconsistent('elites', self.elites,
                         f'at most the {total} sequences sampled per iteration')
    return self


class Jax(Section):
  platform: Literal['cpu', 'gpu', 'auto'] = 'cpu'
  # JAX re-runs a computation that produced a NaN op by op and names the operation
  # (slow); any run stops at the first update with a non-finite metric regardless
  debug_nans: bool = False
  # Data-parallel updates: each training batch is split across this many devices
  # (parameters replicated; agents/sharding.py). On the CPU the CLI asks XLA for as
  # many host devices. The batch size must be divisible by it.
  devices: int = Field(1, ge=1, le=1024)
  # Persistent compilation cache folder; '' = $SAFEDREAMER_JAX_CACHE, else
  # $XDG_CACHE_HOME/safedreamer/jax (~/.cache/...); 'off' disables it (run/jax_setup.py).
  compile_cache: str = ''


# W&B names: no '/', '\\', '#', '?', '%' or ':' (they break its URLs); tags <= 64 chars.
WandbName = Annotated[str, Field(max_length=128, pattern=r'^[^/\\#?%:]*$')]


class Logger(Section):
  """Optional Weights & Biases logging (run/wandb_log.py), besides metrics.jsonl and
  TensorBoard. Needs the `wandb` package (`pip install -e '.[wandb]'`)."""
  wandb: WandbName = ''              # W&B project; '' = no W&B
  entity: WandbName = ''             # W&B team or user ('' = your default entity)
  group: WandbName = ''              # groups runs in the W&B UI, e.g. seeds of one setting
  tags: str = Field('', max_length=512, pattern=r'^[^,]{0,64}(,[^,]{1,64})*$')  # comma-separated
  offline: bool = False              # write W&B files locally only (`wandb sync` them later)


class Config(Section):
  # Environment seeds are seed * 10_000 + 100 * resumes + env index, and Safety-Gymnasium
  # takes seeds below 2**32.
  seed: int = Field(0, ge=0, le=400_000)
  task: str = 'safetygym/SafetyPointGoal1-v0'
  method: Literal['random', 'dreamerv3', 'bsrp_lag', 'osrp', 'osrp_lag', 'mpc_sim'] = 'bsrp_lag'
  cost_limit: NonNegFloat = 2.0
  logdir: Optional[str] = None       # default: runs/<task>/<presets>/seed<seed>
  run: Run = Run()
  env: Env = Env()
  replay: Replay = Replay()
  model: Model = Model()
  behavior: Behavior = Behavior()
  lagrangian: Lagrangian = Lagrangian()
  pid: PID = PID()
  planner: Planner = Planner()
  jax: Jax = Jax()
  logger: Logger = Logger()

  @model_validator(mode='after')
  def _consistent(self):
    """Invariants between sections that the code downstream assumes."""
    if self.replay.batch_length > self.replay.capacity:
      raise inconsistent('replay.batch_length', self.replay.batch_length,
                         f'at most replay.capacity = {self.replay.capacity}')
    if self.model.cost_overshoot >= self.replay.batch_length:  # no step left to predict
      raise inconsistent('model.cost_overshoot', self.model.cost_overshoot,
                         f'below replay.batch_length = {self.replay.batch_length}')
    if self.replay.batch_size % self.jax.devices:  # data-parallel: B/N sequences per device
      raise inconsistent('jax.devices', self.jax.devices,
                         f'a divisor of replay.batch_size = {self.replay.batch_size}')
    if self.env.obs != 'coords':
      if self.planner.cost_source == 'obs' and self.method in ('osrp', 'osrp_lag'):
        raise inconsistent('planner.cost_source', 'obs', "'head' unless env.obs is 'coords'")
      if self.behavior.cost_source == 'obs' and self.method in ('bsrp_lag', 'osrp_lag', 'osrp'):
        raise inconsistent('behavior.cost_source', 'obs', "'head' unless env.obs is 'coords'")
    return self


def all_keys(model: type[BaseModel] = Config, prefix: str = '') -> list[str]:
  """Every dotted key of the schema, e.g. ['seed', ..., 'run.steps', ...]."""
  keys = []
  for name, field in model.model_fields.items():
    ann = field.annotation
    if isinstance(ann, type) and issubclass(ann, BaseModel):
      keys += all_keys(ann, prefix + name + '.')
    else:
      keys.append(prefix + name)
  return keys


def field_of(key: str, model: type[BaseModel] = Config):
  """The pydantic FieldInfo of a dotted key, or None if there is no such key."""
  *parents, leaf = key.split('.')
  for part in parents:
    field = model.model_fields.get(part)
    if field is None or not (isinstance(field.annotation, type)
                             and issubclass(field.annotation, BaseModel)):
      return None
    model = field.annotation
  return model.model_fields.get(leaf)
