"""What a sweep is: tasks x methods x seeds, the trials it expands to, and what each
trial's `safedreamer train` process is given (arguments, environment).

No Ray and no JAX here: the CLI validates every trial from these before anything
starts, and the engine only schedules them.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import re
from typing import Any, Mapping

import yaml

# Keys a sweep sets per trial; `--set` may not override them.
PER_TRIAL_KEYS = ('seed', 'task', 'logdir')
FIELDS = ('tasks', 'methods', 'seeds', 'set', 'out', 'cpus_per_trial', 'gpus_per_trial',
          'max_retries', 'address')


class SweepError(ValueError):
  """A bad sweep (one line, exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Resources:
  cpus: float = 1.0        # Ray CPUs per trial; also the trial's XLA/BLAS threads
  gpus: float = 0.0        # Ray GPUs per trial; fractional shares cap JAX's GPU memory


@dataclasses.dataclass(frozen=True)
class Trial:
  task: str
  presets: tuple[str, ...]
  seed: int
  logdir: pathlib.Path
  overrides: tuple[tuple[str, str], ...] = ()

  @property
  def name(self) -> str:
    """DIR-relative folder, e.g. toy_hazard/bsrp_lag-tiny/seed0."""
    return f"{self.task.replace('/', '_')}/{'-'.join(self.presets)}/seed{self.seed}"

  def train_args(self, resources: Resources) -> list[str]:
    """The arguments after `safedreamer train`."""
    args = ['--configs', *self.presets, '--task', self.task, '--seed', str(self.seed),
            '--logdir', str(self.logdir), '--run.progress', 'false']
    keys = {k for k, _ in self.overrides}
    if resources.gpus > 0 and 'jax.platform' not in keys:
      args += ['--jax.platform', 'gpu']
    for key, value in self.overrides:
      args += [f'--{key}', value]
    return args


@dataclasses.dataclass
class Sweep:
  tasks: list[str]
  methods: list[tuple[str, ...]]
  seeds: list[int]
  out: pathlib.Path
  overrides: dict[str, str] = dataclasses.field(default_factory=dict)
  resources: Resources = Resources()
  max_retries: int = 3
  address: str | None = None

  def trials(self) -> list[Trial]:
    out = []
    for task in self.tasks:
      for presets in self.methods:
        for seed in self.seeds:
          trial = Trial(task, presets, seed, self.out, tuple(self.overrides.items()))
          out.append(dataclasses.replace(trial, logdir=self.out / trial.name))
    return out

  def to_dict(self) -> dict:
    return {'tasks': self.tasks, 'methods': [' '.join(m) for m in self.methods],
            'seeds': self.seeds, 'set': dict(self.overrides), 'out': str(self.out),
            'cpus_per_trial': self.resources.cpus, 'gpus_per_trial': self.resources.gpus,
            'max_retries': self.max_retries, 'address': self.address}


def parse_seeds(items: Any) -> list[int]:
  """'0-4' -> [0..4]; '0,2' or ['0', '2'] or [0, 2] -> [0, 2]; '3' -> [3]."""
  if isinstance(items, (int, str)):
    items = [items]
  seeds: list[int] = []
  for item in items:
    for part in str(item).replace(',', ' ').split():
      m = re.fullmatch(r'(\d+)(?:-(\d+))?', part)
      if not m or (m[2] is not None and int(m[2]) < int(m[1])):
        raise SweepError(f"bad seeds '{part}': use N, N-M (M >= N) or a list such as 0,2,5")
      seeds += range(int(m[1]), int(m[2] or m[1]) + 1)
  if not seeds:
    raise SweepError('a sweep needs at least one seed (--seeds 0-4)')
  return list(dict.fromkeys(seeds))


def parse_sets(items: Any) -> dict[str, str]:
  """['run.steps=1000', ...] or {'run.steps': 1000} -> {'run.steps': '1000'}."""
  if isinstance(items, Mapping):
    pairs = [(str(k), v) for k, v in items.items()]
  else:
    pairs = []
    for item in items or []:
      key, eq, value = str(item).partition('=')
      if not eq or not key:
        raise SweepError(f"bad --set '{item}': use key=value, e.g. run.steps=100000")
      pairs.append((key.removeprefix('--'), value))
  out = {}
  for key, value in pairs:
    if key in PER_TRIAL_KEYS:
      raise SweepError(f"--set {key}=... is not allowed: the sweep sets {key} per trial "
                       '(--tasks, --seeds, --out)')
    out[key] = str(value).lower() if isinstance(value, bool) else str(value)
  return out


def _number(value: Any, name: str, low: float) -> float:
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise SweepError(f"{name} must be a number, got '{value}'") from None
  if not math.isfinite(number) or number < low or (low > 0 and number == 0):
    raise SweepError(f'{name} must be {"> 0" if low > 0 else ">= 0"}, got {value}')
  return number


def read_file(path: str | pathlib.Path) -> dict:
  """A YAML sweep file: the same fields as the options (set: a mapping or list)."""
  path = pathlib.Path(path)
  try:
    data = yaml.safe_load(path.read_text(encoding='utf-8'))
  except (OSError, yaml.YAMLError) as e:
    raise SweepError(f'cannot read sweep file {path}: {type(e).__name__}') from None
  if not isinstance(data, dict):
    raise SweepError(f'sweep file {path} must be a mapping of {", ".join(FIELDS)}')
  data = {str(k).replace('-', '_'): v for k, v in data.items()}
  unknown = sorted(set(data) - set(FIELDS))
  if unknown:
    raise SweepError(f"unknown field '{unknown[0]}' in {path}; fields: {', '.join(FIELDS)}")
  return data


def build(fields: Mapping[str, Any]) -> Sweep:
  """A Sweep from merged file/option fields; raises SweepError on bad values."""
  def listed(name: str) -> list:
    value = fields.get(name)
    if value is None or value == [] or value == '':
      raise SweepError(f'a sweep needs --{name.replace("_", "-")} (or {name}: in the sweep file)')
    return [value] if isinstance(value, str) else list(value)

  tasks = [str(t) for t in listed('tasks')]
  methods = []
  for method in listed('methods'):
    presets = tuple(method.split() if isinstance(method, str) else map(str, method))
    if not presets:
      raise SweepError('an empty method: each method is a list of presets, e.g. "bsrp_lag small"')
    methods.append(presets)
  if not fields.get('out'):
    raise SweepError('a sweep needs --out DIR (or out: in the sweep file)')
  out = pathlib.Path(str(fields['out'])).expanduser().absolute()
  if out.exists() and not out.is_dir():
    raise SweepError(f'--out {out} exists and is not a folder')
  cpus = _number(fields.get('cpus_per_trial', 1), '--cpus-per-trial', 1e-9)
  gpus = _number(fields.get('gpus_per_trial', 0) or 0, '--gpus-per-trial', 0)
  if gpus > 1 and gpus != int(gpus):
    raise SweepError(f'--gpus-per-trial above 1 must be a whole number, got {gpus:g}')
  retries = fields.get('max_retries', 3)
  if isinstance(retries, bool) or not str(retries).isdigit():
    raise SweepError(f"--max-retries must be a whole number >= 0, got '{retries}'")
  return Sweep(tasks=list(dict.fromkeys(tasks)), methods=list(dict.fromkeys(methods)),
               seeds=parse_seeds(listed('seeds')), out=out,
               overrides=parse_sets(fields.get('set') or []),
               resources=Resources(cpus, gpus), max_retries=int(retries),
               address=fields.get('address') or None)


def trial_env(resources: Resources, environ: Mapping[str, str]) -> dict[str, str]:
  """Environment variables of a trial's train process, set before JAX starts:
  CPU threads (XLA's thread pool via NPROC, single-threaded Eigen for one CPU, BLAS
  threads) and, for a fraction of a GPU, JAX's share of that GPU's memory."""
  threads = max(1, int(resources.cpus))
  env = {'NPROC': str(threads), 'OMP_NUM_THREADS': str(threads),
         'OPENBLAS_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
  if threads == 1 and 'xla_cpu_multi_thread_eigen' not in environ.get('XLA_FLAGS', ''):
    # First: XLA stops reading flags at a word without '--'.
    env['XLA_FLAGS'] = f"--xla_cpu_multi_thread_eigen=false {environ.get('XLA_FLAGS', '')}".strip()
  if 0 < resources.gpus < 1:
    # A little under the share: CUDA's own context memory lives outside JAX's pool.
    env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{resources.gpus * 0.95:.3f}'
    env['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'true'
  return env


def write_spec(sweep: Sweep) -> pathlib.Path:
  """DIR/sweep.yaml: what was run (re-run with `safedreamer sweep DIR/sweep.yaml`)."""
  sweep.out.mkdir(parents=True, exist_ok=True)
  path = sweep.out / 'sweep.yaml'
  path.write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False), encoding='utf-8')
  return path
