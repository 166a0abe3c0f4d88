"""Build a validated Config from defaults, named presets and dotted overrides."""
from __future__ import annotations

import difflib
import pathlib
from typing import Any, Iterable, Mapping

import yaml
from pydantic import ValidationError

from safedreamer.config.schema import Config, Inconsistent, all_keys, field_of

PRESETS_FILE = pathlib.Path(__file__).with_name('presets.yaml')


class ConfigError(ValueError):
  """A one-line, user-facing configuration error."""


def presets() -> dict[str, dict]:
  return yaml.safe_load(PRESETS_FILE.read_text())


def _closest(key: str, n: int = 3) -> str:
  near = difflib.get_close_matches(key, all_keys(), n=n, cutoff=0.5)
  if not near:  # fall back to keys of the same section
    section = key.split('.')[0] + '.'
    near = [k for k in all_keys() if k.startswith(section)][:n]
  return ', '.join(near) if near else 'see `safedreamer train --help`'


def _merge(base: dict, update: Mapping, path: str = '') -> dict:
  out = dict(base)
  for key, value in update.items():
    if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
      out[key] = _merge(out[key], value, f'{path}{key}.')
    else:
      out[key] = value
  return out


def _nest(dotted: str, value: Any) -> dict:
  *parents, leaf = dotted.split('.')
  out: dict = {leaf: value}
  for parent in reversed(parents):
    out = {parent: out}
  return out


def load_config(names: Iterable[str] = (), overrides: Mapping[str, Any] | None = None) -> Config:
  """Defaults <- presets (left to right) <- dotted overrides, then validate.

  Override values may be strings from the command line; pydantic converts them to
  the key's type ("100" -> 100, "true" -> True) and rejects what does not fit.
  """
  known, valid = presets(), set(all_keys())
  data: dict = {}
  for name in names:
    if name not in known:
      near = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
      raise ConfigError(f"unknown preset '{name}'; closest: {', '.join(near) or ', '.join(known)}")
    data = _merge(data, known[name])
  for key, value in (overrides or {}).items():
    if key not in valid:
      raise ConfigError(f"unknown config key '{key}'; closest: {_closest(key)}")
    data = _merge(data, _nest(key, value))
  try:
    return Config.model_validate(data)
  except ValidationError as e:
    raise ConfigError(_one_line(e)) from None


_BOUND_TEXT = (('ge', '>='), ('gt', '>'), ('le', '<='), ('lt', '<'))


def bounds_text(key: str) -> str:
  """The allowed range of a numeric key, e.g. '>= 0, <= 1' ('' if it has none)."""
  field = field_of(key)
  parts = []
  for item in field.metadata if field is not None else ():
    for attr, sign in _BOUND_TEXT:
      if getattr(item, attr, None) is not None:
        parts.append(f'{sign} {getattr(item, attr)}')
  return ', '.join(parts)


def _one_line(error: ValidationError) -> str:
  """The first error of a validation, as one line naming the key, value and what is
  allowed."""
  err = error.errors()[0]
  key = '.'.join(str(p) for p in err['loc'])
  if err['type'] == 'extra_forbidden':
    return f"unknown config key '{key}'; closest: {_closest(key)}"
  cause = (err.get('ctx') or {}).get('error')
  if isinstance(cause, Inconsistent):
    full = f'{key}.{cause.key}' if key else cause.key
    return f"bad value for config key '{full}': {cause.value!r} (allowed: {cause.allowed})"
  allowed = bounds_text(key) if err['type'] in (
      'greater_than', 'greater_than_equal', 'less_than', 'less_than_equal') else ''
  detail = f'allowed: {allowed}' if allowed else err['msg']
  return f"bad value for config key '{key}': {err['input']!r} ({detail})"


def to_yaml(config: Config) -> str:
  return yaml.safe_dump(config.model_dump(), sort_keys=False)


# Keys renamed or removed since runs were first written, so that a saved run's
# config.yaml still loads (eval, table, resume) under today's names.
RENAMED = {'behavior.lam': 'behavior.return_lambda'}
REMOVED = ('jax.precision', 'lagrangian.cost_signal')   # keys that no longer do anything


def migrate(data: dict) -> dict:
  """A saved config with RENAMED keys moved and REMOVED keys dropped."""
  data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (data or {}).items()}
  for old, new in RENAMED.items():
    section, leaf = old.split('.')
    if leaf in data.get(section, {}):
      data[section].setdefault(new.split('.')[1], data[section].pop(leaf))
  for key in REMOVED:
    section, leaf = key.split('.')
    data.get(section, {}).pop(leaf, None)
  return data


def from_yaml(text: str) -> Config:
  try:
    return Config.model_validate(migrate(yaml.safe_load(text)))
  except ValidationError as e:
    raise ConfigError(f'invalid config file: {_one_line(e)}') from None
