"""OSRP-Lag: the PID Lagrange multiplier (SPEC 2.5; Stooke et al. 2020).

Updated once per finished TRAINING episode with its true episode cost J_ep
(evaluation episodes must not call `pid_update`). With b the cost limit and k the
number of updates so far (this one included):

  Jbar_k = EMA_0.99 of J_ep                     (bias-corrected, see below)
  delta  = Jbar_k - b
  I_k    = max(0, I_{k-1} + Ki * delta)          I_0 = i_init (0.001)
  P_k    = EMA_0.95 of delta                     (bias-corrected)
  D_k    = max(0, Jbar_k - Jbar_{k-d})           d = d_delay (10); D_k = 0 while k <= d
  lam_k  = clip(Kp * P_k + I_k + Kd * D_k, 0, lam_max)        lam_0 = lam_init (0)

Warm-up: for the first `warmup_episodes` updates (k <= warmup_episodes) Jbar, P, D
and their history are tracked as above, but I stays at i_init and lam at lam_init:
the agent learns the task before the constraint pushes on it, and the controller
starts from an up-to-date cost average when it does. (`small` uses it for BSRP-Lag;
config/presets.yaml says why.)

Decisions (the sources leave them open):
- EMA initialisation: both EMAs are bias-corrected, i.e. the weighted average
  m_k = m_{k-1} + a_k * (x_k - m_{k-1}) with a_k = (1 - beta) / (1 - beta^k). So the
  first update sets Jbar = J_ep and P = delta exactly, and every later episode gets
  its proper exponential weight. (A zero-initialised EMA_0.99 would report ~1% of
  the real cost for the first tens of episodes; one initialised to the first value
  would let the first, usually worst, episode dominate for ~100 episodes.)
- D before d updates: 0. There is no value d updates back to compare with, and
  inventing one (Stooke's code compares with zeros) would fire a spurious
  derivative kick at the start of training.
- The Jbar history is a ring buffer of d floats: slot k % d holds Jbar_k.

The state is a NamedTuple of numpy scalars/arrays (float64): `pid_save(state)` is
checkpointable and `pid_load` restores it. It runs on the host, once per
episode; pass `state.lam` to the jitted planner as its multiplier.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class PIDState(NamedTuple):
  count: np.ndarray      # int64, updates done
  jbar: np.ndarray       # EMA of the episode cost
  p: np.ndarray          # EMA of delta = jbar - b
  i: np.ndarray          # integral term
  d: np.ndarray          # derivative term (clipped at 0)
  lam: np.ndarray        # the multiplier
  history: np.ndarray    # [d_delay] past jbar values, slot k % d_delay holds jbar_k


def pid_init(cfg: Any) -> PIDState:
  """Initial state from a `PID` config section (kp, ki, kd, lam_init, lam_max,
  i_init, cost_ema, p_ema, d_delay, warmup_episodes)."""
  f = lambda x: np.asarray(x, np.float64)
  return PIDState(count=np.asarray(0, np.int64), jbar=f(0.0), p=f(0.0),
                  i=f(cfg.i_init), d=f(0.0), lam=f(cfg.lam_init),
                  history=np.zeros(max(1, int(cfg.d_delay)), np.float64))


def _ema(old, new, decay, count):
  """Bias-corrected EMA step; count is the number of values including `new`."""
  rate = (1.0 - decay) / (1.0 - decay ** count)
  return old + rate * (new - old)


def pid_update(state: PIDState, episode_cost: float, cost_limit: float, cfg: Any) -> PIDState:
  """One update with the cost of one finished training episode."""
  count = int(state.count) + 1
  jbar = _ema(float(state.jbar), float(episode_cost), cfg.cost_ema, count)
  delta = jbar - cost_limit
  warming_up = count <= cfg.warmup_episodes
  i = float(state.i) if warming_up else max(0.0, float(state.i) + cfg.ki * delta)
  p = _ema(float(state.p), delta, cfg.p_ema, count)
  delay = len(state.history)
  slot = count % delay
  d = max(0.0, jbar - float(state.history[slot])) if count > cfg.d_delay else 0.0
  history = state.history.copy()
  history[slot] = jbar
  lam = float(state.lam) if warming_up else min(max(cfg.kp * p + i + cfg.kd * d, 0.0),
                                                  cfg.lam_max)
  f = lambda x: np.asarray(x, np.float64)
  return PIDState(count=np.asarray(count, np.int64), jbar=f(jbar), p=f(p), i=f(i),
                  d=f(d), lam=f(lam), history=history)


def pid_metrics(state: PIDState) -> dict[str, float]:
  """The logged quantities: P, I, D terms (before the gains), lam, and Jbar."""
  return {'pid/p': float(state.p), 'pid/i': float(state.i), 'pid/d': float(state.d),
          'pid/lam': float(state.lam), 'pid/jbar': float(state.jbar)}


def pid_save(state: PIDState) -> dict[str, np.ndarray]:
  """The state as a dict of numpy arrays, for checkpoints; `pid_load` restores it."""
  return {k: np.asarray(v) for k, v in state._asdict().items()}


def pid_load(saved: dict) -> PIDState:
  """Restore from `pid_save(state)` (e.g. after a checkpoint round trip)."""
  return PIDState(**{k: np.asarray(saved[k]) for k in PIDState._fields})
