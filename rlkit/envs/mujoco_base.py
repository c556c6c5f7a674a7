"""MuJoCo task envs on the official ``mujoco`` bindings.

The models are the XML files gymnasium ships (``gymnasium/envs/mujoco/assets``),
loaded directly so every env shares one small stepping core: set ``ctrl``,
``mj_step`` ``frame_skip`` times. Stepping is identical to gymnasium's own env
of the same model, which the tests check.

Contact forces: MuJoCo >= 2 fills ``data.cfrc_ext`` only in
``mj_rnePostConstraint``. The authors ran MuJoCo 2.0 through mujoco-py, which
never called it, so their ``cfrc_ext`` was always zero: ant's contact cost,
humanoid's impact cost and humanoid's 84 contact-force observation dimensions
were zero (openai/gym#1541, #1711). ``zero_contact_forces=True`` (the default,
for faithful reproduction) keeps that; ``False`` calls ``mj_rnePostConstraint``
after each step, as gymnasium does, and the terms become real
(``env_params.zero_contact_forces=false``; see docs/method.md).
"""

from __future__ import annotations

import os
import warnings

import gymnasium
import numpy as np
from gymnasium import spaces

from rlkit.envs.base import MultiTaskEnv, RenderOptionError
from rlkit.envs.mujoco_gl import gl_problem, mujoco
from rlkit.errors import UserError

GYMNASIUM_ASSETS = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets")


def load_model(path: str) -> mujoco.MjModel:
    """Compile a model file, silencing MuJoCo's deprecation notice for ``settotalmass``.

    gymnasium's half_cheetah.xml uses that compiler attribute; MuJoCo >= 4 warns
    about it on every load (once per env, i.e. per task), which would drown the
    output of a 40-task job. Any other warning is passed on as a Python warning.
    """
    caught: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(caught.append)
    try:
        model = mujoco.MjModel.from_xml_path(path)
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in caught:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", stacklevel=2)
    return model


def asset_path(xml_file: str) -> str:
    """Absolute path of a model file shipped with gymnasium."""
    path = os.path.join(GYMNASIUM_ASSETS, xml_file)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"MuJoCo model {xml_file!r} not found in gymnasium's assets ({GYMNASIUM_ASSETS}); "
            "reinstall gymnasium (pip install 'gymnasium>=1.0')"
        )
    return path


class RenderError(UserError, RuntimeError):
    """No OpenGL context for off-screen frames."""


class MujocoTaskEnv(MultiTaskEnv):
    """A MuJoCo model, a frame skip and the reset noise of the reference env.

    ``qvel_noise`` is ``"normal"`` (cheetah, ant: ``init_qvel + scale * N(0, 1)``)
    or ``"uniform"`` (humanoid, hopper, walker: ``init_qvel + U(-scale, scale)``),
    as in the gym versions the reference was built on.
    """

    xml_file: str = ""
    frame_skip: int = 5
    reset_noise_scale: float = 0.1
    qvel_noise: str = "normal"

    def __init__(self, n_tasks: int, max_episode_steps: int, sim_timestep: float | None = None,
                 zero_contact_forces: bool = True):
        super().__init__(n_tasks, max_episode_steps)
        self.zero_contact_forces = bool(zero_contact_forces)
        self.model = load_model(asset_path(self.xml_file))
        if sim_timestep is not None:
            self.model.opt.timestep = float(sim_timestep)
        self.data = mujoco.MjData(self.model)
        self.init_qpos = self.data.qpos.ravel().copy()
        self.init_qvel = self.data.qvel.ravel().copy()
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        mujoco.mj_forward(self.model, self.data)
        obs_dim = self._get_obs().shape[0]
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)

    @property
    def dt(self) -> float:
        return self.model.opt.timestep * self.frame_skip

    def body_xpos(self, name: str) -> np.ndarray:
        """Cartesian position of a body frame (what gym's ``get_body_com`` returns)."""
        return self.data.body(name).xpos.copy()

    def state_vector(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat, self.data.qvel.flat])

    def set_state(self, qpos, qvel) -> None:
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def do_simulation(self, ctrl: np.ndarray) -> None:
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        if not self.zero_contact_forces:
            mujoco.mj_rnePostConstraint(self.model, self.data)

    def _reset_state(self) -> np.ndarray:
        mujoco.mj_resetData(self.model, self.data)
        s = self.reset_noise_scale
        qpos = self.init_qpos + self.np_random.uniform(-s, s, size=self.model.nq)
        if self.qvel_noise == "normal":
            qvel = self.init_qvel + s * self.np_random.standard_normal(self.model.nv)
        else:
            qvel = self.init_qvel + self.np_random.uniform(-s, s, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _apply_task(self, task) -> None:
        """Goal-conditioned envs only store the task; physics envs override this."""

    # ---- replaying a recorded episode --------------------------------------------------------------
    # The info keys that carry the leading qpos coordinates the observation leaves out (the root's
    # x, and y for the envs that drop both), in qpos order. Each env's step reports them, so that a
    # recorded trace holds the whole pose: observation[:nq - k] is the rest of qpos.
    hidden_qpos: tuple[str, ...] = ()

    def hidden_qpos_info(self) -> dict[str, float]:
        """The step info entries of :attr:`hidden_qpos`: ``root_x`` = qpos[0], ``root_y`` = qpos[1]."""
        return {key: float(self.data.qpos[i]) for i, key in enumerate(self.hidden_qpos)}

    def qpos_from_obs(self, obs: np.ndarray, info: dict) -> np.ndarray:
        """The pose a step reached, from its observation (unnormalised) and its info."""
        k = len(self.hidden_qpos)
        hidden = [float(np.asarray(info[key])) for key in self.hidden_qpos]
        return np.concatenate([hidden, np.asarray(obs, dtype=np.float64)[: self.model.nq - k]])

    def episode_frames(self, task: int, first_obs, next_obs, infos: dict, size: int = 256) -> list[np.ndarray]:
        """Each recorded step's pose, rendered (width ``size``, 4:3) with the task drawn where the env can.

        The pose is set, not simulated: what is shown is the state the scored step reached. Only qpos
        matters to a picture, so the velocities are left at zero.
        """
        self.reset_task(task)
        width, height = int(size), int(round(size * 3 / 4))
        zeros = np.zeros(self.model.nv)
        frames = []
        for t in range(len(next_obs)):
            info_t = {key: np.asarray(values)[t] for key, values in infos.items()}
            self.set_state(self.qpos_from_obs(next_obs[t], info_t), zeros)
            frames.append(self.draw_task(self.render_frame(width, height), info_t))
        return frames

    def draw_task(self, frame: np.ndarray, info: dict) -> np.ndarray:
        """Mark the current task on a rendered frame (a target velocity's gauge, ...); default: as is."""
        return frame

    # How far (m) the tracking camera stands from the body it follows (the torso).
    camera_distance: float = 3.5
    # gymnasium.make's camera_id / camera_name, resolved to a model camera id; None: our tracking camera
    _camera_choice: int | None = None

    def _configure_camera(self, camera_id, camera_name) -> None:
        """gymnasium's MujocoRenderer semantics: ``camera_name`` is one of the model's named cameras,
        ``camera_id`` an index into them or -1 for the free camera (here: the torso-tracking camera
        every clip uses, which is also the default)."""
        names = [self.model.camera(i).name for i in range(self.model.ncam)]
        if camera_name is not None:
            if camera_name not in names or not camera_name:
                known = ", ".join(repr(n) for n in names if n) or "none"
                raise RenderOptionError(f"camera_name {camera_name!r} is not a camera of {self.xml_file}; "
                                        f"its cameras are: {known}")
            self._camera_choice = names.index(camera_name)
        elif camera_id is not None:
            ok = isinstance(camera_id, (int, np.integer)) and not isinstance(camera_id, bool)
            if not ok or not -1 <= int(camera_id) < self.model.ncam:
                raise RenderOptionError(f"camera_id must be -1 (the free tracking camera) or 0..{self.model.ncam - 1} "
                                        f"(the cameras of {self.xml_file}), got {camera_id!r}")
            self._camera_choice = None if int(camera_id) == -1 else int(camera_id)
        else:
            self._camera_choice = None

    def scene_markers(self) -> list[dict]:
        """Decorations drawn into the 3-D scene, not the model (so physics is untouched): dicts of
        ``pos`` (x, y, z), ``size`` (a cylinder's radius and half-height) and ``rgba``. Default: none."""
        return []

    def _add_markers(self, scene) -> None:
        for marker in self.scene_markers():
            if scene.ngeom >= scene.maxgeom:
                return  # a full scene keeps the model's own geoms rather than fail the frame
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_CYLINDER,
                                np.asarray(marker["size"], dtype=np.float64).tolist() + [0.0],
                                np.asarray(marker["pos"], dtype=np.float64), np.eye(3).flatten(),
                                np.asarray(marker["rgba"], dtype=np.float32))
            scene.ngeom += 1

    def render_frame(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """An off-screen frame (``mujoco.Renderer``): ``width`` x ``height``, else gymnasium.make's, else
        320 x 240; from the camera gymnasium.make picked, else one that follows the torso; with
        :meth:`scene_markers` drawn in."""
        width = int(width or self.render_width or 320)
        height = int(height or self.render_height or 240)
        renderer = getattr(self, "_renderer", None)
        if renderer is None or (renderer.width, renderer.height) != (width, height):
            if gl_problem():
                raise RenderError(gl_problem())
            if renderer is not None:
                renderer.close()
            # MuJoCo's off-screen buffer is the model's visual.global offwidth x offheight (640 x 480
            # unless the XML says more); gymnasium's renderer grows it for a larger frame, and so do we.
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
            try:
                renderer = mujoco.Renderer(self.model, height, width)
            except Exception as exc:  # no GL library, no device: one line that says what to install
                raise RenderError(
                    f"MuJoCo could not open an off-screen OpenGL context (MUJOCO_GL="
                    f"{os.environ.get('MUJOCO_GL', 'glfw')}): {exc}; install EGL (apt-get install libegl1 "
                    "libgl1) or OSMesa (libosmesa6, then MUJOCO_GL=osmesa)") from exc
            self._renderer = renderer
            self._camera = mujoco.MjvCamera()
            self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            self._camera.trackbodyid = 1
            self._camera.distance = self.camera_distance
            self._camera.elevation = -20.0
            self._camera.azimuth = 90.0
        camera = self._camera if self._camera_choice is None else self._camera_choice
        renderer.update_scene(self.data, camera=camera)
        self._add_markers(renderer.scene)
        return renderer.render()

    def close(self):
        renderer = getattr(self, "_renderer", None)
        if renderer is not None:
            renderer.close()
            self._renderer = None
        super().close()

    def _get_obs(self) -> np.ndarray:
        raise NotImplementedError
