"""run/jax_setup.py: where the persistent compilation cache lives, that a second
process loads what the first compiled, and host devices for jax.devices."""
import json
import os
import subprocess
import sys

import pytest

from safedreamer.run import jax_setup

PROGRAM = r'''
import json, sys, jax, jax.numpy as jnp, jax.monitoring
from safedreamer.run import jax_setup
jax_setup.MIN_COMPILE_SECS = 0.0  # cache even this small program
jax_setup.enable_compile_cache(__import__('pathlib').Path(sys.argv[1]))
hits = []
jax.monitoring.register_event_listener(
    lambda event, **_: hits.append(event) if event.endswith('cache_hits') else None)
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0)
print(json.dumps({'value': float(f(jnp.arange(12.0).reshape(3, 4))), 'hits': len(hits)}))
'''


def test_cache_dir_setting_env_xdg_home(tmp_path):
  home = os.path.expanduser('~')
  assert jax_setup.cache_dir('', {}) == jax_setup.pathlib.Path(home, '.cache/safedreamer/jax')
  assert jax_setup.cache_dir('', {'XDG_CACHE_HOME': '/x'}) == jax_setup.pathlib.Path(
      '/x/safedreamer/jax')
  env = {'XDG_CACHE_HOME': '/x', jax_setup.ENV_VAR: str(tmp_path)}
  assert jax_setup.cache_dir('', env) == tmp_path
  assert jax_setup.cache_dir('/y', env) == jax_setup.pathlib.Path('/y')
  assert jax_setup.cache_dir('off', env) is None
  assert jax_setup.cache_dir('', {jax_setup.ENV_VAR: 'OFF'}) is None


def test_tests_never_write_the_users_cache():
  users = jax_setup.cache_dir('', {k: v for k, v in os.environ.items()
                                   if k != jax_setup.ENV_VAR})
  assert os.environ[jax_setup.ENV_VAR] != str(users)


def test_second_process_loads_what_the_first_compiled(tmp_path):
  cache = tmp_path / 'cache'
  runs = [json.loads(subprocess.run([sys.executable, '-c', PROGRAM, str(cache)], check=True,
                                    capture_output=True, text=True).stdout) for _ in range(2)]
  assert runs[0]['hits'] == 0 and runs[1]['hits'] >= 1
  assert runs[0]['value'] == runs[1]['value']
  assert any(cache.iterdir())


def test_unwritable_cache_folder_runs_without_it(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('')
  assert jax_setup.enable_compile_cache(blocker / 'cache') is None


def test_host_devices_flag():
  assert jax_setup.with_host_devices('', 1) == ''
  assert jax_setup.with_host_devices('--a=1 b=2', 2) == (
      '--xla_force_host_platform_device_count=2 --a=1 b=2')
  kept = '--xla_force_host_platform_device_count=4'
  assert jax_setup.with_host_devices(kept, 2) == kept


@pytest.mark.slow
def test_second_train_start_compiles_faster(tmp_path):
  out = subprocess.run([sys.executable, 'benchmarks/compile_cache.py', '--presets', 'tiny'],
                       capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  rows = [line.split('|')[1:-1] for line in out.stdout.splitlines() if '| tiny |' in line]
  (_, _, _, cold, _, cold_hits), (_, _, _, warm, _, warm_hits) = rows
  assert int(cold_hits) == 0 and int(warm_hits) > 0
  assert float(warm) < 0.5 * float(cold), out.stdout
