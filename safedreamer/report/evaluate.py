"""`safedreamer eval`: play a trained agent without updating anything.

`evaluate(source, ...)` restores a run's config (LOGDIR/config.yaml) and an agent
state from a checkpoint, plays N episodes with the agent's evaluation mode (the
actor's mode / the planner's mean action), writes `eval.json` and, on request, an
mp4 per episode (see video.py). Nothing is updated: no `agent.train`, and
`agent.episode_end` is never called, so the PID / augmented-Lagrangian state stays
at its saved value. The checkpoint is only read.

Determinism: the environment of episode 1 is reset with `seed` (default: the seed
the training loop's evaluations use, config.seed + 1_000_000); later episodes
continue that environment's generator. The agent's own random state comes from
the checkpoint. So the same checkpoint and seed replay the same episodes.
"""
from __future__ import annotations

import json
import logging
import pathlib

import numpy as np

log = logging.getLogger('safedreamer')
METRICS = ('EpRet', 'EpCost', 'EpLen')
OPENLOOP_STEPS = 70


class EvalError(RuntimeError):
  """A source that is not a run or a checkpoint (one-line message)."""


def find_logdir(source: str | pathlib.Path) -> pathlib.Path:
  """The run folder of `source`: a logdir, its checkpoints folder, or one checkpoint
  folder (LOGDIR/checkpoints/<step>): the nearest of it, its parent and its
  grandparent that holds config.yaml."""
  source = pathlib.Path(source)
  if not source.exists():
    raise EvalError(f'{source} does not exist')
  for folder in (source, source.parent, source.parent.parent):
    if (folder / 'config.yaml').is_file():
      return folder
  raise EvalError(f'no config.yaml at {source} or the two folders above it; '
                  'pass a run folder (LOGDIR) or LOGDIR/checkpoints/<step>')


def summarize(values) -> dict:
  values = [float(v) for v in values]
  return {'mean': float(np.mean(values)), 'std': float(np.std(values)), 'per_episode': values}


def format_eval(result: dict) -> str:
  """A short table of an `evaluate` result, for the terminal."""
  lines = [f"{result['task']}  {result['method']}  checkpoint step {result['checkpoint_step']}"
           f"  ({result['episodes']} episodes, seed {result['seed']}"
           f"{', sampled actions' if result.get('policy') == 'sampled' else ''})",
           f"{'':8}{'mean':>10}{'std':>10}   per episode"]
  for key in METRICS:
    m = result[key]
    per = ' '.join(f'{v:.4g}' for v in m['per_episode'][:10])
    more = ' ...' if len(m['per_episode']) > 10 else ''
    lines.append(f"{key:8}{m['mean']:10.3f}{m['std']:10.3f}   {per}{more}")
  lines.append(f"verdict: {result['verdict']}")
  return '\n'.join(lines)


class _Recorder:
  """The driver's on_step callback: episode videos and the first steps of each
  episode (for the open-loop report)."""

  def __init__(self, envs, config, videodir, episodes: int, keep_steps: int, fps: int):
    from safedreamer.report.video import FrameMaker
    self.videodir, self.episodes, self.keep, self.fps = videodir, episodes, keep_steps, fps
    render = (lambda: envs.render(0)) if videodir is not None else None
    self.frames = FrameMaker(envs.obs_space, render, config.cost_limit, config.task)
    self.done = 0
    self.writer = None
    self.videos: list[dict] = []
    self.sequences: list[list[dict]] = []
    self._steps: list[dict] = []
    self._t = self._ret = self._cost = 0

  def __call__(self, step: dict, index: int) -> None:
    if self.done >= self.episodes:
      return
    if step['is_first']:
      if self.writer is not None:  # the env crashed mid-episode: drop its video
        self.writer.abort()
      self._t, self._ret, self._cost, self._steps = 0, 0.0, 0.0, []
      if self.videodir is not None:
        from safedreamer.report.video import VideoWriter
        self.writer = VideoWriter(self.videodir / f'episode_{self.done:03d}.mp4', self.fps)
    else:
      self._t += 1
      self._ret += float(step['reward'])
      self._cost += float(step['cost'])
    if len(self._steps) < self.keep:
      self._steps.append({k: np.array(v) for k, v in step.items()})
    if self.writer is not None:
      self.writer.append(self.frames(step, self._t, self._ret, self._cost))
    if step['is_last']:
      if self.writer is not None:
        path = self.writer.close()
        self.videos.append({'path': str(path), 'frames': self.writer.frames})
        self.writer = None
      self.sequences.append(self._steps)
      self.done += 1

  def close(self) -> None:
    if self.writer is not None:
      self.writer.abort()


def _openloop(agent, sequences, obs_keys, outdir, step) -> list[str]:
  """Open-loop report on the first steps of the evaluation episodes, if the agent
  makes predictions (Agent.report); failures are logged, not raised."""
  from safedreamer.agents.base import Agent
  from safedreamer.report.openloop import CONTEXT, report_from_agent
  if type(agent).report is Agent.report or not sequences:
    return []
  length = min(len(s) for s in sequences)
  if length <= CONTEXT:
    log.info('open-loop report skipped: episodes are %d steps, need more than %d', length, CONTEXT)
    return []
  keys = list(obs_keys) + ['action', 'reward', 'cost', 'is_first', 'is_last', 'is_terminal']
  batch = {k: np.stack([np.stack([s[t][k] for t in range(length)]) for s in sequences])
           for k in keys}
  try:
    return [str(p) for p in report_from_agent(agent, batch, outdir, step)]
  except Exception as e:  # pylint: disable=broad-except
    log.warning('open-loop report failed: %s: %s', type(e).__name__, e)
    return []


def evaluate(source: str | pathlib.Path, episodes: int = 3, video: bool = False,
             seed: int | None = None, outdir: str | pathlib.Path | None = None, *,
             openloop: bool = True, fps: int = 20, quiet: bool = False,
             sample: bool = False) -> dict:
  """Evaluate the agent of a run or checkpoint; returns what eval.json holds.

  source: a run folder (its newest readable checkpoint), LOGDIR/checkpoints (same)
    or LOGDIR/checkpoints/<step> (that one). Its config is LOGDIR/config.yaml.
  episodes: how many whole episodes to play.
  video: write outdir/videos/episode_<i>.mp4 (one frame per agent step, the reset
    frame included: EpLen / action_repeat + 1 frames).
  seed: the first environment reset's seed (default config.seed + 1_000_000).
  outdir: where eval.json, videos/ and reports/ go (default LOGDIR/eval/).
  openloop: also write the open-loop prediction report of the first 70 steps of
    each episode into outdir/reports/ (agents with `report` only).
  quiet: do not print the result table.
  sample: act as in training (actions sampled from the policy; the planners' first
    action from N(mu_1, std_1)) instead of the mode. The authors' code evaluated
    BSRP-Lag this way; the CMDP constrains that stochastic policy's cost.
  Raises EvalError / CheckpointError with one-line messages.
  """
  from safedreamer.agents import make_agent
  from safedreamer.config.load import from_yaml
  from safedreamer.envs.registry import env_factory, make_env_batch
  from safedreamer.run.checkpoint import load_checkpoint
  from safedreamer.run.driver import run_episodes
  from safedreamer.run.train import EVAL_SEED_OFFSET

  if episodes < 1:
    raise EvalError(f'episodes must be >= 1, got {episodes}')
  source = pathlib.Path(source)
  logdir = find_logdir(source)
  config = from_yaml((logdir / 'config.yaml').read_text(encoding='utf-8'))
  ckpt_step, state, _ = load_checkpoint(source)
  ckpt_path = source if source.name.isdigit() else logdir / 'checkpoints' / str(ckpt_step)
  seed = config.seed + EVAL_SEED_OFFSET if seed is None else int(seed)
  outdir = logdir / 'eval' if outdir is None else pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)

  envs = make_env_batch(config.task, config, num_envs=1, parallel=False)
  recorder = None
  try:
    agent = make_agent(config, envs.obs_space, envs.act_dim,
                       env_factory=env_factory(config.task, config, config.seed + 999))
    agent.load(state['agent'])
    recorder = _Recorder(envs, config, outdir / 'videos' if video else None, episodes,
                         OPENLOOP_STEPS if openloop else 0, fps)
    results = run_episodes(envs, agent, episodes, config.env.action_repeat,
                           mode='train' if sample else 'eval',
                           seeds=[seed], on_step=recorder)
    reports = _openloop(agent, recorder.sequences, envs.obs_space, outdir / 'reports',
                        ckpt_step) if openloop else []
  finally:
    if recorder is not None:
      recorder.close()
    envs.close()

  result = {
      'task': config.task, 'method': config.method, 'logdir': str(logdir),
      'checkpoint': str(ckpt_path), 'checkpoint_step': int(ckpt_step), 'seed': seed,
      'episodes': episodes, 'action_repeat': config.env.action_repeat,
      'policy': 'sampled' if sample else 'mode',
      **{k: summarize(e[k] for e in results) for k in METRICS},
      'cost_limit': config.cost_limit,
  }
  ok = result['EpCost']['mean'] <= config.cost_limit
  result['meets_cost_limit'] = bool(ok)
  result['verdict'] = (f"{'meets' if ok else 'violates'} the cost limit: EpCost "
                       f"{result['EpCost']['mean']:.3g} {'<=' if ok else '>'} {config.cost_limit:g}")
  result['videos'] = recorder.videos
  result['reports'] = reports
  tmp = outdir / 'eval.json.tmp'
  tmp.write_text(json.dumps(result, indent=2))
  tmp.replace(outdir / 'eval.json')
  result['path'] = str(outdir / 'eval.json')
  if not quiet:
    print(format_eval(result))
  return result
