"""Humanoid running in a direction (humanoid-dir)."""

from __future__ import annotations

import numpy as np

from rlkit.envs import register_env
from rlkit.envs.mujoco_base import MujocoTaskEnv


@register_env("humanoid-dir", n_tasks=40, randomize_tasks=0, max_episode_steps=200)
class HumanoidDirEnv(MujocoTaskEnv):
    """Run in a direction d (docs/method.md §2).

    r = 0.25 * (d . Δ mass-centre_xy) / model.opt.timestep - 0.1 ||ctrl||^2
        - min(0.5e-6 ||cfrc_ext||^2, 10) + 5
    Quirk kept from the reference: the velocity divides by the simulator timestep,
    not by dt = timestep * frame_skip, so the velocity term is 5x a true velocity.
    Ends early when the torso height qpos[2] leaves [1, 2].
    Observations: qpos[2:], qvel, cinert, cvel, qfrc_actuator, cfrc_ext with every
    body row (the world body included, as mujoco-py's ``.flat`` gave): 376 dims.
    With ``zero_contact_forces`` (default, the authors' behaviour) cfrc_ext is zero:
    no impact cost and 84 zero observation dimensions (see mujoco_base).
    ``randomize_tasks`` draws directions with seed 1337 (the reference left it unseeded).
    """

    xml_file = "humanoid.xml"
    camera_distance = 4.5
    frame_skip = 5
    reset_noise_scale = 0.01
    qvel_noise = "uniform"

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 200,
                 zero_contact_forces: bool = True):
        super().__init__(n_tasks, max_episode_steps, zero_contact_forces=zero_contact_forces)
        if randomize_tasks:
            directions = np.random.RandomState(1337).uniform(0.0, 2.0 * np.pi, size=(self.n_tasks,))
        else:
            directions = np.linspace(0, 2 * np.pi, self.n_tasks + 1)[:-1]
        self.tasks = [{"direction": float(d)} for d in directions]
        self.reset_task(0)

    def mass_center(self) -> np.ndarray:
        mass = self.model.body_mass[:, None]
        return (mass * self.data.xipos).sum(0) / mass.sum()

    hidden_qpos = ("root_x", "root_y")

    def _get_obs(self) -> np.ndarray:
        d = self.data
        return np.concatenate(
            [d.qpos.flat[2:], d.qvel.flat, d.cinert.flat, d.cvel.flat, d.qfrc_actuator.flat, d.cfrc_ext.flat]
        )

    def _step(self, action):
        before = self.mass_center()[:2]
        self.do_simulation(action)
        delta = self.mass_center()[:2] - before
        d = self.tasks[self._task_idx]["direction"]
        lin_vel_reward = 0.25 * float(delta[0] * np.cos(d) + delta[1] * np.sin(d)) / self.model.opt.timestep
        ctrl_cost = 0.1 * float(np.sum(np.square(self.data.ctrl)))
        impact_cost = min(0.5e-6 * float(np.sum(np.square(self.data.cfrc_ext))), 10.0)
        reward = lin_vel_reward - ctrl_cost - impact_cost + 5.0
        z = self.data.qpos[2]
        terminated = bool(z < 1.0 or z > 2.0)
        info = {"reward_linvel": lin_vel_reward, "reward_ctrl": -ctrl_cost, "reward_impact": -impact_cost,
                **self.hidden_qpos_info()}
        return self._get_obs(), reward, terminated, info
