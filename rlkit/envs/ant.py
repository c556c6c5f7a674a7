"""Ant task families: reach a goal position (ant-goal) or run in a direction (ant-dir)."""

from __future__ import annotations

import numpy as np

from rlkit.envs import register_env
from rlkit.envs.mujoco_base import MujocoTaskEnv


class AntTaskEnv(MujocoTaskEnv):
    # gymnasium's ant.xml is the reference's model minus two visual-only sites.
    xml_file = "ant.xml"
    camera_distance = 5.0
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"

    def contact_cost(self) -> float:
        """0 with ``zero_contact_forces`` (the authors' runs): cfrc_ext is never computed then."""
        return 0.5e-3 * float(np.sum(np.square(np.clip(self.data.cfrc_ext, -1.0, 1.0))))


@register_env("ant-goal", n_tasks=40, randomize_tasks=0, max_episode_steps=200)
class AntGoalEnv(AntTaskEnv):
    """Reach a goal on the circle of radius 2 (docs/method.md §2).

    r = -L1(torso_xy - goal) - 0.1 ||a||^2 - 0.5e-3 * sum(clip(cfrc_ext, -1, 1)^2); no early end.
    Observations are the full qpos (including x, y) and qvel: 29 dims.
    """

    path_figure = "goal_distance"

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 200,
                 zero_contact_forces: bool = True):
        super().__init__(n_tasks, max_episode_steps, zero_contact_forces=zero_contact_forces)
        if randomize_tasks:
            angles = np.random.RandomState(1334).random_sample(self.n_tasks) * 2 * np.pi
        else:
            angles = np.linspace(0, 2 * np.pi, self.n_tasks + 1)[:-1]
        goals = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        self.tasks = [{"goal": g.copy()} for g in goals]
        self.reset_task(0)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat, self.data.qvel.flat])

    def scene_markers(self) -> list[dict]:
        """The goal as a flat red disc on the floor, drawn into the scene so the camera's perspective
        places it (a disc painted onto the image would need the camera's projection by hand)."""
        from rlkit.envs.colours import GOAL

        x, y = self.tasks[self._task_idx]["goal"]
        return [{"pos": (x, y, 0.01), "size": (0.25, 0.01), "rgba": (*(c / 255 for c in GOAL), 1.0)}]

    def _step(self, action):
        self.do_simulation(action)
        xy = self.body_xpos("torso")[:2]
        goal_reward = -float(np.sum(np.abs(xy - self.tasks[self._task_idx]["goal"])))
        ctrl_cost = 0.1 * float(np.sum(np.square(action)))
        contact_cost = self.contact_cost()
        reward = goal_reward - ctrl_cost - contact_cost
        info = {"reward_goal": goal_reward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost, "xy": xy}
        return self._get_obs(), reward, False, info


@register_env("ant-dir", n_tasks=40, randomize_tasks=0, max_episode_steps=200)
class AntDirEnv(AntTaskEnv):
    """Run in a direction in the plane (reference ant-dir; kept for completeness).

    r = v_xy . (cos d, sin d) - 0.5 ||a||^2 - contact + 1; ends when the torso z leaves
    [0.2, 1.0]. Observations exclude x, y (27 dims), as in the reference.
    ``randomize_tasks`` draws directions with seed 1337 (the reference left it unseeded).
    """

    def __init__(
        self,
        n_tasks: int = 2,
        randomize_tasks: bool = False,
        max_episode_steps: int = 200,
        forward_backward: bool = False,
        zero_contact_forces: bool = True,
    ):
        super().__init__(n_tasks, max_episode_steps, zero_contact_forces=zero_contact_forces)
        if forward_backward:
            if self.n_tasks != 2:
                raise ValueError("ant-dir with forward_backward=True needs env_params.n_tasks=2")
            directions = np.array([0.0, np.pi])
        elif randomize_tasks:
            directions = np.random.RandomState(1337).uniform(0.0, 2.0 * np.pi, size=(self.n_tasks,))
        else:
            directions = np.linspace(0, 2 * np.pi, self.n_tasks + 1)[:-1]
        self.tasks = [{"direction": float(d)} for d in directions]
        self.reset_task(0)

    hidden_qpos = ("root_x", "root_y")

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat[2:], self.data.qvel.flat])

    def _step(self, action):
        before = self.body_xpos("torso")
        self.do_simulation(action)
        velocity = (self.body_xpos("torso") - before) / self.dt
        d = self.tasks[self._task_idx]["direction"]
        forward_reward = float(velocity[0] * np.cos(d) + velocity[1] * np.sin(d))
        ctrl_cost = 0.5 * float(np.sum(np.square(action)))
        contact_cost = self.contact_cost()
        reward = forward_reward - ctrl_cost - contact_cost + 1.0
        state = self.state_vector()
        terminated = not (np.isfinite(state).all() and 0.2 <= state[2] <= 1.0)
        info = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost,
                **self.hidden_qpos_info()}
        return self._get_obs(), reward, terminated, info
