"""`safedreamer tasks [PATTERN]` and `safedreamer --version`."""
import os
import pathlib
import subprocess
import sys
from importlib import metadata

import pytest

from safedreamer import cli
from safedreamer.envs import registry

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / 'examples'


def test_version_prints_the_installed_version(capsys):
  with pytest.raises(SystemExit) as stop:
    cli.main(['--version'])
  assert stop.value.code == 0
  assert capsys.readouterr().out.strip() == f"safedreamer {metadata.version('safedreamer')}"


def test_tasks_lists_builtin_suites_with_observation_modes(capsys):
  assert cli.main(['tasks']) == 0
  out = capsys.readouterr().out
  lines = out.splitlines()
  assert 'safetygym (built-in, ' in out and 'toy (built-in, 1 id)' in out
  goal = next(line for line in lines if 'safetygym/SafetyPointGoal1-v0 ' in line)
  assert goal.split()[1:] == ['lidar', 'coords', 'vision']
  velocity = next(line for line in lines if 'safetygym/SafetyAntVelocity-v1' in line)
  assert velocity.split()[1:] == ['lidar']
  assert next(line for line in lines if 'toy/hazard' in line).split()[1:] == ['lidar', 'coords']
  assert not any(line.strip().startswith('gym/') for line in lines)  # collapsed: hundreds of ids
  count = int(out.split('safetygym (built-in, ')[1].split()[0])
  assert count == sum(1 for line in lines if line.strip().startswith('safetygym/')) > 200


def test_tasks_pattern_filters_by_substring_and_glob(capsys):
  assert cli.main(['tasks', 'pointgoal1']) == 0
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()
           if line.startswith('  ')]
  assert 'safetygym/SafetyPointGoal1-v0' in names and 'gym/SafetyPointGoal1-v0' in names
  assert all('pointgoal1' in n.lower() for n in names)
  assert cli.main(['tasks', 'safetygym/SafetyCar*push1-v?']) == 0
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()
           if line.startswith('  ')]
  assert names == ['safetygym/SafetyCarPush1-v0']
  assert cli.main(['tasks', 'gym/']) == 0   # a suite prefix, as the unknown-task hint says
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()
           if line.startswith('  ')]
  assert names and all(n.startswith('gym/') for n in names)


def test_a_closed_pipe_is_not_an_error_trace():
  import subprocess
  import sys
  out = subprocess.run(f'{sys.executable} -m safedreamer tasks | head -1', shell=True,
                       capture_output=True, text=True, timeout=120)
  assert out.stdout.count('\n') == 1 and 'Traceback' not in out.stderr, out.stderr


def test_tasks_without_a_match_says_so_and_exits_1(capsys):
  assert cli.main(['tasks', 'NoSuchTask']) == 1
  out, err = capsys.readouterr()
  assert out == '' and err.strip() == "safedreamer: no known task matches 'NoSuchTask'"


def test_tasks_shows_user_suites_and_tasks(capsys, monkeypatch):
  monkeypatch.setattr(registry, '_SUITES', {})
  monkeypatch.setattr(registry, '_TASKS', {})
  registry.register('mylab', lambda task_id: None)
  registry.register('mylab/Special-v1', lambda: None)
  registry.register('toy/mine', lambda: None)
  registry.register('solo/Only-v0', lambda: None)
  assert cli.main(['tasks']) == 0
  out = capsys.readouterr().out
  assert 'mylab (registered, 2 ids, any id)\n  mylab/*\n  mylab/Special-v1\n' in out
  assert 'solo (registered tasks, 1 id)\n  solo/Only-v0\n' in out
  assert 'toy (built-in, 2 ids)' in out and '  toy/mine\n' in out


def test_tasks_imports_the_modules_named_in_the_environment():
  env = dict(os.environ, PYTHONPATH=str(EXAMPLES), SAFEDREAMER_ENV_MODULES='custom_env')
  out = subprocess.run([sys.executable, '-m', 'safedreamer', 'tasks', 'mysuite'],
                       capture_output=True, text=True, env=env, timeout=120)
  assert out.returncode == 0, out.stderr
  assert 'mysuite/PuddleWorld-v0' in out.stdout
