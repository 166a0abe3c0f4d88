"""benchmarks/update_parts.py: every part of a tiny update is compiled, run and timed."""
import importlib.util
import json
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / 'update_parts.py'
_spec = importlib.util.spec_from_file_location('update_parts', _PATH)
update_parts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_parts)


def test_parts_of_a_tiny_update(tmp_path, capsys):
  out = tmp_path / 'parts.json'
  update_parts.main(['--size', 'tiny', '--batch', '4', '16', '--reps', '3', '--json', str(out)])
  saved = json.loads(out.read_text())
  assert saved['batch'] == [4, 16] and saved['size'] == 'tiny'
  ms = saved['ms']
  assert list(ms) == ['update', 'world model: loss + gradient', 'behaviour: loss + gradient',
                      'imagination: forward', 'imagination: gradient to the actor',
                      'reward head on imagined states: forward',
                      'reward head on imagined states: gradient',
                      'cost signal on imagined states: gradient']   # bsrp_lag has a cost critic
  assert all(0 < v < 60_000 for v in ms.values())
  printed = capsys.readouterr().out
  assert all(name in printed for name in ms) and '100.0% of the update' in printed
