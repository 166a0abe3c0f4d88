"""The training loop: environments -> replay -> agent updates, with evaluation,
logging and checkpoints as callbacks on a driver. Re-running with the same logdir
resumes from the newest readable checkpoint.

One process per logdir (run/lock.py). A first Ctrl-C or SIGTERM ends the current
step, writes a checkpoint at it and returns with counters['stopped'] set to the
signal's number (run/signals.py; a second one stops at once). Running out of disk
space at a replay chunk, metrics or checkpoint write raises DiskFullError and writes
nothing more, so the newest complete checkpoint and its metric rows stay as they were."""
from __future__ import annotations

import collections
import errno
import logging
import os
import pathlib
import time

import numpy as np

from safedreamer.agents import make_agent
from safedreamer.agents.base import rng_from_array, rng_to_array
from safedreamer.agents.random import RandomAgent
from safedreamer.config.load import to_yaml
from safedreamer.envs.registry import env_factory, make_env_batch
from safedreamer.replay.replay import Replay
from safedreamer.run.checkpoint import Checkpointer
from safedreamer.run.driver import Driver, run_episodes
from safedreamer.run.lock import hold
from safedreamer.run.logger import Logger
from safedreamer.run.nonfinite import check_finite
from safedreamer.run.progress import Progress
from safedreamer.run.signals import StopRequest, ignoring_sigint

log = logging.getLogger('safedreamer')


EVAL_SEED_OFFSET = 1_000_000
REPORT_LENGTH = 70  # 25 context steps + 45 open-loop predictions


class DiskFullError(RuntimeError):
  """No space left on the disk of the logdir (one-line message)."""


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` (or an exception it was raised from) is ENOSPC; libraries that
  wrap OS errors (orbax, tensorstore) keep only the message."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if getattr(error, 'errno', None) == errno.ENOSPC or 'No space left on device' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _opened(opened: list, thing):
  opened.append(thing)
  return thing


def write_report(agent, replay, logdir: pathlib.Path, step: int, logger) -> None:
  """Open-loop video predictions of a few replay windows under LOGDIR/reports/."""
  from safedreamer.report.openloop import report_from_agent
  from safedreamer.replay import NotEnoughData
  try:
    batch = replay.sample(4, REPORT_LENGTH)
  except NotEnoughData:
    return
  report_from_agent(agent, batch, logdir / 'reports', step, tb_writer=logger.tensorboard)


def write_config(config, logdir: pathlib.Path) -> None:
  """LOGDIR/config.yaml, written atomically (eval and reports read it back)."""
  logdir.mkdir(parents=True, exist_ok=True)
  tmp = logdir / 'config.yaml.tmp'
  tmp.write_text(to_yaml(config))
  os.replace(tmp, logdir / 'config.yaml')


def train(config, logdir: str | pathlib.Path) -> dict:
  """Train (or resume) the run in `logdir`; returns its counters, with 'stopped' set
  to the signal number if a signal ended it early (see the module docstring)."""
  logdir = pathlib.Path(logdir)
  lock = hold(logdir)  # LogdirBusy (exit 2) before anything is written
  stop = StopRequest().install()
  opened = []  # environments and the logger, closed quietly if the run fails
  try:
    return _train(config, logdir, stop, opened)
  except BaseException as e:
    for thing in reversed(opened):
      try:
        thing.close()
      except Exception:  # noqa: BLE001 -- the first error is the one to report
        pass
    if isinstance(e, Exception) and is_disk_full(e):
      raise DiskFullError(f'no space left on {logdir}; free space and re-run to resume') from e
    raise
  finally:
    stop.restore()
    lock.release()


def _train(config, logdir: pathlib.Path, stop: StopRequest, opened: list) -> dict:
  write_config(config, logdir)
  run, rcfg = config.run, config.replay
  with ignoring_sigint():  # subprocess envs leave Ctrl-C to this process
    envs = make_env_batch(config.task, config)
  opened.append(envs)
  agent = make_agent(config, envs.obs_space, envs.act_dim,
                     env_factory=env_factory(config.task, config, config.seed + 999))
  random_agent = RandomAgent(envs.act_dim, seed=config.seed + 1)
  replay = Replay(logdir / 'replay', capacity=rcfg.capacity, chunk=rcfg.chunk, seed=config.seed)
  ckpt = Checkpointer(logdir / 'checkpoints', keep=run.keep_checkpoints)

  c = dict(step=0, agent_steps=0, updates=0, episodes=0, cost_total=0.0, updates_due=0.0,
           last_log=0, last_ckpt=0, last_eval=0, last_report=0, resumes=0, dropped=0,
           crashes=0)
  found = ckpt.restore_latest()
  if found is not None:
    _, agent_state, meta = found
    agent.load(agent_state['agent'])
    random_agent.load(agent_state['random'])
    replay.load(meta['replay'])
    c.update(meta['counters'])
    c['resumes'] += 1
    logger = Logger(logdir, position=meta['logger'])
    log.info('resumed from step %d', c['step'])
  else:
    logger = Logger(logdir)
  opened.append(logger)

  if c['step'] >= run.steps:
    log.info('run in %s is already complete (%d steps)', logdir, c['step'])
    logger.close()
    envs.close()
    return dict(c, stopped=None)
  driver = Driver(envs, config.env.action_repeat)
  step_base = c['step']
  sums = collections.defaultdict(list)

  def on_step(step, i):
    replay.add(step, stream=i)
    c['cost_total'] += float(step['cost'])

  def on_episode(ep, i):
    c['episodes'] += 1
    step = step_base + driver.sim_steps  # includes the step that ended the episode
    # Prefill episodes come from the random agent: they must not move a Lagrangian.
    extra = {} if c['step'] < run.prefill else agent.episode_end(ep['EpRet'], ep['EpCost'], 'train')
    logger.write(step, {f'episode/{k}': v for k, v in ep.items()} | extra)
    progress.episode(ep)

  driver.on_step.append(on_step)
  driver.on_episode.append(on_episode)

  seed_base = config.seed * 10_000 + c['resumes'] * 100
  progress = Progress(run.steps, start=c['step'], enabled=run.progress)
  driver.reset(agent, [seed_base + i for i in range(run.num_envs)])
  eval_envs = None
  per_step_updates = run.num_envs * run.train_ratio / (rcfg.batch_size * rcfg.batch_length)
  dropped_before, crashes_before = c['dropped'], c['crashes']  # from earlier processes
  timer = time.time()
  steps_at_timer = c['step']

  def count_faults():  # the run's totals, over every process that worked on it
    c['dropped'] = dropped_before + driver.dropped_episodes
    c['crashes'] = crashes_before + envs.num_crashes

  def save():
    count_faults()
    logger.flush()
    meta = {'counters': dict(c), 'replay': replay.save(), 'logger': logger.position(c['step'])}
    ckpt.save(c['step'], {'agent': agent.save(), 'random': random_agent.save()}, meta)
    c['last_ckpt'] = c['step']

  while c['step'] < run.steps:
    prefilling = c['step'] < run.prefill
    driver.step(random_agent if prefilling else agent, 'train')
    c['step'] = step_base + driver.sim_steps
    c['agent_steps'] += 1
    if not prefilling and replay.num_windows(rcfg.batch_length) > 0:
      c['updates_due'] += per_step_updates
      while c['updates_due'] >= 1.0:
        batch = replay.sample(rcfg.batch_size * config.model.updates, rcfg.batch_length)
        metrics = agent.train(batch)
        check_finite(metrics, c['step'])   # a NaN stops the run before it is saved
        for key, value in metrics.items():
          sums[key].append(value)
        c['updates'] += 1
        c['updates_due'] -= 1.0
    progress.update(c['step'])

    if run.eval_every and c['step'] - c['last_eval'] >= run.eval_every and not prefilling:
      c['last_eval'] = c['step']
      eval_envs = eval_envs or _opened(opened, make_env_batch(
          config.task, config.model_copy(update={'seed': config.seed + EVAL_SEED_OFFSET}),
          num_envs=1, parallel=False))
      episodes = run_episodes(eval_envs, agent, run.eval_episodes, config.env.action_repeat)
      agent.attach(envs)  # back to the training environments
      logger.write(c['step'], {f'eval/{k}': np.mean([e[k] for e in episodes])
                               for k in episodes[0]})

    if run.report_every and c['step'] - c['last_report'] >= run.report_every and not prefilling:
      c['last_report'] = c['step']
      write_report(agent, replay, logdir, c['step'], logger)

    if c['step'] - c['last_log'] >= run.log_every:
      now = time.time()
      count_faults()
      metrics = {f'train/{k}': float(np.mean(v)) for k, v in sums.items()}
      sums.clear()
      metrics.update({
          'episode/CostRate': c['cost_total'] / max(1, c['step']),
          'run/updates': c['updates'], 'run/agent_steps': c['agent_steps'],
          'run/sps': (c['step'] - steps_at_timer) / max(1e-9, now - timer),
          'run/env_crashes': c['crashes'], 'run/dropped_episodes': c['dropped'],
          **{f'replay/{k}': v for k, v in replay.stats().items()}})
      logger.write(c['step'], metrics)
      logger.flush()
      timer, steps_at_timer = now, c['step']
      c['last_log'] = c['step']

    if c['step'] - c['last_ckpt'] >= run.ckpt_every:
      save()
    if stop.signum is not None:
      break

  if c['last_ckpt'] != c['step']:
    save()
  progress.close()
  logger.close()
  envs.close()
  if eval_envs is not None:
    eval_envs.close()
  return dict(c, stopped=stop.signum)
