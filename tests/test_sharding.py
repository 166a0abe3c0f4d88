"""agents/sharding.py: a data-parallel update over 2 CPU devices equals the
single-device update, and a 2-device `tiny` run trains end to end. Each runs in a
subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=2 (set before JAX
starts)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from safedreamer.agents import sharding
from safedreamer.run.logger import read_metrics

TESTS = os.path.dirname(os.path.abspath(__file__))

EQUAL = r'''
import json, sys
import jax, numpy as np
sys.path.insert(0, sys.argv[1])
from test_agent import ACT, OBS, make_batch
from safedreamer.agents import sharding
from safedreamer.agents.dreamer_core import DreamerCore, compiler_options
from safedreamer.config.load import load_config
from safedreamer.run import jax_setup
jax_setup.enable_compile_cache(jax_setup.cache_dir())  # the tests' cache (conftest.py)
assert len(jax.devices()) == 2, jax.devices()
cfg = load_config(['tiny', 'bsrp_lag'], {'replay.batch_size': 4})
core = DreamerCore(cfg, OBS, ACT)
dp = sharding.DataParallel(2)
init2 = dp.init_state(core._init_state, compiler_options=compiler_options())
update2 = dp.update(core._update, compiler_options=compiler_options())
one, two = core.init_state(jax.random.PRNGKey(0)), init2(jax.random.PRNGKey(0))
for step in range(2):
  batch = make_batch(cfg, seed=step)
  batch['reward'] = batch['reward'].astype(np.float32)
  one, m1 = core.update(one, batch)
  two, m2 = update2(two, batch)
  if step == 0:  # metrics from equal states; after a step, Adam's sign flips move ~0 gradients
    first = {k: [float(m1[k]), float(m2[k])] for k in m1}
leaves = jax.tree.leaves(two)
# Elementwise |sharded - single| against atol + rtol |single| (float sums in another
# order). Adam's first steps move an element by ~lr * sign(gradient), so an element
# whose gradient is ~0 may flip with the summation order: such elements are counted
# ('over'), and bounded by two steps of the largest learning rate (2e-4). Those flips
# shift the second step's gradients, so Adam's moments get a further 0.2% of their
# leaf's largest value (a wrong all-reduce, e.g. half the batch, is off by ~50%).
paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(one)]
pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64))
         for a, b in zip(jax.tree.leaves(one), leaves)]
over = sum(int((np.abs(b - a) > 1e-5 + 1e-3 * np.abs(a)).sum()) for a, b in pairs)
size = sum(a.size for a, _ in pairs)
excess = [float(np.max(np.abs(b - a) - (2e-4 + 1e-3 * np.abs(a) + 2e-3 * np.abs(a).max()
                                        * path.startswith("['opt']"))))
          for path, (a, b) in zip(paths, pairs)]
worst = max(zip(paths, excess), key=lambda x: x[1])
print(json.dumps({
    'devices': sorted({len(x.sharding.device_set) for x in leaves}),
    'replicated': all(x.sharding.is_fully_replicated for x in leaves),
    'worst': list(worst), 'over': over, 'size': size,
    'metrics': first,
}))
'''


def _env():
  flags = os.environ.get('XLA_FLAGS', '')
  return dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count=2 {flags}',
              JAX_PLATFORMS='cpu')


def test_sharded_update_equals_single_device_update():
  out = subprocess.run([sys.executable, '-c', EQUAL, TESTS], env=_env(), capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result['devices'] == [2] and result['replicated']  # the state lives on both devices
  assert result['worst'][1] <= 0, result['worst']  # every state leaf within two Adam steps
  # and nearly all within float noise: ~0.1% flip here (near-zero actor gradients at init),
  # a wrong all-reduce moves nearly every element
  assert result['over'] <= 1e-2 * result['size'], result
  for key, (one, two) in result['metrics'].items():
    # at init the actor's gradient is float cancellation (~3e-4: zero-init reward head,
    # advantages ~0), its norm set by the summation order; the others are O(1-10)
    atol = 1e-3 if key.endswith('grad_norm') else 1e-5
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=atol, err_msg=key)


def test_too_few_devices_and_uneven_batch_are_one_line_errors():
  with pytest.raises(sharding.DeviceError, match='more devices than the 1 cpu'):
    sharding.make_mesh(2, devices=[type('D', (), {'platform': 'cpu'})()])
  with pytest.raises(sharding.DeviceError, match='batch_size 5 does not split'):
    sharding.check_batch(5, 2)


def test_two_device_tiny_run_trains_end_to_end(tmp_path):
  logdir = tmp_path / 'run'
  command = [sys.executable, '-m', 'safedreamer', 'train', '--configs', 'bsrp_lag', 'tiny',
             '--task', 'toy/hazard', '--logdir', str(logdir), '--jax.devices', '2',
             '--run.steps', '400', '--run.log_every', '200', '--run.progress', 'false']
  env = dict(os.environ, JAX_PLATFORMS='cpu')  # the CLI asks XLA for the 2 host devices
  out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = [r for r in read_metrics(logdir / 'metrics.jsonl') if 'train/wm/loss' in r]
  assert rows and rows[-1]['step'] == 400 and rows[-1]['run/updates'] > 0
  assert all(np.isfinite(r['train/wm/loss']) for r in rows)
  # A bad device count stops before anything is written.
  bad = command[:]
  bad[bad.index(str(logdir))] = str(tmp_path / 'bad')
  bad[bad.index('--jax.devices') + 1] = '3'
  out = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2 and "'jax.devices': 3" in out.stderr, out.stderr[-2000:]
  assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / 'bad').exists()
