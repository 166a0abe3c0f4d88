"""The training loop with several environments stepped in subprocesses."""
from safedreamer.config.load import load_config
from safedreamer.run.logger import read_metrics
from safedreamer.run.train import train


def test_two_parallel_envs_fill_two_replay_streams(tmp_path):
  config = load_config(['random', 'tiny'], {
      'task': 'toy/hazard', 'env.action_repeat': 1, 'run.num_envs': 2, 'run.parallel': True,
      'run.steps': 1000, 'run.progress': False})
  counters = train(config, tmp_path)
  rows = read_metrics(tmp_path / 'metrics.jsonl')
  streams = {p.name.split('-')[0] for p in (tmp_path / 'replay').iterdir()}
  assert streams == {'0000', '0001'}
  # 1000 simulator steps over two envs of 100-step episodes: 5 finished episodes each.
  assert sum('episode/EpRet' in r for r in rows) == 10
  assert counters['agent_steps'] >= 500
  assert [r for r in rows if 'replay/streams' in r][-1]['replay/streams'] == 2
