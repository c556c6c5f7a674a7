"""HalfCheetah task families: target velocity (cheetah-vel) and direction (cheetah-dir)."""

from __future__ import annotations

import numpy as np

from rlkit.envs import colours, register_env
from rlkit.envs.mujoco_base import MujocoTaskEnv


GAUGE_RANGE = (-1.0, 4.0)  # m/s shown by the gauge: the tasks' [1, 3] with room either side


def draw_velocity_gauge(frame: np.ndarray, velocity: float, target: float) -> np.ndarray:
    """``frame`` with a gauge in its bottom 26 rows: a grey scale over :data:`GAUGE_RANGE` with a tick
    at every m/s, a blue bar from 0 to ``velocity``, a red tick at ``target``, and both in words."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    lo, hi = GAUGE_RANGE

    def col(v: float) -> int:
        return int(round((min(max(v, lo), hi) - lo) / (hi - lo) * (w - 1)))

    top = h - 26
    draw.rectangle((0, top, w - 1, h - 1), fill=colours.PANEL)
    draw.text((4, top + 1), f"velocity {velocity:.2f} m/s, target {target:.2f}", fill=colours.TEXT)
    for v in range(int(lo), int(hi) + 1):
        draw.line((col(v), h - 12, col(v), h - 9), fill=colours.SCALE)
    a, b = sorted((col(0.0), col(velocity)))
    draw.rectangle((a, h - 8, b, h - 3), fill=colours.AGENT)
    c = col(target)
    draw.rectangle((c - 1, h - 13, c + 1, h - 1), fill=colours.GOAL)
    return np.asarray(img)


class HalfCheetahTaskEnv(MujocoTaskEnv):
    path_figure = "velocity"

    xml_file = "half_cheetah.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"
    hidden_qpos = ("root_x",)

    def _get_obs(self) -> np.ndarray:
        # qpos without the root x (position-invariant), qvel, torso position (20 dims)
        return np.concatenate(
            [self.data.qpos.flat[1:], self.data.qvel.flat, self.body_xpos("torso")]
        )

    def _forward_velocity(self, action: np.ndarray) -> float:
        x_before = self.data.qpos[0]
        self.do_simulation(action)
        return (self.data.qpos[0] - x_before) / self.dt

    def _task_reward(self, forward_vel: float) -> float:
        raise NotImplementedError

    def _step(self, action):
        forward_vel = self._forward_velocity(action)
        forward_reward = self._task_reward(forward_vel)
        ctrl_cost = 0.05 * float(np.sum(np.square(action)))
        info = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost, "x_velocity": forward_vel,
                **self.hidden_qpos_info()}
        return self._get_obs(), forward_reward - ctrl_cost, False, info


@register_env("cheetah-vel", n_tasks=40, randomize_tasks=0, max_episode_steps=200)
class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """Run at a target forward velocity: r = -|v_x - v_goal| - 0.05 ||a||^2 (docs/method.md §2)."""

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 200):
        super().__init__(n_tasks, max_episode_steps)
        if randomize_tasks:
            velocities = np.random.RandomState(1337).uniform(1.0, 3.0, size=(self.n_tasks,))
        else:
            velocities = np.linspace(1.0, 3.0, num=self.n_tasks)
        self.tasks = [{"velocity": float(v)} for v in velocities]
        self.reset_task(0)

    def _task_reward(self, forward_vel: float) -> float:
        return -abs(forward_vel - self.tasks[self._task_idx]["velocity"])

    def draw_task(self, frame: np.ndarray, info: dict) -> np.ndarray:
        """A speed gauge along the bottom: the target velocity (red tick) and the step's (blue bar)."""
        return draw_velocity_gauge(frame, float(info["x_velocity"]), self.tasks[self._task_idx]["velocity"])


@register_env("cheetah-dir", n_tasks=2, randomize_tasks=0, max_episode_steps=200)
class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """Run backward (task 0) or forward (task 1): r = d * v_x - 0.05 ||a||^2."""

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 200):
        if int(n_tasks) != 2:
            raise ValueError(
                f"cheetah-dir has exactly 2 tasks (backward, forward); set env_params.n_tasks=2, got {n_tasks}"
            )
        super().__init__(n_tasks, max_episode_steps)
        self.tasks = [{"direction": -1.0}, {"direction": 1.0}]
        self.reset_task(0)

    def _task_reward(self, forward_vel: float) -> float:
        return self.tasks[self._task_idx]["direction"] * forward_vel
