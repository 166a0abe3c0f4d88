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


def test_loop_samples_a_batch_per_world_model_update(tmp_path):
  """model.updates 2: the loop hands the agent 2 x replay.batch_size sequences per update
  (the agent refuses any other size), at the same number of updates per agent step."""
  config = load_config(['bsrp_lag', 'tiny'], {
      'task': 'toy/hazard', 'env.action_repeat': 1, 'model.updates': 2, 'run.steps': 300,
      'run.prefill': 200, 'run.log_every': 100, 'run.eval_every': 0, 'run.report_every': 0,
      'run.progress': False})
  counters = train(config, tmp_path)
  # train ratio 32 over 4 x 16 batches: 0.5 updates per agent step after the prefill
  assert counters['updates'] == 50
  rows = [r for r in read_metrics(tmp_path / 'metrics.jsonl') if 'train/wm/loss' in r]
  assert rows and all(r['train/wm/loss'] > 0 for r in rows)
