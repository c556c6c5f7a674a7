"""Step many tasks' envs in lockstep behind gymnasium's vector API.

One sub-env per task id. The point-robot family is vectorized natively in
numpy (:class:`~rlkit.envs.point_robot.PointRobotVectorEnv`); MuJoCo envs use
:class:`MujocoTaskVectorEnv`, which steps its raw envs in one loop with the
action rescaling and observation normalisation done once for the batch (the
per-env layers of gymnasium's ``SyncVectorEnv`` + wrapper cost more than
``mj_step`` itself for these small models). Both take actions in [-1, 1],
return normalized float32 observations, and support the SAME_STEP and
DISABLED autoreset modes that data generation and evaluation use; the tests
check them against single wrapped envs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from rlkit.envs import make_env, make_wrapped_env
from rlkit.envs.mujoco_base import MujocoTaskEnv
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
    elif isinstance(probe, MujocoTaskEnv):
        venv = MujocoTaskVectorEnv(name, env_params, task_ids, obs_absmax=obs_absmax, autoreset_mode=autoreset_mode)
    else:
        mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        venv = SyncVectorEnv(
            [_pinned_env_fn(name, env_params, t, obs_absmax) for t in task_ids], autoreset_mode=mode
        )
    if seed is not None:
        venv.reset(seed=seed)
    return venv


class MujocoTaskVectorEnv(VectorEnv):
    """E MuJoCo task envs (one task each) stepped in one Python loop.

    Semantics are those of ``SyncVectorEnv`` over :class:`NormalizedActionEnv`:
    sub-env i is reset with ``seed + i``; numeric infos come back as arrays;
    SAME_STEP puts the final observation in ``info['final_obs']`` (with the
    ``_final_obs`` mask); DISABLED takes ``reset(options={'reset_mask': m})``.
    """

    def __init__(self, name: str, env_params: dict, task_ids, obs_absmax=None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP):
        self.task_ids = np.asarray(list(task_ids), dtype=np.int64)
        self.num_envs = len(self.task_ids)
        self.envs = [make_env(name, **env_params) for _ in range(self.num_envs)]
        for env, t in zip(self.envs, self.task_ids):
            env.reset_task(int(t))
        first = self.envs[0]
        self.autoreset_mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError("MujocoTaskVectorEnv supports autoreset_mode SAME_STEP or DISABLED")
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self._low = first.action_space.low.astype(np.float64)
        self._high = first.action_space.high.astype(np.float64)
        obs_dim, act_dim = first.observation_space.shape[0], first.action_space.shape[0]
        self.obs_absmax = None if obs_absmax is None else np.asarray(obs_absmax, dtype=np.float64)
        if self.obs_absmax is not None and self.obs_absmax.shape != (obs_dim,):
            raise ValueError(f"normalizer abs_max has shape {self.obs_absmax.shape} but observations are ({obs_dim},)")
        self.single_observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(act_dim,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.num_envs, obs_dim), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.num_envs, act_dim), dtype=np.float32)
        self._obs = np.zeros((self.num_envs, obs_dim))
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def _out(self, obs: np.ndarray) -> np.ndarray:
        return (obs if self.obs_absmax is None else obs / self.obs_absmax).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        for i in np.flatnonzero(mask):
            self._obs[i] = self.envs[i].reset(seed=None if seed is None else int(seed) + int(i))[0]
        self._needs_reset[mask] = False
        return self._out(self._obs), {"task": self.task_ids.copy()}

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        if self.autoreset_mode == AutoresetMode.DISABLED and self._needs_reset.any():
            raise RuntimeError(f"sub-envs {np.flatnonzero(self._needs_reset).tolist()} ended: reset them first "
                               "(reset(options={'reset_mask': mask}))")
        scaled = np.clip(self._low + (actions + 1.0) * 0.5 * (self._high - self._low), self._low, self._high)
        n = self.num_envs
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        infos: dict = {"task": self.task_ids.copy()}
        for i, env in enumerate(self.envs):
            obs, reward, term, info = env._step(scaled[i])
            env._elapsed += 1
            self._obs[i], rewards[i], terminated[i] = obs, reward, term
            truncated[i] = (not term) and env._elapsed >= env.max_episode_steps
            for key, value in info.items():
                value = np.asarray(value)
                if key not in infos:
                    infos[key] = np.zeros((n, *value.shape), dtype=value.dtype)
                infos[key][i] = value
        ended = terminated | truncated
        obs = self._out(self._obs)
        if ended.any():
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                infos["final_obs"], infos["_final_obs"] = obs.copy(), ended.copy()
                for i in np.flatnonzero(ended):
                    self._obs[i] = self.envs[i].reset()[0]
                obs = self._out(self._obs)
            else:
                self._needs_reset |= ended
        return obs, rewards, terminated, truncated, infos


# gymnasium.make's rendering arguments: the batched envs draw no frames, so these are refused, not dropped.
_RENDER_ARGS = ("render_mode", "width", "height", "camera_id", "camera_name")


def make_vec_for_gymnasium(num_envs: int = 1, name: str = "", tasks: Sequence[int] | None = None,
                           obs_absmax=None, autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
                           **env_params) -> VectorEnv:
    """gymnasium's ``vector_entry_point``: ``gym.make_vec(id, num_envs=N, tasks=[...])`` builds
    :func:`make_vector_env`, sub-env i on task ``tasks[i]`` (default: tasks 0..N-1, which are the
    configs' training tasks, since n_train_tasks come first). Repeats are allowed (``[3, 3, 3]``:
    three episodes of task 3 at once). The sub-envs act as the agent sees the env, like every tool
    here: actions in [-1, 1], float32 observations (divided by ``obs_absmax`` when given).
    """
    given = [key for key in _RENDER_ARGS if env_params.pop(key, None) is not None]
    if given:
        raise ValueError(f"the batched vector env draws no frames: leave {', '.join(given)} out, or use "
                         "vectorization_mode='sync' with num_envs=1 to render")
    if "task" in env_params:
        raise ValueError(f"task={env_params['task']!r} picks the task of one env; gym.make_vec takes one task "
                         "per sub-env: tasks=[...] (e.g. tasks=[3] * num_envs for copies of task 3)")
    probe = make_env(name, **env_params)
    if tasks is None:
        if num_envs > probe.n_tasks:
            raise ValueError(f"{num_envs} sub-envs but {name} has {probe.n_tasks} tasks: give fewer, or "
                             "tasks=[...] with one task id per sub-env (repeats allowed)")
        tasks = list(range(num_envs))
    tasks = list(tasks)
    if len(tasks) != num_envs:
        raise ValueError(f"tasks has {len(tasks)} task ids but num_envs is {num_envs}: give one per sub-env")
    return make_vector_env(name, env_params, tasks, obs_absmax=obs_absmax, autoreset_mode=autoreset_mode)
