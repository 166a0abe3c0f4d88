"""benchmarks/hlo_dots.py: the dots of a compiled program, counted by hand, and timed."""
import importlib.util
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('hlo_dots', _ROOT / 'benchmarks' / 'hlo_dots.py')
hlo_dots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hlo_dots)


def _program():
  """A 3-step scan with an [8, 16] x [16, 16] product inside, a transposed product
  a^T a ([16, 8] x [8, 16]) and a batched one ([2, 4, 5] x [2, 5, 6]) outside."""
  def f(a, b, c, d):
    def body(x, _):
      return jnp.tanh(x @ b), None
    y, _ = jax.lax.scan(body, a, None, length=3)
    return y.sum() + (a.T @ a).sum() + jnp.einsum('bij,bjk->bik', c, d).sum()
  args = (jnp.ones((8, 16)), jnp.ones((16, 16)), jnp.ones((2, 4, 5)), jnp.ones((2, 5, 6)))
  return jax.jit(f).lower(*args).compile().as_text()


def test_dots_counted_by_hand():
  dots = hlo_dots.program_dots(_program())
  # (XLA may lay a^T a out either way round, so match on FLOPs and counts)
  assert sorted((d['flops'], d['count']) for d in dots) == [(480, 1), (4096, 1), (4096, 3)]
  batched = [d for d in dots if d['flops'] == 480][0]
  assert batched['dims'] == (((2,), (1,)), ((0,), (0,)))   # batch 0, contract 2 with 1
  # 3 * 2*8*16*16 + 2*16*16*8 + 2*(2*4*6)*5
  assert hlo_dots.matmul_flops(_program()) == 3 * 4096 + 4096 + 480


def test_dots_alone_add_up_with_their_counts():
  dots = hlo_dots.program_dots(_program())
  alone = hlo_dots.dots_alone_seconds(dots, reps=3)
  assert alone['flops'] == 3 * 4096 + 4096 + 480
  assert sorted(r['count'] for r in alone['rows']) == [1, 1, 3]
  assert all(r['seconds'] > 0 for r in alone['rows'])
  assert alone['seconds'] == pytest.approx(sum(r['seconds'] * r['count'] for r in alone['rows']))


@pytest.mark.slow
def test_update_speed_ceiling_on_tiny(tmp_path):
  out = subprocess.run(
      [sys.executable, 'benchmarks/update_speed.py', '--sizes', 'tiny', '--reps', '2',
       '--batch', '4', '16', '--ceiling', '--json', str(tmp_path / 'u.json')],
      cwd=_ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'ceiling' in out.stdout and 'its dots alone' in out.stdout
