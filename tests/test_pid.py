"""PID Lagrangian (behavior/pid.py) against hand-computed sequences."""
import numpy as np
import pytest

from safedreamer.behavior import pid
from safedreamer.config.schema import PID

# Round numbers: EMAs with decay 1/2 are weighted averages with weights 1, 1/2, 1/4...
CFG = PID(kp=1.0, ki=0.5, kd=2.0, i_init=0.1, lam_init=0.0, lam_max=5.0,
          cost_ema=0.5, p_ema=0.5, d_delay=2)
LIMIT = 1.0


def avg(values):
  """Bias-corrected EMA with decay 1/2 of `values` (oldest first), by hand."""
  w = 0.5 ** np.arange(len(values))[::-1]
  return float(np.dot(w, values) / w.sum())


def run(costs, cfg=CFG, limit=LIMIT):
  state, out = pid.pid_init(cfg), []
  for c in costs:
    state = pid.pid_update(state, c, limit, cfg)
    out.append(state)
  return out


def test_hand_computed_sequence():
  costs = [3.0, 0.0, 4.5, 7.5, 0.0]
  s = run(costs)
  # k=1: first value taken as is; no derivative yet.
  assert (s[0].jbar, s[0].p, s[0].i, s[0].d) == (3.0, 2.0, 1.1, 0.0)
  assert s[0].lam == pytest.approx(2.0 + 1.1)
  # k=2: jbar = (3/2 + 0) / 1.5 = 1, delta = 0; still k <= d_delay so D = 0.
  assert s[1].jbar == pytest.approx(1.0) and s[1].i == pytest.approx(1.1)
  assert s[1].p == pytest.approx(avg([2.0, 0.0])) and s[1].d == 0.0
  assert s[1].lam == pytest.approx(2 / 3 + 1.1)
  # k=3: jbar = (3/4 + 0 + 4.5) / 1.75 = 3, delta 2; D = jbar_3 - jbar_1 = 0.
  assert s[2].jbar == pytest.approx(3.0) and s[2].i == pytest.approx(2.1)
  assert s[2].p == pytest.approx(avg([2.0, 0.0, 2.0])) and s[2].d == pytest.approx(0.0)
  assert s[2].lam == pytest.approx(10 / 7 + 2.1)
  # k=4: jbar = (3/8 + 0 + 4.5/2 + 7.5) / 1.875 = 5.4, D = 5.4 - jbar_2 = 4.4;
  # Kp P + I + Kd D = 3.0133 + 4.3 + 8.8 is clipped at lam_max.
  assert s[3].jbar == pytest.approx(5.4) and s[3].i == pytest.approx(4.3)
  assert s[3].p == pytest.approx(avg([2.0, 0.0, 2.0, 4.4])) and s[3].d == pytest.approx(4.4)
  assert s[3].lam == 5.0
  # k=5: jbar falls below jbar_3 = 3: the derivative is clipped at 0.
  jbar5 = avg(costs)
  assert s[4].jbar == pytest.approx(jbar5) and jbar5 < 3.0 and s[4].d == 0.0
  assert s[4].i == pytest.approx(4.3 + 0.5 * (jbar5 - LIMIT))
  assert s[4].lam == 5.0


def test_clips_integral_and_multiplier_at_zero():
  s = run([0.0, 0.0], limit=10.0)
  # delta = -10: I = max(0, 0.1 - 5) = 0; P = -10; lam = max(0, -10) = 0.
  assert (s[0].i, s[0].p, s[0].lam) == (0.0, -10.0, 0.0)
  assert (s[1].i, s[1].lam) == (0.0, 0.0)


def test_warmup_holds_lam_and_integral_then_starts_from_tracked_average():
  costs = [3.0, 0.0, 4.5, 7.5]
  plain = run(costs)
  warm = run(costs, cfg=CFG.model_copy(update={'warmup_episodes': 2}))
  # k=1,2: lam and I stay at lam_init and i_init; Jbar, P, D are tracked as without it.
  for w, p in zip(warm[:2], plain[:2]):
    assert (w.lam, w.i) == (0.0, 0.1)
    assert (w.jbar, w.p, w.d) == (p.jbar, p.p, p.d)
  # k=3: the first real update: I = 0.1 + 0.5 * (jbar_3 - 1) = 0.1 + 0.5 * 2 = 1.1
  # (2.1 without warm-up, which integrated delta_1 = 2 as well); lam from P, I, D.
  assert warm[2].jbar == pytest.approx(3.0) and warm[2].i == pytest.approx(1.1)
  assert warm[2].lam == pytest.approx(10 / 7 + 1.1)
  # k=4: I = 1.1 + 0.5 * 4.4 = 3.3; P + I + 2 D = 3.0133 + 3.3 + 8.8 is clipped at 5.
  assert warm[3].i == pytest.approx(3.3) and warm[3].lam == 5.0


def test_paper_defaults_first_update():
  cfg = PID()                  # Kp .1, Ki .01, Kd .01, lam_max .1, I_0 .001, d 10
  state = pid.pid_init(cfg)
  assert state.lam == 0.0 and state.i == 0.001 and len(state.history) == 10
  s = pid.pid_update(state, 2.5, 2.0, cfg)
  assert s.jbar == 2.5 and s.p == pytest.approx(0.5) and s.i == pytest.approx(0.006)
  assert s.lam == pytest.approx(0.1 * 0.5 + 0.006)
  # D stays 0 through update 10 and may fire at update 11.
  states = run([2.5] * 10 + [50.0], cfg=cfg, limit=2.0)
  assert all(x.d == 0.0 for x in states[:10]) and states[10].d > 0.0
  assert pid.pid_metrics(states[-1]).keys() == {'pid/p', 'pid/i', 'pid/d', 'pid/lam', 'pid/jbar'}


def test_state_round_trip(tmp_path):
  states = run([3.0, 0.0, 4.5])
  path = tmp_path / 'pid.npz'
  np.savez(path, **states[-1]._asdict())
  with np.load(path) as f:
    restored = pid.pid_load(dict(f))
  a = pid.pid_update(states[-1], 7.5, LIMIT, CFG)
  b = pid.pid_update(restored, 7.5, LIMIT, CFG)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
