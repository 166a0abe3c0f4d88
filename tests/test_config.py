"""Config: defaults <- presets <- overrides, and one-line errors for bad input."""
import pytest
import yaml

from safedreamer.config.load import ConfigError, from_yaml, load_config, to_yaml
from safedreamer.config.schema import all_keys


def test_required_keys_exist():
  keys = set(all_keys())
  assert {'run.steps', 'run.train_ratio', 'seed', 'cost_limit'} <= keys


def test_presets_apply_left_to_right_and_overrides_last():
  assert load_config(['tiny']).model.deter == 32
  assert load_config(['tiny', 'paper']).model.deter == 256
  assert load_config(['tiny', 'paper']).model.mlp_layers == 3
  assert load_config(['paper', 'tiny']).model.deter == 32
  config = load_config(['tiny'], {'model.deter': '7', 'run.train_ratio': '0.5', 'seed': 3})
  assert (config.model.deter, config.run.train_ratio, config.seed) == (7, 0.5, 3)
  # an untouched key of the same section keeps the preset's value
  assert config.model.units == 32


def test_strings_from_the_command_line_are_converted():
  config = load_config([], {'run.parallel': 'true', 'cost_limit': '0', 'env.obs': 'coords'})
  assert config.run.parallel is True and config.cost_limit == 0.0 and config.env.obs == 'coords'


@pytest.mark.parametrize('overrides, expected', [
    ({'run.step': '5'}, "unknown config key 'run.step'; closest: run.steps"),
    ({'cost_limt': '1'}, "unknown config key 'cost_limt'; closest: cost_limit"),
    ({'run.steps': 'ten'}, "bad value for config key 'run.steps': 'ten'"),
    ({'env.obs': 'pixels'}, "bad value for config key 'env.obs': 'pixels'"),
    ({'run.parallel': 'maybe'}, "bad value for config key 'run.parallel'"),
])
def test_bad_input_is_one_line_and_names_the_key(overrides, expected):
  with pytest.raises(ConfigError) as err:
    load_config([], overrides)
  message = str(err.value)
  assert message.startswith(expected)
  assert '\n' not in message


def test_unknown_preset():
  with pytest.raises(ConfigError, match="unknown preset 'tinny'; closest: tiny"):
    load_config(['tinny'])


def test_yaml_round_trip():
  config = load_config(['tiny', 'dreamerv3'], {'seed': '5'})
  assert from_yaml(to_yaml(config)) == config


def test_a_saved_config_with_old_key_names_still_loads():
  """Runs written before a key was renamed or removed stay readable (eval, resume)."""
  old = yaml.safe_load(to_yaml(load_config(['tiny'])))
  old['behavior'].pop('return_lambda')
  old['behavior']['lam'] = 0.9
  old['jax']['precision'] = 'float32'
  old['lagrangian']['cost_signal'] = 'estimate'
  config = from_yaml(yaml.safe_dump(old))
  assert config.behavior.return_lambda == 0.9
  assert config.model_dump()['jax'] == load_config(['tiny']).model_dump()['jax']
  with pytest.raises(ConfigError, match="unknown config key 'behavior.typo'"):
    from_yaml(yaml.safe_dump({**old, 'behavior': {**old['behavior'], 'typo': 1}}))
