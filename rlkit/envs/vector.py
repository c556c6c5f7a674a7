"""Step many tasks' envs in lockstep behind gymnasium's vector API.

One sub-env per task id. The point-robot family is vectorized natively in
numpy (:class:`~rlkit.envs.point_robot.PointRobotVectorEnv`); MuJoCo envs use
gymnasium's ``SyncVectorEnv`` over wrapped envs each pinned to its task. Both
take actions in [-1, 1] and return normalized float32 observations, and both
support the SAME_STEP and DISABLED autoreset modes that data generation and
evaluation use.
"""

from __future__ import annotations

from typing import Sequence

from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from rlkit.envs import make_env, make_wrapped_env
from rlkit.envs.point_robot import PointRobotEnv, PointRobotVectorEnv


def _pinned_env_fn(name: str, env_params: dict, task: int, obs_absmax):
    def _make():
        env = make_wrapped_env(name, obs_absmax=obs_absmax, **env_params)
        env.reset_task(task)
        return env

    return _make


def make_vector_env(
    name: str,
    env_params: dict,
    task_ids: Sequence[int],
    obs_absmax=None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    seed: int | None = None,
) -> VectorEnv:
    """A vector env with one sub-env per entry of ``task_ids`` (repeats allowed).

    ``seed`` seeds the sub-envs' reset noise (sub-env i gets ``seed + i``).
    """
    task_ids = [int(t) for t in task_ids]
    if not task_ids:
        raise ValueError("make_vector_env needs at least one task id")
    probe = make_env(name, **env_params)
    for t in task_ids:
        probe._check_task(t)
    if isinstance(probe, PointRobotEnv):
        venv = PointRobotVectorEnv(probe, task_ids, obs_absmax=obs_absmax, autoreset_mode=autoreset_mode)
    else:
        mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        venv = SyncVectorEnv(
            [_pinned_env_fn(name, env_params, t, obs_absmax) for t in task_ids], autoreset_mode=mode
        )
    if seed is not None:
        venv.reset(seed=seed)
    return venv
