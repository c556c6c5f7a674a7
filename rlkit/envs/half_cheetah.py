"""HalfCheetah task families: target velocity (cheetah-vel) and direction (cheetah-dir)."""

from __future__ import annotations

import numpy as np

from rlkit.envs import register_env
from rlkit.envs.mujoco_base import MujocoTaskEnv


class HalfCheetahTaskEnv(MujocoTaskEnv):
    path_figure = "velocity"

    xml_file = "half_cheetah.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"

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
        info = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost, "x_velocity": forward_vel}
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
