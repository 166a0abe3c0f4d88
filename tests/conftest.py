"""Test-session settings.

JAX's persistent compilation cache (run/jax_setup.py) is on for the tests, in a
folder of their own: $SAFEDREAMER_TEST_JAX_CACHE, else the default cache folder's
sibling `jax-tests` (~/.cache/safedreamer/jax-tests). The user's own cache is
never written by the tests. `train` processes the tests start inherit it through
$SAFEDREAMER_JAX_CACHE. Set SAFEDREAMER_TEST_JAX_CACHE=off to test without it.
"""
import os
import pathlib

from safedreamer.run import jax_setup


def _test_cache() -> pathlib.Path | None:
  setting = os.environ.get('SAFEDREAMER_TEST_JAX_CACHE', '')
  if setting.lower() == 'off':
    return None
  if setting:
    return pathlib.Path(setting).expanduser()
  return jax_setup.cache_dir('', {k: v for k, v in os.environ.items()
                                  if k != jax_setup.ENV_VAR}).with_name('jax-tests')


def pytest_configure(config):
  cache = _test_cache()
  os.environ[jax_setup.ENV_VAR] = str(cache) if cache is not None else 'off'
  jax_setup.enable_compile_cache(cache)
