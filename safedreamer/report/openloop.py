"""Open-loop prediction reports: how well the world model predicts the future.

The paper's video prediction: for a few recorded sequences, the model encodes the
first `context` (25) steps (posterior states that saw the observations), then rolls
its prior forward on the recorded actions alone for the remaining steps (45, so 70
in all) and decodes every state. The agent computes the predictions
(`Agent.report(batch)`); this module only measures and draws them.

Input format (numpy arrays, N sequences of T steps; T > context):
  truth = {
    'reward': [N, T] float,  'cost': [N, T] float,      # what the env gave
    '<vector key>': [N, T, D] float,                      # e.g. 'vector'
    '<image key>': [N, T, H, W, 3] uint8 (or float in [0, 1]),  # e.g. 'image_front'
  }
  prediction = the same keys and shapes: steps [:context] are the posterior
    reconstructions, steps [context:] the open-loop predictions (reward and cost:
    the heads' means).
Keys present in only one of the two are ignored. `Agent.report` may return the pair
as {'truth': {...}, 'prediction': {...}} or flat as {'truth/<key>': ...,
'prediction/<key>': ...}, optionally with 'context' (an int); `split_report` reads
both.

Outputs of `open_loop_report` under `outdir` (LOGDIR/reports/ during training),
prefixed `openloop_<step>`: for each image key a PNG grid (truth, prediction,
|error| rows per sequence, every few frames, a red bar above open-loop frames) and
an mp4 (truth | prediction | |error| side by side, one row per sequence, border
green during context and red during open loop); for each of the first sequences a
PNG figure of predicted vs true vector dimensions, reward and cost; a JSON file with
`openloop_error`. All images and errors also go to TensorBoard if a writer is given.
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np

CONTEXT = 25
OPEN_LOOP = 45
SCALAR_KEYS = ('reward', 'cost')


def _is_image(array: np.ndarray) -> bool:
  return array.ndim == 5 and array.shape[-1] in (1, 3)


def _as_float_image(array: np.ndarray) -> np.ndarray:
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  return np.clip(array.astype(np.float32), 0.0, 1.0)


def _as_uint8(array: np.ndarray) -> np.ndarray:
  return (np.clip(_as_float_image(array), 0, 1) * 255 + 0.5).astype(np.uint8)


def common_keys(truth: dict, prediction: dict) -> list[str]:
  return sorted(set(truth) & set(prediction))


def split_report(report: dict[str, Any]) -> tuple[dict, dict, int]:
  """(truth, prediction, context) from what `Agent.report` returned (see the module
  docstring); empty dicts when it returned nothing."""
  context = int(np.asarray(report.get('context', CONTEXT)))
  if 'truth' in report and 'prediction' in report:
    return dict(report['truth']), dict(report['prediction']), context
  truth, pred = {}, {}
  for key, value in report.items():
    head, _, rest = key.partition('/')
    if head == 'truth' and rest:
      truth[rest] = np.asarray(value)
    elif head in ('prediction', 'pred') and rest:
      pred[rest] = np.asarray(value)
  return truth, pred, context


def openloop_error(truth: dict, prediction: dict, context: int = CONTEXT) -> dict[str, float]:
  """Mean squared error of the open-loop part (steps [context:]) per shared key.

  Images are compared in [0, 1] (uint8 / 255). Raises ValueError on mismatched
  shapes or when there is no step after the context.
  """
  out = {}
  for key in common_keys(truth, prediction):
    t, p = np.asarray(truth[key]), np.asarray(prediction[key])
    if t.shape != p.shape:
      raise ValueError(f'{key}: truth {t.shape} and prediction {p.shape} differ')
    if t.ndim < 2 or t.shape[1] <= context:
      raise ValueError(f'{key}: need more than {context} steps, got shape {t.shape}')
    if _is_image(t):
      t, p = _as_float_image(t), _as_float_image(p)
    t = t[:, context:].astype(np.float64)
    p = p[:, context:].astype(np.float64)
    out[key] = float(np.mean((p - t) ** 2))
  return out


# -- images ---------------------------------------------------------------------------

def _upscale(image: np.ndarray, factor: int) -> np.ndarray:
  return image.repeat(factor, 0).repeat(factor, 1) if factor > 1 else image


def _label(text: str, height: int, width: int = 36) -> np.ndarray:
  from PIL import Image, ImageDraw
  image = Image.new('RGB', (width, height), (255, 255, 255))
  ImageDraw.Draw(image).text((2, max(0, height // 2 - 6)), text, fill=(0, 0, 0))
  return np.asarray(image, np.float32) / 255.0


def image_grid(truth: np.ndarray, pred: np.ndarray, context: int = CONTEXT,
               columns: int = 14, max_sequences: int = 4) -> np.ndarray:
  """An RGB grid: per sequence three rows (truth, prediction, |error|), labelled on
  the left, `columns` frames evenly spaced in time; a red bar above open-loop
  frames, green above context frames."""
  t, p = _as_float_image(truth[:max_sequences]), _as_float_image(pred[:max_sequences])
  n, steps, h, w, c = t.shape
  idx = np.unique(np.linspace(0, steps - 1, min(columns, steps)).round().astype(int))
  bar, gap = 3, 2
  rows = []
  for i in range(n):
    for kind, source in (('truth', t), ('pred', p), ('error', np.abs(p - t))):
      cells = []
      for j in idx:
        frame = source[i, j]
        if c == 1:
          frame = np.repeat(frame, 3, -1)
        cell = np.ones((h + bar, w + gap, 3), np.float32)
        cell[bar:, :w] = frame
        if kind == 'truth':
          cell[:bar, :w] = (0.85, 0.1, 0.1) if j >= context else (0.1, 0.6, 0.1)
        cells.append(cell)
      rows.append(np.concatenate([_label(kind, h + bar)] + cells, 1))
    rows.append(np.ones((gap * 3, rows[-1].shape[1], 3), np.float32))
  return _as_uint8(np.concatenate(rows, 0))


def write_image_video(path: pathlib.Path, truth: np.ndarray, pred: np.ndarray,
                      context: int = CONTEXT, max_sequences: int = 4, fps: int = 10) -> pathlib.Path:
  """mp4: one row per sequence of truth | prediction | |error|, upscaled to 128 px,
  inside a border green during the context and red during the open-loop part."""
  from safedreamer.report.video import VideoWriter
  t, p = _as_float_image(truth[:max_sequences]), _as_float_image(pred[:max_sequences])
  n, steps, h, w, c = t.shape
  factor = max(1, 128 // max(h, w))
  writer = VideoWriter(path, fps=fps)
  try:
    for j in range(steps):
      rows = []
      for i in range(n):
        parts = [t[i, j], p[i, j], np.abs(p[i, j] - t[i, j])]
        if c == 1:
          parts = [np.repeat(x, 3, -1) for x in parts]
        rows.append(_upscale(np.concatenate(parts, 1), factor))
      body = np.concatenate(rows, 0)
      bh, bw = body.shape[:2]
      height, width = -(-(bh + 16) // 16) * 16, -(-(bw + 16) // 16) * 16
      frame = np.empty((height, width, 3), np.float32)
      frame[:] = (0.85, 0.1, 0.1) if j >= context else (0.1, 0.6, 0.1)
      frame[8:8 + bh, 8:8 + bw] = body
      writer.append(_as_uint8(frame))
  except BaseException:
    writer.abort()
    raise
  return writer.close()


# -- vectors, reward and cost -------------------------------------------------------------

def sequence_figure(truth: dict, prediction: dict, index: int, context: int = CONTEXT,
                    max_dims: int = 24):
  """A matplotlib Figure for sequence `index`: one small panel per vector dimension
  (first `max_dims` of each vector key), then reward and cost, true (black) vs
  predicted (blue) over all steps, the open-loop part shaded."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  keys = common_keys(truth, prediction)
  series = []
  for key in keys:
    t = np.asarray(truth[key])
    if t.ndim == 3:
      for d in range(min(t.shape[-1], max_dims)):
        series.append((f'{key}[{d}]', t[index, :, d], np.asarray(prediction[key])[index, :, d]))
  for key in SCALAR_KEYS:
    if key in keys:
      series.append((key, np.asarray(truth[key])[index], np.asarray(prediction[key])[index]))
  cols = min(6, max(1, len(series)))
  rows = max(1, math.ceil(len(series) / cols))
  fig = Figure(figsize=(2.4 * cols, 1.7 * rows + 0.4), layout='constrained')
  FigureCanvasAgg(fig)
  axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
  for ax, (name, t, p) in zip(axes, series):
    steps = np.arange(len(t))
    ax.axvspan(context - 0.5, len(t) - 0.5, color='0.92', lw=0)
    ax.plot(steps, t, color='k', lw=1.0, label='true')
    ax.plot(steps, p, color='C0', lw=1.0, label='predicted')
    mse = float(np.mean((np.asarray(p[context:], np.float64) - t[context:]) ** 2))
    ax.set_title(f'{name}  mse {mse:.3g}', fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes[len(series):]:
    ax.set_axis_off()
  if series:
    axes[0].legend(fontsize=7, loc='best')
  fig.suptitle(f'sequence {index}: {context} context steps, then open loop (shaded)',
               fontsize=9)
  return fig


def figure_to_array(fig) -> np.ndarray:
  fig.canvas.draw()
  return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# -- the report ---------------------------------------------------------------------------

def open_loop_report(truth: dict, prediction: dict, outdir: str | pathlib.Path, step: int,
                     tb_writer=None, context: int = CONTEXT, max_sequences: int = 3,
                     video: bool = True, prefix: str = 'openloop') -> list[pathlib.Path]:
  """Write the open-loop report of `step` (see the module docstring for the input
  format and the files); returns the written paths. `tb_writer`: a tensorboardX
  SummaryWriter (e.g. the run logger's) or None."""
  keys = common_keys(truth, prediction)
  if not keys:
    return []
  errors = openloop_error(truth, prediction, context)
  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  base = f'{prefix}_{int(step):08d}'
  paths: list[pathlib.Path] = []
  from PIL import Image
  for key in keys:
    t = np.asarray(truth[key])
    if not _is_image(t):
      continue
    grid = image_grid(t, np.asarray(prediction[key]), context, max_sequences=max_sequences)
    path = outdir / f'{base}_{key}.png'
    Image.fromarray(grid).save(path)
    paths.append(path)
    if video:
      paths.append(write_image_video(outdir / f'{base}_{key}.mp4', t, np.asarray(prediction[key]),
                                     context, max_sequences))
    if tb_writer is not None:
      tb_writer.add_image(f'openloop/{key}', grid, int(step), dataformats='HWC')
  plotted = [k for k in keys if np.asarray(truth[k]).ndim == 3 or k in SCALAR_KEYS]
  if plotted:
    count = min(max_sequences, len(np.asarray(truth[plotted[0]])))
    for i in range(count):
      fig = sequence_figure(truth, prediction, i, context)
      path = outdir / f'{base}_seq{i}.png'
      fig.savefig(path, dpi=100)
      paths.append(path)
      if tb_writer is not None:
        tb_writer.add_image(f'openloop/seq{i}', figure_to_array(fig), int(step),
                            dataformats='HWC')
  path = outdir / f'{base}.json'
  shapes = {k: list(np.asarray(truth[k]).shape) for k in keys}
  path.write_text(json.dumps({'step': int(step), 'context': context, 'mse': errors,
                              'shapes': shapes}, indent=2))
  paths.append(path)
  if tb_writer is not None:
    for key, value in errors.items():
      tb_writer.add_scalar(f'openloop/mse_{key}', value, int(step))
  return paths


def report_from_agent(agent, batch: dict, outdir: str | pathlib.Path, step: int,
                      tb_writer=None, **kwargs) -> list[pathlib.Path]:
  """`agent.report(batch)` drawn with `open_loop_report`; [] when the agent makes no
  predictions (e.g. the random agent). `batch`: replay windows [B, T] (T > 25)."""
  truth, prediction, context = split_report(agent.report(batch) or {})
  if not truth or not prediction:
    return []
  return open_loop_report(truth, prediction, outdir, step, tb_writer, context=context, **kwargs)
