"""benchmarks/update_ops.py: trace events sorted into kinds by hand, and (slow) a real
traced tiny update."""
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('update_ops', _ROOT / 'benchmarks' / 'update_ops.py')
update_ops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_ops)


def test_kinds_by_hand():
  assert update_ops.kind('dot_general.138') == 'dot'
  assert update_ops.kind('dot.31') == 'dot'
  assert update_ops.kind('reduce-window.199') == 'reduce-window'
  assert update_ops.kind('subtract_bitcast_fusion.1') == 'fusion:bitcast'
  assert update_ops.kind('broadcast_add_fusion.12') == 'fusion:add'
  assert update_ops.kind('copy.24') == 'copy'
  assert update_ops.kind('sort.3') == 'other:sort'
  for holder in ('while.160', 'ThunkExecutor::Execute', 'end: copy.738', 'PjitFunction(x)',
                 '$profiler.py:251 trace'):
    assert update_ops.kind(holder) is None


def test_table_per_update():
  events = [{'ph': 'X', 'name': 'dot.1', 'dur': 3000}, {'ph': 'X', 'name': 'dot_general.2',
            'dur': 1000}, {'ph': 'X', 'name': 'while.3', 'dur': 9000},
            {'ph': 'X', 'name': 'add_multiply_fusion', 'dur': 2000},
            {'ph': 'i', 'name': 'dot.4', 'dur': 5000}]
  assert update_ops.op_table(events, reps=2) == {'dot': 2.0, 'fusion:multiply': 1.0}


@pytest.mark.slow
def test_a_traced_tiny_update(tmp_path):
  out = subprocess.run([sys.executable, 'benchmarks/update_ops.py', '--size', 'tiny', '--batch',
                        '4', '16', '--reps', '2', '--json', str(tmp_path / 'ops.json')],
                       cwd=_ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  table = json.loads((tmp_path / 'ops.json').read_text())['ms']
  assert table['dot'] > 0 and any(k.startswith('fusion:') for k in table)
