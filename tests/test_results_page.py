"""docs/results.md is what benchmarks/make_results.py makes of benchmarks/runs/, and
benchmarks/summarize_run.py turns a real run folder into a summary it can use."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'benchmarks'))

import make_results  # noqa: E402
import summarize_run  # noqa: E402


def test_committed_results_page_matches_the_committed_summaries(tmp_path):
  summaries = make_results.load_summaries()
  assert summaries, 'benchmarks/runs/ holds no summary'
  text = make_results.render(summaries, make_results.RUNS, tmp_path, images=False)
  committed = (ROOT / 'docs' / 'results.md').read_text(encoding='utf-8')
  assert text == committed, 'regenerate: .venv/bin/python benchmarks/make_results.py'
  for line in committed.splitlines():   # every curve image it shows is committed
    if line.startswith('!['):
      assert (ROOT / 'docs' / line.split('](')[1].rstrip(')')).is_file(), line
  for path in make_results.RUNS.glob('*/*/seed*.json'):
    assert path.stat().st_size < 20_000, path   # summaries stay kilobytes


def test_summaries_rank_by_the_papers_rule(tmp_path):
  def summary(name, ret, cost):
    return {'format': 1, 'name': name, 'task': 'toy/hazard', 'method': 'bsrp_lag', 'seed': 0,
            'cost_limit': 2.0, 'steps': 100, 'code': 'abc', 'source': 'test',
            'curve': {'step': [50, 100], 'EpRet': [0.0, ret], 'EpCost': [5.0, cost]},
            'final': {'step': 100, 'episodes': 3, 'policy': 'mode',
                      'EpRet': {'mean': ret, 'std': 0.1}, 'EpCost': {'mean': cost, 'std': 0.2}}}
  for s in (summary('unsafe but rich', 9.0, 3.0), summary('safe', 2.0, 1.0),
            summary('safer, richer', 4.0, 0.0)):
    summarize_run.write_summary(s, tmp_path / 'runs')
  summaries = make_results.load_summaries(tmp_path / 'runs')
  text = make_results.render(summaries, tmp_path / 'runs', tmp_path / 'docs')
  rows = [line.split(' | ')[2] for line in text.splitlines() if line.startswith('| ') and
          'toy/hazard' in line]
  assert rows == ['safer, richer', 'safe', 'unsafe but rich']
  assert (tmp_path / 'docs' / 'img' / 'results' / 'toy_hazard.png').stat().st_size > 1000


def test_a_tiny_real_run_becomes_a_summary_and_a_row(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
  run = tmp_path / 'runs_raw' / 'toy_hazard' / 'random-tiny' / 'seed3'
  cli = [sys.executable, '-m', 'safedreamer']
  for args in (['train', '--configs', 'random', 'tiny', '--task', 'toy/hazard', '--seed', '3',
                '--run.steps', '1000', '--run.eval_every', '500', '--run.eval_episodes', '2',
                '--run.progress', 'false', '--logdir', str(run)],
               ['eval', '--logdir', str(run), '--episodes', '3']):
    out = subprocess.run(cli + args, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
  code = make_results.main(['--add', str(run), '--name', 'Random tiny', '--code', 'test123',
                            '--runs', str(tmp_path / 'runs'), '--docs', str(tmp_path / 'docs')])
  assert code == 0
  path = tmp_path / 'runs' / 'toy_hazard' / 'Random_tiny' / 'seed3.json'
  summary = json.loads(path.read_text())
  rows = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
  evals = [r for r in rows if 'eval/EpRet' in r]
  assert summary['curve']['step'] == [r['step'] for r in evals] == [500, 1000]
  assert summary['curve']['EpCost'] == [round(r['eval/EpCost'], 6) for r in evals]
  ej = json.loads((run / 'eval' / 'eval.json').read_text())
  assert summary['final']['episodes'] == 3 and len(summary['final']['EpRet']['per_episode']) == 3
  assert summary['final']['EpRet']['mean'] == round(ej['EpRet']['mean'], 6)
  assert summary['config']['task'] == 'toy/hazard' and summary['presets'] == 'random-tiny'
  assert summary['code'] == 'test123' and path.stat().st_size < 20_000
  page = (tmp_path / 'docs' / 'results.md').read_text()
  assert '| 1 | toy/hazard | Random tiny | 1 |' in page and 'code: test123' in page
  bad = make_results.main(['--add', str(tmp_path), '--name', 'x', '--code', 'y',
                           '--runs', str(tmp_path / 'runs'), '--docs', str(tmp_path / 'docs')])
  assert bad == 2


def test_the_protocols_evaluations_are_pooled(tmp_path):
  """benchmarks/learning.py --seeds writes eval_seed<S>/eval.json per evaluation seed:
  the summary's final result pools their episodes (by hand: means 1 and 4 of 2 each)."""
  from safedreamer.config.load import load_config, to_yaml
  run = tmp_path / 'seed0'
  run.mkdir()
  (run / 'config.yaml').write_text(to_yaml(load_config(['tiny'], {'task': 'toy/hazard'})))
  (run / 'metrics.jsonl').write_text(json.dumps({'step': 100, 'eval/EpRet': 1.0,
                                                 'eval/EpCost': 0.0}) + '\n')
  for seed, rets, costs in ((1000, [0.0, 2.0], [0.0, 0.0]), (2000, [3.0, 5.0], [4.0, 0.0])):
    (run / f'eval_seed{seed}').mkdir()
    (run / f'eval_seed{seed}' / 'eval.json').write_text(json.dumps({
        'checkpoint_step': 100, 'episodes': 2, 'seed': seed, 'policy': 'mode',
        'EpRet': {'per_episode': rets}, 'EpCost': {'per_episode': costs}}))
  final = summarize_run.summarize(run, 'x', 'c')['final']
  assert final['episodes'] == 4 and final['seeds'] == [1000, 2000]
  assert final['EpRet']['mean'] == 2.5 and final['EpCost']['mean'] == 1.0
  assert final['EpCost']['per_episode'] == [0.0, 0.0, 4.0, 0.0]
