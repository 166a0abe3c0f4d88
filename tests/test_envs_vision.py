"""Vision: backend choice, front and rear cameras, an object behind the robot."""
import numpy as np
import pytest

from safedreamer.envs import vision


@pytest.fixture(scope='module')
def backend():
  try:
    return vision.select_gl_backend()
  except vision.RenderingUnavailable as error:
    pytest.skip(str(error))


def test_no_backend_gives_one_line_error_with_packages(monkeypatch):
  monkeypatch.setattr(vision, '_chosen', None)
  monkeypatch.delenv('MUJOCO_GL', raising=False)
  monkeypatch.setattr(vision, '_probe', lambda backend: False)
  with pytest.raises(vision.RenderingUnavailable) as info:
    vision.select_gl_backend()
  message = str(info.value)
  assert '\n' not in message
  assert 'libegl1' in message and 'libgl1-mesa-dri' in message and 'libosmesa6' in message


def test_user_choice_is_respected(monkeypatch):
  monkeypatch.setattr(vision, '_chosen', None)
  monkeypatch.setenv('MUJOCO_GL', 'osmesa')
  monkeypatch.setattr(vision, '_probe', lambda backend: pytest.fail('no probe expected'))
  assert vision.select_gl_backend() == 'osmesa'


def test_rear_camera_is_the_front_one_turned_around():
  import mujoco
  xml = """<mujoco><worldbody><body name="agent">
    <camera name="vision" pos="0.1 0.2 0.15" xyaxes="0 -1 0 .4 0 1" fovy="90"/>
    <geom type="sphere" size=".1"/></body></worldbody></mujoco>"""
  model = mujoco.MjModel.from_xml_string(vision.rear_camera_xml(xml, '/tmp'))
  front, rear = model.camera('vision'), model.camera(vision.REAR)
  np.testing.assert_allclose(rear.pos, [-0.1, -0.2, 0.15], atol=1e-6)
  assert rear.fovy[0] == pytest.approx(90)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  look_front = -data.cam_xmat[front.id].reshape(3, 3)[:, 2]  # cameras look along -z
  look_rear = -data.cam_xmat[rear.id].reshape(3, 3)[:, 2]
  np.testing.assert_allclose(look_rear[:2], -look_front[:2], atol=1e-6)
  assert look_rear[2] == pytest.approx(look_front[2])


@pytest.fixture(scope='module')
def point_env(backend):  # pylint: disable=redefined-outer-name,unused-argument
  from safedreamer.envs.safety_gym import SafetyGymEnv
  env = SafetyGymEnv('SafetyPointGoal1-v0', obs='vision', image_size=64, seed=0)
  yield env
  env.close()


def test_two_cameras_render_and_differ(point_env):  # pylint: disable=redefined-outer-name
  assert point_env.obs_space == {'image_front': ((64, 64, 3), np.uint8),
                                 'image_rear': ((64, 64, 3), np.uint8)}
  step = point_env.reset(seed=1)
  assert set(step) >= {'image_front', 'image_rear'} and 'vector' not in step
  for key in ('image_front', 'image_rear'):
    assert step[key].shape == (64, 64, 3) and step[key].dtype == np.uint8
    assert step[key].std() > 5  # not a blank frame
  assert np.abs(step['image_front'].astype(int) - step['image_rear']).mean() > 5
  step = point_env.step(np.array([1.0, 0.5]))
  assert step['image_front'].shape == (64, 64, 3)
  frame = point_env.render()
  assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8


def test_object_behind_is_seen_by_the_rear_camera_only(point_env):  # pylint: disable=redefined-outer-name
  import mujoco
  point_env.reset(seed=2)
  task = point_env._task  # pylint: disable=protected-access
  model, data = task.model, task.data
  address = model.jnt_qposadr[model.body('vase0').jntadr[0]]

  def place_vase(ego_x):
    """Put the vase `ego_x` metres along the robot's heading (negative: behind)."""
    heading = task.agent.mat[:2, 0]
    data.qpos[address:address + 2] = task.agent.pos[:2] + ego_x * heading
    data.qpos[address + 2] = 0.1
    data.qvel[:] = 0
    mujoco.mj_forward(model, data)
    cams = point_env._cameras  # pylint: disable=protected-access
    return cams.render('vision').astype(int), cams.render(vision.REAR).astype(int)

  front_far, rear_far = place_vase(-20.0)  # far off the floor: out of sight
  front_behind, rear_behind = place_vase(-0.5)
  front_ahead, rear_ahead = place_vase(0.5)
  assert np.abs(rear_behind - rear_far).mean() > 2  # seen behind
  assert np.abs(front_behind - front_far).max() == 0  # not in front
  assert np.abs(front_ahead - front_far).mean() > 2  # the front camera sees it ahead
  assert np.abs(rear_ahead - rear_far).max() == 0


@pytest.mark.parametrize('task_id', ['SafetyCarButton1-v0'])
def test_other_robot_and_task(backend, task_id):  # pylint: disable=redefined-outer-name,unused-argument
  from safedreamer.envs.safety_gym import SafetyGymEnv
  env = SafetyGymEnv(task_id, obs='vision', seed=0)
  step = env.reset()
  assert step['image_front'].shape == (64, 64, 3) and step['image_rear'].shape == (64, 64, 3)
  assert not np.array_equal(step['image_front'], step['image_rear'])
  env.close()


@pytest.mark.slow
@pytest.mark.parametrize('robot', ['Point', 'Car', 'Racecar'])
@pytest.mark.parametrize('task', ['Goal1', 'Push1', 'Button1'])
def test_vision_matrix(backend, robot, task):  # pylint: disable=redefined-outer-name,unused-argument
  from safedreamer.config.schema import Config
  from safedreamer.envs import make_env
  config = Config()
  config.env.obs = 'vision'
  config.env.image_size = 32
  env = make_env(f'safetygym/Safety{robot}{task}-v0', config)
  step = env.reset()
  for _ in range(5):
    step = env.step(np.random.uniform(-1, 1, env.act_dim))
  for key in ('image_front', 'image_rear'):
    assert step[key].shape == (32, 32, 3) and step[key].dtype == np.uint8 and step[key].std() > 2
  assert not np.array_equal(step['image_front'], step['image_rear'])
  env.close()
