"""Learning on the built-in CMDP: a costly shortcut exists on toy/hazard.

BSRP-Lag must end under the cost limit with a positive return, while the
unconstrained DreamerV3 baseline takes the shortcut and exceeds the limit.
Both measured, both asserted (slow: ~6 minutes each on 2 cores).
"""
import pytest

from safedreamer.config.load import load_config
from safedreamer.run.logger import read_metrics
from safedreamer.run.train import train

STEPS = 30_000


def _final_eval(method, tmp_path):
  config = load_config([method, 'tiny', 'toy'], {'run.steps': STEPS, 'run.progress': False,
                                                 'run.eval_every': STEPS})
  train(config, tmp_path / method)
  rows = [r for r in read_metrics(tmp_path / method / 'metrics.jsonl') if 'eval/EpRet' in r]
  assert rows and rows[-1]['step'] >= STEPS
  return config.cost_limit, rows[-1]['eval/EpRet'], rows[-1]['eval/EpCost']


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bsrp_lag_meets_the_limit_where_dreamerv3_takes_the_shortcut(tmp_path):
  limit, ret, cost = _final_eval('bsrp_lag', tmp_path)
  assert cost <= limit and ret > 0, (ret, cost)
  limit, ret_u, cost_u = _final_eval('dreamerv3', tmp_path)
  assert cost_u > limit, (ret_u, cost_u)
  assert ret_u > ret
