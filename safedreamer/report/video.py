"""Evaluation video frames and a streaming mp4 writer (headless: numpy + PIL + ffmpeg).

A frame puts side by side, each as a PANEL x PANEL square:
  - every camera view the agent sees (observation keys holding HxWx3 uint8 images),
  - the environment's own view (`env.render()`: a top-down / tracking frame), or,
    when the env draws nothing, a top-down sketch drawn from the vector observation
    for tasks that have one in `TOP_DOWN` (toy/hazard) and a bar panel of the
    vector observation(s),
and below them a text strip with the step, the step's reward and cost, and the
running return and cost. A costly step (cost > 0) gets a red border, others a grey
one. Frame sides are multiples of 16, so ffmpeg never rescales them.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import pathlib
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL = 240        # side of each square panel in pixels
STRIP = 48         # height of the text strip
BORDER = 8         # frame border (red on costly steps)
RED, GREY = (220, 30, 30), (60, 60, 60)


@functools.lru_cache(maxsize=None)
def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
    return ImageFont.load_default()


def camera_keys(obs_space: dict) -> list[str]:
  """Observation keys that are RGB images (HxWx3 uint8), sorted."""
  out = []
  for key, (shape, dtype) in obs_space.items():
    if len(shape) == 3 and shape[-1] == 3 and np.dtype(dtype) == np.uint8:
      out.append(key)
  return sorted(out)


def vector_keys(obs_space: dict) -> list[str]:
  """Flat numeric observation keys (drawn when the env cannot render), sorted."""
  return sorted(k for k, (shape, dtype) in obs_space.items()
                if len(shape) == 1 and np.issubdtype(np.dtype(dtype), np.number)
                and not k.startswith('log_'))


def fit(image: np.ndarray, size: int = PANEL) -> np.ndarray:
  """An RGB image scaled (aspect kept, nearest for small images) onto a black
  size x size square."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, -1)
  image = image[..., :3]
  h, w = image.shape[:2]
  scale = size / max(h, w)
  nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
  resample = Image.NEAREST if scale >= 2 else Image.BILINEAR
  small = np.asarray(Image.fromarray(image).resize((nw, nh), resample))
  out = np.zeros((size, size, 3), np.uint8)
  top, left = (size - nh) // 2, (size - nw) // 2
  out[top:top + nh, left:left + nw] = small
  return out


def vector_panel(values: np.ndarray, size: int = PANEL, title: str = 'observation') -> np.ndarray:
  """Horizontal bars of a vector observation, symlog-scaled (sign(x) log(1+|x|),
  clipped at +/-3) around a centre line, with each index and value written."""
  values = np.asarray(values, np.float64).reshape(-1)
  shown = values[:64]
  image = Image.new('RGB', (size, size), (250, 250, 250))
  draw = ImageDraw.Draw(image)
  draw.text((6, 3), f'{title} ({len(values)})', fill=(0, 0, 0), font=_font(12))
  top, left, right = 20, 58, size - 6
  mid = (left + right) / 2
  row = (size - top - 4) / max(1, len(shown))
  draw.line([(mid, top), (mid, size - 4)], fill=(150, 150, 150))
  scaled = np.clip(np.sign(shown) * np.log1p(np.abs(shown)), -3, 3) / 3
  font = _font(max(7, min(11, int(row) - 1)))
  for i, (value, s) in enumerate(zip(shown, scaled)):
    y0, y1 = top + i * row + 1, top + (i + 1) * row - 1
    x1 = mid + s * (right - mid)
    color = (40, 110, 200) if value >= 0 else (230, 120, 30)
    draw.rectangle([min(mid, x1), y0, max(mid, x1), max(y0, y1)], fill=color)
    if row >= 7:
      draw.text((2, y0), f'{i:2d} {value:+.2f}', fill=(0, 0, 0), font=font)
  return np.asarray(image)


def text_strip(lines: list[str], width: int, height: int = STRIP) -> np.ndarray:
  image = Image.new('RGB', (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(image)
  font = _font(14)
  for i, line in enumerate(lines[:2]):
    draw.text((6, 4 + 21 * i), line, fill=(0, 0, 0), font=font)
  return np.asarray(image)


def compose(panels: list[np.ndarray], lines: list[str], costly: bool) -> np.ndarray:
  """Panels side by side (each fitted to PANEL x PANEL), the text strip below,
  all inside a border that is red when `costly`."""
  row = np.concatenate([fit(p) for p in panels], axis=1)
  body = np.concatenate([row, text_strip(lines, row.shape[1])], axis=0)
  h, w = body.shape[:2]
  frame = np.empty((h + 2 * BORDER, w + 2 * BORDER, 3), np.uint8)
  frame[:] = RED if costly else GREY
  frame[BORDER:BORDER + h, BORDER:BORDER + w] = body
  return frame


def toy_top_down(vector: np.ndarray, history: list[np.ndarray], size: int = PANEL) -> np.ndarray:
  """toy/hazard seen from above, from its observation (goal - pos, hazard - pos,
  velocity, pos): the hazard (red disc), the active goal (green), the point (blue)
  and its trail this episode."""
  from safedreamer.envs import toy
  image = Image.new('RGB', (size, size), (250, 250, 250))
  draw = ImageDraw.Draw(image)
  scale = (size - 8) / (2 * toy.ARENA)
  to_px = lambda x, y: (size / 2 + x * scale, size / 2 - y * scale)

  def disc(x, y, r, color):
    (cx, cy), pr = to_px(x, y), r * scale
    draw.ellipse([cx - pr, cy - pr, cx + pr, cy + pr], fill=color)

  v = np.asarray(vector, np.float64)
  pos = v[6:8]
  draw.rectangle([4, 4, size - 4, size - 4], outline=(120, 120, 120))
  disc(*(pos + v[2:4]), toy.HAZARD_RADIUS, (245, 170, 170))
  disc(*(pos + v[0:2]), toy.GOAL_RADIUS, (120, 200, 120))
  trail = [to_px(*np.asarray(h, np.float64)[6:8]) for h in history[-200:]] + [to_px(*pos)]
  if len(trail) > 1:
    draw.line(trail, fill=(120, 150, 220), width=2)
  disc(*pos, 0.05, (30, 70, 200))
  return np.asarray(image)


#: task -> drawer(vector, earlier vectors of the episode) for envs that cannot render.
TOP_DOWN = {'toy/hazard': toy_top_down}


class FrameMaker:
  """Builds the frame of one environment step (see the module docstring).

  `render` is a zero-argument callable returning the env's RGB view or None; if it
  returns None (or raises) once, the vector panel is used from then on.
  """

  def __init__(self, obs_space: dict, render=None, cost_limit: float | None = None,
               task: str | None = None):
    self.cams = camera_keys(obs_space)
    self.vecs = vector_keys(obs_space)
    self.render = render
    self.cost_limit = cost_limit
    self.top_down = TOP_DOWN.get(task) if 'vector' in obs_space else None
    self.history: list[np.ndarray] = []

  def __call__(self, step: dict, t: int, ep_ret: float, ep_cost: float) -> np.ndarray:
    panels = [np.asarray(step[k]) for k in self.cams]
    view = None
    if self.render is not None:
      try:
        view = self.render()
      except Exception as e:  # pylint: disable=broad-except  (no renderer: draw the vector)
        logging.getLogger('safedreamer').warning(
            'the environment cannot render (%s); videos show the observation instead', e)
        view = None
      if view is None:
        self.render = None
    if view is not None:
      panels.append(np.asarray(view))
    elif self.vecs:
      if self.top_down is not None:
        if step['is_first']:
          self.history = []
        panels.append(self.top_down(step['vector'], self.history))
        self.history.append(np.asarray(step['vector']))
      values = np.concatenate([np.asarray(step[k], np.float64).reshape(-1) for k in self.vecs])
      panels.append(vector_panel(values, title=', '.join(self.vecs)))
    if not panels:
      panels.append(np.zeros((PANEL, PANEL, 3), np.uint8))
    cost, reward = float(step['cost']), float(step['reward'])
    limit = '' if self.cost_limit is None else f' / limit {self.cost_limit:g}'
    lines = [f'step {t}   reward {reward:+.3f}   cost {cost:g}',
             f'return {ep_ret:.2f}   cost {ep_cost:g}{limit}']
    return compose(panels, lines, costly=cost > 0)


@contextlib.contextmanager
def _quiet_fork():
  """ffmpeg runs as a subprocess (fork + exec, safe); hide JAX's warning about fork."""
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='os.fork', category=RuntimeWarning)
    yield


class VideoWriter:
  """Appends frames to an mp4 as they come (constant size), so an episode's video
  never has to fit in memory. `abort()` deletes the unfinished file."""

  def __init__(self, path: str | pathlib.Path, fps: int = 20):
    import imageio.v2 as imageio
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_fork():
      self._writer = imageio.get_writer(self.path, fps=fps, codec='libx264', quality=7,
                                        macro_block_size=16, pixelformat='yuv420p',
                                        ffmpeg_log_level='error')
    self.frames = 0

  def append(self, frame: np.ndarray) -> None:
    with _quiet_fork():
      self._writer.append_data(np.ascontiguousarray(frame))
    self.frames += 1

  def close(self) -> pathlib.Path:
    self._writer.close()
    return self.path

  def abort(self) -> None:
    try:
      self._writer.close()
    finally:
      self.path.unlink(missing_ok=True)
