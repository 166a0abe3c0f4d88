"""Replay persistence: save/load, truncation past the position, crash leftovers."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from safedreamer.replay import Replay, chunkfile
from test_replay_helpers import check_windows, fill, make_step


def make(directory, seed=0, **kw):
  kw = {'capacity': 10_000, 'chunk': 32, 'disk_bytes': 512, **kw}
  return Replay(str(directory), seed=seed, **kw)


def extent(replay):
  return {s: (st.start, st.end) for s, st in replay.streams.items()}


def assert_same_samples(a, b, n=3, length=40):
  for _ in range(n):
    x, y = a.sample(8, length), b.sample(8, length)
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def digest(batch):
  h = hashlib.sha256()
  for k in sorted(batch):
    h.update(k.encode() + np.ascontiguousarray(batch[k]).tobytes())
  return h.hexdigest()


def test_save_load_gives_identical_samples(tmp_path):
  replay = make(tmp_path)
  fill(replay, {0: 150, 1: 95, 2: 64})   # partial tails and one ending on a boundary
  replay.sample(4, 10)                    # move the RNG away from its seed
  position = json.loads(json.dumps(replay.save()))
  assert len(json.dumps(position)) < 2000
  again = make(tmp_path, seed=123)
  again.load(position)
  assert extent(again) == extent(replay) == {0: (0, 150), 1: (0, 95), 2: (0, 64)}
  assert again.stats() == replay.stats()
  assert_same_samples(replay, again)
  check_windows(again.sample(16, 33))


def test_load_in_a_fresh_process(tmp_path):
  replay = make(tmp_path / 'replay')
  fill(replay, {0: 70, 1: 41})
  with open(tmp_path / 'position.json', 'w') as f:
    json.dump(replay.save(), f)
  code = ('import json, sys; sys.path.insert(0, "tests");'
          'from safedreamer.replay import Replay; from test_replay_persist import digest;'
          f'r = Replay({str(tmp_path / "replay")!r}, 10_000, 32, seed=5, disk_bytes=512);'
          f'r.load(json.load(open({str(tmp_path / "position.json")!r})));'
          'print(digest(r.sample(8, 40)))')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True,
                       text=True, check=True).stdout.strip()
  assert out == digest(replay.sample(8, 40))


def test_load_drops_steps_added_after_the_save(tmp_path):
  replay = make(tmp_path)
  fill(replay, {0: 100, 1: 50})
  position = replay.save()
  fill(replay, {0: 150, 1: 70}, start={0: 100, 1: 50})   # seals and rewrites saved tails
  fill(replay, {2: 40})                                   # a stream born after the save
  again = make(tmp_path, seed=7)
  again.load(position)
  assert extent(again) == {0: (0, 100), 1: (0, 50)}
  for _ in range(5):
    batch = again.sample(16, 20)
    check_windows(batch)
    assert (batch['count'] < np.where(batch['sid'] == 0, 100, 50)).all()
  names = {chunkfile.chunk_name(s, i) for s, i in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]}
  assert set(os.listdir(tmp_path)) == names   # files past the position are gone

  # After a restore every stream must resume with is_first; windows may span it.
  with pytest.raises(ValueError, match='is_first'):
    again.add(make_step(0, 100), stream=0)
  again.add(make_step(0, 100, first=True), stream=0)
  for c in range(101, 140):
    again.add(make_step(0, c, first=False), stream=0)
  seen = 0
  for _ in range(20):
    batch = again.sample(16, 30)
    for b in np.nonzero(batch['sid'][:, 0] == 0)[0]:
      count, first = batch['count'][b], batch['is_first'][b]
      assert (np.diff(count) == 1).all()
      np.testing.assert_array_equal(first, (count % 37 == 0) & (count < 100) | (count == 100))
      seen += bool((count == 100).any() and count[0] < 100)
  assert seen > 0
  # And the next save/load round trip holds the resumed data.
  third = make(tmp_path, seed=1)
  third.load(again.save())
  assert extent(third) == {0: (0, 140), 1: (0, 50)}
  assert_same_samples(again, third)


def test_crash_leftovers_after_the_save_do_not_break_load(tmp_path):
  replay = make(tmp_path)
  fill(replay, {0: 40, 1: 70})
  position = replay.save()
  # A crash after the save leaves: a half-written temp file, a truncated chunk past the
  # position, a corrupt file of a stream the position does not know, and foreign files.
  with open(tmp_path / (chunkfile.chunk_name(0, 1) + chunkfile.TMP_SUFFIX), 'wb') as f:
    f.write(chunkfile.MAGIC + b'\x00' * 10)
  with open(tmp_path / chunkfile.chunk_name(1, 3), 'wb') as f:
    f.write(chunkfile.MAGIC + b'\xff' * 3)
  with open(tmp_path / chunkfile.chunk_name(5, 0), 'wb') as f:
    f.write(b'garbage')
  with open(tmp_path / 'notes.txt', 'w') as f:
    f.write('not ours')
  again = make(tmp_path, seed=3)
  again.load(position)
  assert extent(again) == {0: (0, 40), 1: (0, 70)}
  assert_same_samples(replay, again, length=20)
  assert sorted(os.listdir(tmp_path)) == sorted(
      [chunkfile.chunk_name(0, 0), chunkfile.chunk_name(0, 1), chunkfile.chunk_name(1, 0),
       chunkfile.chunk_name(1, 1), chunkfile.chunk_name(1, 2), 'notes.txt'])


@pytest.mark.parametrize('where', ['write', 'rename'])
def test_crash_while_rewriting_a_saved_chunk_keeps_the_saved_file(tmp_path, monkeypatch,
                                                                   where):
  replay = make(tmp_path)
  fill(replay, {0: 40})       # chunk 1 holds 8 steps, saved as a partial file
  position = replay.save()

  def crash(*args):
    raise KeyboardInterrupt('simulated crash')
  if where == 'write':
    calls = []
    real = os.pwrite
    monkeypatch.setattr(os, 'pwrite', lambda fd, data, pos: (
        calls.append(1), real(fd, data[:len(data) // 2], pos) if len(calls) < 3 else crash())[1])
  else:
    monkeypatch.setattr(os, 'replace', crash)
  with pytest.raises(KeyboardInterrupt):
    fill(replay, {0: 24}, start={0: 40})   # chunk 1 fills and is rewritten
  monkeypatch.undo()
  again = make(tmp_path, seed=3)
  again.load(position)
  assert extent(again) == {0: (0, 40)}
  check_windows(again.sample(16, 40))
  assert not any(n.endswith(chunkfile.TMP_SUFFIX) for n in os.listdir(tmp_path))


def test_evicted_files_outlive_one_save_and_missing_old_chunks_are_tolerated(tmp_path):
  replay = make(tmp_path, capacity=64, chunk=16)
  fill(replay, {0: 100})
  first = replay.save()
  fill(replay, {0: 50}, start={0: 100})   # evicts chunks that `first` references
  replay.save()                           # deletes only what was evicted before `first`
  again = make(tmp_path, capacity=64, chunk=16)
  again.load(first)
  assert extent(again) == {0: (first['streams']['0']['start'], 100)}
  check_windows(again.sample(8, 30))

  again.add(make_step(0, 100, first=True), stream=0)
  fill(again, {0: 49}, start={0: 101})
  again.save()
  again.save()
  old = make(tmp_path, capacity=64, chunk=16)
  old.load(first)   # its oldest chunk files are gone: loads what is left
  start = old.streams[0].start
  assert start > first['streams']['0']['start'] and extent(old) == {0: (start, 100)}
  check_windows(old.sample(8, min(30, 100 - start)))


def test_broken_saved_tail_restarts_the_stream_at_its_chunk(tmp_path, caplog):
  replay = make(tmp_path)
  fill(replay, {0: 40, 1: 70})
  position = replay.save()
  with open(tmp_path / chunkfile.chunk_name(0, 1), 'r+b') as f:
    f.truncate(100)
  again = make(tmp_path)
  again.load(position)
  assert extent(again) == {0: (0, 32), 1: (0, 70)}
  assert 'dropping the newest chunk of stream 0' in caplog.text
  again.add(make_step(0, 32, first=True), stream=0)
  assert extent(again)[0] == (0, 33)


def test_empty_and_mismatched_positions(tmp_path):
  replay = make(tmp_path)
  position = replay.save()
  again = make(tmp_path)
  again.load(position)
  fill(again, {0: 5})
  assert len(again) == 5
  with pytest.raises(ValueError, match='chunk'):
    make(tmp_path, chunk=64).load(again.save())
