"""A terminal progress bar: steps/s, ETA and the latest training EpRet/EpCost."""
from __future__ import annotations

import sys


class Progress:

  def __init__(self, total: int, start: int = 0, enabled: bool = True):
    self._bar = None
    if enabled:
      from tqdm import tqdm
      self._bar = tqdm(total=total, initial=start, unit='step', unit_scale=True,
                       dynamic_ncols=True, file=sys.stderr, smoothing=0.05,
                       mininterval=1.0, bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} '
                       '[{elapsed}<{remaining}, {rate_fmt}] {postfix}')
    self._last = start

  def update(self, step: int) -> None:
    if self._bar is not None and step > self._last:
      self._bar.update(step - self._last)
      self._last = step

  def episode(self, ep: dict) -> None:
    if self._bar is not None:
      self._bar.set_postfix_str(f"EpRet {ep['EpRet']:.2f} EpCost {ep['EpCost']:.1f}", refresh=False)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
