"""Hopper and Walker2d with randomized physics per task (hopper/walker-rand-params)."""

from __future__ import annotations

import numpy as np

from rand_param_envs import RAND_PARAMS, PhysicsRandomizer, sample_param_sets
from rlkit.envs import register_env
from rlkit.envs.mujoco_base import MujocoTaskEnv

# The reference's rand_param_envs models (mjpro131 gym) run at timestep 0.004 with
# frame_skip 4 (dt = 0.016); gymnasium's hopper.xml / walker2d.xml are the same
# bodies at timestep 0.002, so we override the timestep to keep the reference's dt.
REFERENCE_TIMESTEP = 0.004


class RandParamsEnv(MujocoTaskEnv):
    """Tasks are physics parameter sets drawn with ``task_seed`` (1234 in the reference).

    ``randomize_tasks`` is accepted for config compatibility; the reference's
    non-random branch reads parameters from a log file of an old dataset, which
    datasets now carry in their metadata instead, so tasks are always sampled.
    """

    frame_skip = 4
    reset_noise_scale = 5e-3
    qvel_noise = "uniform"

    def __init__(
        self,
        n_tasks: int = 2,
        randomize_tasks: bool = True,
        max_episode_steps: int = 200,
        log_scale_limit: float = 3.0,
        task_seed: int = 1234,
        sim_timestep: float = REFERENCE_TIMESTEP,
        rand_params=RAND_PARAMS,
    ):
        super().__init__(n_tasks, max_episode_steps, sim_timestep=sim_timestep)
        self.randomizer = PhysicsRandomizer(self.model, rand_params)
        self.log_scale_limit = float(log_scale_limit)
        self.tasks = sample_param_sets(
            self.randomizer.base, self.n_tasks, seed=task_seed, log_scale_limit=log_scale_limit,
            rand_params=rand_params,
        )
        self.reset_task(0)

    def task_params(self, idx: int | None = None):
        idx = self._task_idx if idx is None else self._check_task(idx)
        return {k: v.copy() for k, v in self.tasks[idx].items()}

    def _apply_task(self, task) -> None:
        self.randomizer.apply(task, self.data)

    hidden_qpos = ("root_x",)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat[1:], np.clip(self.data.qvel.flat, -10, 10)])

    def _healthy(self) -> bool:
        raise NotImplementedError

    def _step(self, action):
        x_before = self.data.qpos[0]
        self.do_simulation(action)
        x_velocity = (self.data.qpos[0] - x_before) / self.dt
        reward = x_velocity + 1.0 - 1e-3 * float(np.sum(np.square(action)))
        terminated = not self._healthy()
        return self._get_obs(), reward, terminated, {"x_velocity": x_velocity, **self.hidden_qpos_info()}


@register_env("hopper-rand-params", n_tasks=40, randomize_tasks=1, max_episode_steps=200)
class HopperRandParamsEnv(RandParamsEnv):
    """Ends when the hopper falls: height <= 0.7, |angle| >= 0.2, or a non-finite / huge state."""

    xml_file = "hopper.xml"

    def _healthy(self) -> bool:
        s = self.state_vector()
        height, angle = self.data.qpos[1:3]
        return bool(np.isfinite(s).all() and (np.abs(s[2:]) < 100).all() and height > 0.7 and abs(angle) < 0.2)


@register_env("walker-rand-params", n_tasks=40, randomize_tasks=1, max_episode_steps=200)
class WalkerRandParamsEnv(RandParamsEnv):
    """Ends when the height leaves (0.8, 2) or |angle| >= 1.

    Uses gymnasium's walker2d.xml (the reference's model: left foot friction 1.9),
    not walker2d_v5.xml.
    """

    xml_file = "walker2d.xml"

    def _healthy(self) -> bool:
        height, angle = self.data.qpos[1:3]
        return bool(0.8 < height < 2.0 and -1.0 < angle < 1.0)
