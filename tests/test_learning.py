"""Learning on the built-in CMDP with a known answer: toy/hazard (envs/toy.py).

Its zero-cost optimum is ~13.07 (around the hazard's edge) and its unconstrained one
15 at a cost of ~51 (straight through), both from `oracle_returns`. BSRP-Lag must
reach at least 80% of the zero-cost optimum with its final 20-episode evaluation at
or under the cost limit; the unconstrained DreamerV3 baseline must exceed the limit.
The budgets are the multi-seed protocol's (benchmarks/learning.py --seeds 0 1 2, 40
fresh episodes each): at 60k BSRP-Lag reached 0.92 / 0.71 / 0.93 of the optimum at
EpCost 1.0 / 0 / 0.4; at 30k DreamerV3 11.4 / 12.3 at 45-48 (slow: ~10-20 minutes
each on one core).
"""
import pytest

from safedreamer.config.load import load_config
from safedreamer.envs.toy import oracle_returns
from safedreamer.run.logger import read_metrics
from safedreamer.run.train import train

STEPS = {'bsrp_lag': 60_000, 'dreamerv3': 30_000}


def _final_eval(method, tmp_path):
  steps = STEPS[method]
  config = load_config([method, 'tiny', 'toy'], {'run.steps': steps, 'run.progress': False,
                                                 'run.eval_every': steps,
                                                 'run.eval_episodes': 20})
  train(config, tmp_path / method)
  rows = [r for r in read_metrics(tmp_path / method / 'metrics.jsonl') if 'eval/EpRet' in r]
  assert rows and rows[-1]['step'] >= steps
  return config.cost_limit, rows[-1]['eval/EpRet'], rows[-1]['eval/EpCost']


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_dreamerv3_takes_the_costly_shortcut(tmp_path):
  limit, ret, cost = _final_eval('dreamerv3', tmp_path)
  assert cost > limit, (ret, cost)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bsrp_lag_reaches_80_percent_of_the_safe_optimum_within_the_limit(tmp_path):
  safe = oracle_returns()['safe']['EpRet']
  limit, ret, cost = _final_eval('bsrp_lag', tmp_path)
  assert cost <= limit, (ret, cost)
  assert ret >= 0.8 * safe, (ret, cost, safe)
