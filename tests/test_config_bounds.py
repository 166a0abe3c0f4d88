"""Every numeric config key has bounds, and a value outside them stops `train` with
one line naming the key, the value and the allowed range, exit 2, nothing written."""
import typing

import pytest

from safedreamer import cli
from safedreamer.config.load import ConfigError, load_config, presets
from safedreamer.config.schema import all_keys, field_of

BOUNDS = ('ge', 'gt', 'le', 'lt')
BASE = ['train', '--configs', 'random', 'tiny', '--task', 'toy/hazard']


def numeric_keys():
  out = []
  for key in all_keys():
    ann = field_of(key).annotation
    ann = typing.get_args(ann)[0] if typing.get_origin(ann) is typing.Annotated else ann
    if ann in (int, float):
      out.append((key, ann))
  return out


def bounds(key):
  found = {}
  for item in field_of(key).metadata:
    for attr in BOUNDS:
      if getattr(item, attr, None) is not None:
        found[attr] = getattr(item, attr)
  return found


def out_of_range(key):
  """A value just outside the key's bounds (below the lower one if it has one)."""
  b = bounds(key)
  if 'ge' in b:
    return b['ge'] - 1
  if 'gt' in b:
    return b['gt']  # gt refuses the bound itself
  return (b['le'] + 1) if 'le' in b else b['lt']


def test_every_numeric_key_has_bounds():
  """A key added later without bounds fails here: give it Field(ge=...) etc."""
  keys = numeric_keys()
  assert len(keys) > 60
  missing = [key for key, _ in keys if not bounds(key)]
  assert not missing, f'numeric config keys without bounds: {missing}'


def test_the_check_notices_a_key_without_bounds(monkeypatch):
  """The walk above is not vacuous: a bare `int` field is reported."""
  from pydantic.fields import FieldInfo
  from safedreamer.config import schema
  monkeypatch.setitem(schema.Run.model_fields, 'new_key', FieldInfo(annotation=int, default=1))
  assert ('run.new_key', int) in numeric_keys() and not bounds('run.new_key')


def test_all_presets_are_within_bounds():
  for name in presets():
    load_config([name])
  load_config(['bsrp_lag', 'small']), load_config(['mpc_sim', 'tiny'])


@pytest.mark.parametrize('key,kind', numeric_keys())
def test_out_of_range_values_are_refused(key, kind, tmp_path, capsys):
  value = out_of_range(key)
  logdir = tmp_path / 'run'
  code = cli.main(BASE + ['--logdir', str(logdir), f'--{key}', str(value)])
  err = capsys.readouterr().err.strip()
  assert code == 2, err
  assert len(err.splitlines()) == 1 and f"'{key}'" in err and 'allowed' in err, err
  assert not logdir.exists()


@pytest.mark.parametrize('overrides,key', [
    ({'replay.batch_length': 30000}, 'replay.batch_length'),      # > capacity 20000
    ({'env.image_size': 48}, 'env.image_size'),
    ({'planner.elites': 40}, 'planner.elites'),                    # > 32 + 2 samples
    ({'behavior.min_std': 2.0}, 'behavior.min_std'),
    ({'behavior.retnorm_low': 96}, 'behavior.retnorm_low'),
    ({'lagrangian.penalty_init': 2.0}, 'lagrangian.penalty_init'),
    ({'pid.lam_init': 1.0}, 'pid.lam_init'),                        # > lam_max 0.1
    ({'method': 'osrp', 'planner.cost_source': 'obs'}, 'planner.cost_source'),
    ({'behavior.cost_source': 'obs'}, 'behavior.cost_source'),
])
def test_inconsistent_values_name_the_key(overrides, key):
  with pytest.raises(ConfigError, match=f"'{key}'.*allowed"):
    load_config(['bsrp_lag', 'tiny'], overrides)
