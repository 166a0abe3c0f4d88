"""Headless camera images for Safety-Gymnasium: backend choice, rear camera, renderer.

- `select_gl_backend()` picks a headless OpenGL backend for MuJoCo by itself: the
  MUJOCO_GL the user set, else the first of EGL, OSMesa that renders in a probe
  subprocess (a failed backend cannot be undone inside a process). The choice is
  written to MUJOCO_GL / PYOPENGL_PLATFORM, so subprocess workers inherit it. If none
  works it raises `RenderingUnavailable` naming the Debian packages to install.
- `add_rear_camera(task)`: Safety-Gymnasium 1.0.0 robots have only a front camera
  ('vision'). This adds 'vision_rear': the front camera turned half a turn about the
  robot's vertical axis (same height, mirrored position, same field of view). The
  robot's own XML is read from the package, edited in memory and saved once under the
  temp dir (the world builder reads robot XML from a path); installed files are
  never touched.
- `Cameras`: renders named cameras of the task's current world as uint8 [S, S, 3],
  with one GL context per env reused across the world rebuilds of resets. All geom
  groups are drawn (hazards, vases and gremlins live in groups 3-5); no lidar markers;
  no multisampling by default (MuJoCo's 4x MSAA halves the speed under Mesa on CPU).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

REAR = 'vision_rear'
_BACKENDS = ('egl', 'osmesa')
_PACKAGES = {'egl': 'libegl1 libgl1-mesa-dri', 'osmesa': 'libosmesa6'}
_PROBE = """
import mujoco, numpy as np
from mujoco.{0} import GLContext
ctx = GLContext(16, 16); ctx.make_current()
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=".1"/></worldbody></mujoco>')
c = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_100)
mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, c)
rgb = np.zeros((16, 16, 3), np.uint8)
mujoco.mjr_readPixels(rgb, None, mujoco.MjrRect(0, 0, 16, 16), c)
c.free(); ctx.free(); print('ok')
"""


class RenderingUnavailable(RuntimeError):
  """No headless OpenGL backend works; the message says what to install."""


_chosen: str | None = None


def _probe(backend: str) -> bool:
  env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
  try:
    result = subprocess.run([sys.executable, '-c', _PROBE.format(backend)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
  except (OSError, subprocess.TimeoutExpired):
    return False
  return result.returncode == 0 and result.stdout.strip().endswith('ok')


def select_gl_backend() -> str:
  """The headless OpenGL backend for MuJoCo ('egl' or 'osmesa'); see the module doc."""
  global _chosen  # pylint: disable=global-statement
  if _chosen:
    return _chosen
  preset = os.environ.get('MUJOCO_GL', '').strip().lower()
  if preset in _BACKENDS:
    os.environ.setdefault('PYOPENGL_PLATFORM', preset)
    _chosen = preset
    return preset
  for backend in _BACKENDS:
    if _probe(backend):
      os.environ['MUJOCO_GL'] = os.environ['PYOPENGL_PLATFORM'] = backend
      _chosen = backend
      return backend
  raise RenderingUnavailable(
      'no headless OpenGL for MuJoCo rendering: install EGL (apt-get install '
      f"{_PACKAGES['egl']}) or OSMesa (apt-get install {_PACKAGES['osmesa']}), "
      'or set MUJOCO_GL to a backend that works here')


def _gl_context_class():
  backend = select_gl_backend()
  if backend == 'egl':
    from mujoco.egl import GLContext  # pylint: disable=import-outside-toplevel
  else:
    from mujoco.osmesa import GLContext  # pylint: disable=import-outside-toplevel
  return GLContext


# -- rear camera ---------------------------------------------------------------------

def rear_camera_xml(robot_xml: str, meshdir: str) -> str:
  """`robot_xml` with a 'vision_rear' camera next to its 'vision' camera."""
  import mujoco  # pylint: disable=import-outside-toplevel
  root = ET.fromstring(robot_xml)
  parent = next((p for p in root.iter() for c in p if c.tag == 'camera'
                 and c.get('name') == 'vision'), None)
  if parent is None:
    raise ValueError("the robot XML has no camera named 'vision'")
  # Compile a copy with the world builder's compiler settings to read the camera's
  # pose in its body frame, whatever form (euler, xyaxes, ...) the XML uses.
  probe = ET.fromstring(robot_xml)
  compiler = probe.find('compiler')
  if compiler is None:
    compiler = ET.SubElement(probe, 'compiler')
  compiler.set('angle', 'radian')
  compiler.set('meshdir', meshdir)
  model = mujoco.MjModel.from_xml_string(ET.tostring(probe, encoding='unicode'))
  cam = model.camera('vision')
  x, y, z = cam.pos
  w, qx, qy, qz = cam.quat
  # Half a turn about the body's z axis: (0, 0, 0, 1) * q, and (x, y) -> (-x, -y).
  quat = (-qz, -qy, qx, w)
  ET.SubElement(parent, 'camera', {
      'name': REAR, 'pos': f'{-x:.6g} {-y:.6g} {z:.6g}',
      'quat': ' '.join(f'{v:.8g}' for v in quat), 'fovy': f'{float(cam.fovy[0]):.6g}'})
  return ET.tostring(root, encoding='unicode')


def add_rear_camera(task) -> None:
  """Make the task's world builds use its robot XML plus a rear camera."""
  import safety_gymnasium  # pylint: disable=import-outside-toplevel
  base_dir = os.path.dirname(safety_gymnasium.__file__)
  source = os.path.join(base_dir, task.agent.base)
  with open(source, encoding='utf-8') as file:
    xml = rear_camera_xml(file.read(), os.path.join(base_dir, 'assets', 'meshes'))
  digest = hashlib.sha1(xml.encode()).hexdigest()[:12]
  folder = os.path.join(tempfile.gettempdir(), 'safedreamer-robots')
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f'{os.path.basename(source)[:-4]}-rear-{digest}.xml')
  if not os.path.exists(path):
    scratch = f'{path}.{os.getpid()}.tmp'
    with open(scratch, 'w', encoding='utf-8') as file:
      file.write(xml)
    os.replace(scratch, path)  # atomic: parallel workers may race here
  task.agent.base = path  # an absolute path: os.path.join(BASE_DIR, path) == path


# -- rendering -----------------------------------------------------------------------

def _assets_signature(model) -> tuple:
  """What an MjrContext uploads from a model: textures, meshes, height fields, skins."""
  return (model.ntex, tuple(model.tex_width), tuple(model.tex_height), model.nmesh,
          tuple(model.mesh_vertnum), tuple(model.mesh_facenum), model.nhfield, model.nskin,
          model.nmat, tuple(map(tuple, np.round(model.mat_rgba, 6))))

class Cameras:
  """Offscreen renders of the named cameras of `task`'s current world."""

  def __init__(self, task, size: int = 64, max_size: int = 512, antialias: bool = False):
    import mujoco  # pylint: disable=import-outside-toplevel
    self._mj = mujoco
    self.task, self.size, self.max_size = task, int(size), int(max_size)
    self.samples = 4 if antialias else 0  # multisampling halves the speed on CPU
    self._gl = _gl_context_class()(self.max_size, self.max_size)
    self._model = self._context = self._scene = self._assets = None
    self._option = mujoco.MjvOption()
    self._option.geomgroup[:] = 1  # draw every group: hazards, vases, gremlins, ...
    self._camera = mujoco.MjvCamera()
    self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED

  def _bind(self) -> None:
    """Follow the task's current model. A reset rebuilds the world with the same
    assets, so the GL resources (textures, meshes: the slow part) are kept whenever
    the assets match; only the scene is rebuilt."""
    model = self.task.model
    if model is self._model:
      return
    mj = self._mj
    assets = _assets_signature(model)
    if self._context is None or assets != self._assets:
      self._free_context()
      model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.max_size)
      model.vis.global_.offheight = max(model.vis.global_.offheight, self.max_size)
      model.vis.quality.offsamples = self.samples
      self._gl.make_current()
      self._context = mj.MjrContext(model, mj.mjtFontScale.mjFONTSCALE_100)
      mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
      self._assets = assets
    self._scene = mj.MjvScene(model, maxgeom=2000)
    self._model = model

  def render(self, camera: str, size: int | None = None) -> np.ndarray:
    """uint8 [size, size, 3] from the named camera (size: `self.size` by default)."""
    mj = self._mj
    size = min(int(size or self.size), self.max_size)
    self._bind()
    self._gl.make_current()
    self._camera.fixedcamid = mj.mj_name2id(self._model, mj.mjtObj.mjOBJ_CAMERA, camera)
    if self._camera.fixedcamid < 0:
      raise ValueError(f'no camera named {camera!r} in this world')
    mj.mjv_updateScene(self._model, self.task.data, self._option, None, self._camera,
                       mj.mjtCatBit.mjCAT_ALL, self._scene)
    rect = mj.MjrRect(0, 0, size, size)
    mj.mjr_render(rect, self._scene, self._context)
    pixels = np.empty((size, size, 3), np.uint8)
    mj.mjr_readPixels(pixels, None, rect, self._context)
    return np.ascontiguousarray(pixels[::-1])

  def _free_context(self) -> None:
    if self._context is not None:
      self._gl.make_current()
      self._context.free()
    self._context = self._scene = self._model = None

  def close(self) -> None:
    if self._gl is not None:
      self._free_context()
      self._gl.free()
      self._gl = None

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except  (interpreter shutdown)
      pass
