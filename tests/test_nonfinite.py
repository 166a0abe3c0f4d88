"""A non-finite update stops the run (run/nonfinite.py): one line naming the first
non-finite metric, exit 1, and nothing written after it."""
import json
import math
import re

import jax
import jax.numpy as jnp
import pytest

from safedreamer import cli
from safedreamer.run.nonfinite import NonFiniteError, check_finite

POISON_AT = 120   # the update whose agent state is poisoned


def test_check_finite_names_the_first_non_finite_metric():
  check_finite({'a': 1.0, 'b': -2.5e30}, 10)
  with pytest.raises(NonFiniteError, match=r'step 7 gave wm/cost = nan'):
    check_finite({'wm/loss': 1.0, 'wm/cost': math.nan, 'actor/loss': math.inf}, 7)
  with pytest.raises(NonFiniteError, match='actor/loss = -inf'):
    check_finite({'wm/loss': 1.0, 'actor/loss': -math.inf}, 7)
  # in the update's order, not the name's: the world model comes before the actor
  with pytest.raises(NonFiniteError, match='wm/kl = nan'):
    check_finite({'actor/entropy': math.nan, 'lag/psi': math.nan, 'wm/kl': math.nan}, 7)


def test_a_nan_update_stops_the_run_and_nothing_is_saved_after_it(tmp_path, monkeypatch, capsys):
  import safedreamer.run.train as train_module
  real = train_module.make_agent

  def poisoned_agent(*args, **kwargs):
    agent = real(*args, **kwargs)
    update, calls = agent.train, [0]
    def train(batch):
      calls[0] += 1
      if calls[0] == POISON_AT:   # e.g. an overflow in the world model's parameters
        wm = jax.tree.map(lambda x: x * jnp.nan, agent.state['params']['wm'])
        agent.state = dict(agent.state, params=dict(agent.state['params'], wm=wm))
      return update(batch)
    agent.train = train
    return agent

  monkeypatch.setattr(train_module, 'make_agent', poisoned_agent)
  logdir = tmp_path / 'run'
  code = cli.main(['train', '--configs', 'bsrp_lag', 'tiny', '--task', 'toy/hazard',
                   '--logdir', str(logdir), '--run.progress', 'false', '--jax.compile_cache', 'off'])
  err = [line for line in capsys.readouterr().err.splitlines() if 'error' in line]
  assert code == 1
  assert len(err) == 1 and err[0].startswith('safedreamer: error: update at step')
  assert re.search(r'gave wm/\w+ = nan', err[0])   # where the NaN came from
  step = int(re.search(r'step (\d+)', err[0]).group(1))
  assert 1000 < step < 2000
  saved = sorted(int(p.name) for p in (logdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved and max(saved) < step and 1000 in saved     # before it, never after
  rows = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
  assert max(r['step'] for r in rows) < step
  assert all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))


def test_debug_nans_key_turns_on_jax_nan_checks(monkeypatch):
  from safedreamer.config.load import load_config
  from safedreamer.run import jax_setup
  monkeypatch.setattr(jax_setup, 'enable_compile_cache', lambda path: None)
  try:
    jax_setup.configure(load_config(['tiny']), environ={})
    assert not jax.config.jax_debug_nans
    jax_setup.configure(load_config(['tiny', 'debug']), environ={})
    assert jax.config.jax_debug_nans
    with pytest.raises(FloatingPointError):
      jax.jit(lambda x: jnp.log(x) * 0)(-1.0)
  finally:
    jax.config.update('jax_debug_nans', False)
