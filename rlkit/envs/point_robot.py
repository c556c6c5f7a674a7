"""2-D point robot task families, with a natively vectorized numpy version.

The state is the position (start at the origin), the action a displacement in
[-0.1, 0.1]^2 and the dense reward -||pos - goal||_2; 20-step episodes with no
early end. The step and reward are written once, on arrays of shape [E, 2], and
used by both the single env and :class:`PointRobotVectorEnv`.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from rlkit.envs import colours, register_env
from rlkit.envs.base import MultiTaskEnv

ACTION_BOUND = 0.1


def point_step(state: np.ndarray, action: np.ndarray, goal: np.ndarray, wind: np.ndarray | None):
    """Next positions and dense rewards for a batch: ``state, action, goal`` are [E, 2]."""
    nxt = state + action if wind is None else state + action + wind
    return nxt, -np.linalg.norm(nxt - goal, axis=-1)


def sparse_reward(dense, goal_radius: float):
    """PEARL's sparse reward: 1 + dense inside ``goal_radius``, 0 outside (in [1 - radius, 1]).

    Works on numpy arrays and torch tensors alike, so training can sparsify a
    sampled batch on its own device.
    """
    return (1.0 + dense) * (dense >= -goal_radius)


def half_circle_goals(n_tasks: int, randomize: bool) -> np.ndarray:
    """Goals at angles linspace(0, pi, n) on the unit circle; shuffled with seed 1337 if asked."""
    angles = np.linspace(0, np.pi, num=n_tasks)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if randomize:
        np.random.RandomState(1337).shuffle(goals)
    return goals


# The drawn window of the plane: the goals' half circle with a margin for overshooting paths.
_VIEW_X, _VIEW_Y = (-1.35, 1.35), (-0.55, 1.35)


def checked_goal_radius(goal_radius) -> float:
    """``env_params.goal_radius`` as a float, or a one-line error: a radius of 0 or less makes the
    sparse reward 0 everywhere (every method scores the same 0, silently), and NaN likewise."""
    from rlkit.envs import EnvParamError

    try:
        radius = float(goal_radius)
    except (TypeError, ValueError):
        radius = float("nan")
    if not (math.isfinite(radius) and radius > 0):
        raise EnvParamError(f"env_params.goal_radius must be a positive number (the sparse reward's radius around "
                            f"the goal; 0.2 in the paper), got {goal_radius!r}")
    return radius


def draw_point_robot(size: int, goals, goal, trail, goal_radius: float | None) -> np.ndarray:
    """A ``size`` x ``size`` RGB frame of the point-robot plane (numpy only: no display, no GL)."""
    height = int(round(size * (_VIEW_Y[1] - _VIEW_Y[0]) / (_VIEW_X[1] - _VIEW_X[0])))
    frame = np.full((height, size, 3), colours.BACKGROUND, np.uint8)
    px_per_unit = size / (_VIEW_X[1] - _VIEW_X[0])
    cols = _VIEW_X[0] + (np.arange(size) + 0.5) / px_per_unit
    rows = _VIEW_Y[1] - (np.arange(height) + 0.5) / px_per_unit
    xx, yy = np.meshgrid(cols, rows)

    def disc(center, radius, colour, ring: bool = False):
        d2 = (xx - center[0]) ** 2 + (yy - center[1]) ** 2
        mask = d2 <= radius ** 2
        if ring:
            mask &= d2 >= (radius - 1.5 / px_per_unit) ** 2
        frame[mask] = colour

    dot = 3.0 / px_per_unit
    frame[np.abs(yy) <= 0.5 / px_per_unit] = colours.AXIS  # the x axis: where the robot starts
    for g in goals:
        disc(g, dot, colours.OTHER_GOALS)
    if goal_radius is not None:
        disc(goal, goal_radius, colours.GOAL, ring=True)
    disc(goal, 1.6 * dot, colours.GOAL)
    for p in trail[:-1]:
        disc(p, 0.8 * dot, colours.TRAIL)
    disc(trail[-1], 1.6 * dot, colours.AGENT)
    return frame


@register_env("point-robot", n_tasks=40, randomize_tasks=0, max_episode_steps=20)
class PointRobotEnv(MultiTaskEnv):
    """Reach a goal on the unit half circle (docs/method.md §2)."""

    goal_radius: float | None = None  # set by the sparse variants
    sac_preset = "train_point"
    checkpoint_episode_chunk = 0  # all episodes of a checkpoint at once: point-robot steps are cheap
    path_figure = "paths"

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 20):
        super().__init__(n_tasks, max_episode_steps)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = spaces.Box(-ACTION_BOUND, ACTION_BOUND, shape=(2,), dtype=np.float32)
        self.tasks = self._make_tasks(randomize_tasks)
        self._state = np.zeros(2)
        self.reset_task(0)

    def _make_tasks(self, randomize: bool) -> list[dict]:
        return [{"goal": g} for g in half_circle_goals(self.n_tasks, randomize)]

    def task_arrays(self, task_ids) -> tuple[np.ndarray, np.ndarray | None]:
        """(goals [E, 2], winds [E, 2] or None) for a list of tasks: the vector env's inputs."""
        ids = [self._check_task(int(i)) for i in task_ids]
        goals = np.stack([self.tasks[i]["goal"] for i in ids]).astype(np.float64)
        if "wind" not in self.tasks[0]:
            return goals, None
        return goals, np.stack([self.tasks[i]["wind"] for i in ids]).astype(np.float64)

    def _apply_task(self, task) -> None:
        pass

    def _reset_state(self) -> np.ndarray:
        self._state = np.zeros(2)
        self._trail = [self._state.copy()]
        return self._state.copy()

    def _step(self, action):
        goals, winds = self.task_arrays([self._task_idx])
        nxt, dense = point_step(self._state[None], action[None], goals, winds)
        self._state = nxt[0]
        self._trail.append(self._state.copy())
        info = {}
        if self.goal_radius is not None:
            info["sparse_reward"] = float(sparse_reward(dense, self.goal_radius)[0])
        return self._state.copy(), float(dense[0]), False, info


    def context_reward(self, rewards):
        """PEARL's sparse reward within ``goal_radius`` (the sparse variants); the dense reward otherwise."""
        return rewards if self.goal_radius is None else sparse_reward(rewards, self.goal_radius)

    def relabel_outcomes(self, obs, actions, task_ids):
        """The point-robot step in torch, for every (s, a) under its task's goal (and wind): the position
        moves by ``ACTION_BOUND`` times the clipped stored action, the reward is the dense -||s' - goal||."""
        import torch

        goals, winds = self.task_arrays(range(self.n_tasks))
        ids = torch.as_tensor(task_ids, device=obs.device)
        nxt = obs + ACTION_BOUND * actions.clamp(-1.0, 1.0)
        if winds is not None:
            nxt = nxt + torch.as_tensor(winds, dtype=obs.dtype, device=obs.device)[ids]
        goal = torch.as_tensor(goals, dtype=obs.dtype, device=obs.device)[ids]
        return nxt, -torch.linalg.vector_norm(nxt - goal, dim=-1)

    def render_frame(self, size: int | None = None) -> np.ndarray:
        """The plane from above: every task's goal (grey), this task's (red, with the sparse radius
        as a ring), the path since the last reset (light blue) and the robot (blue).

        ``size`` x ``size`` pixels; without it, the ``width`` x ``height`` given to ``gymnasium.make``
        (a square drawing of the larger side, resized: the plane stays whole), else 256 x 256.
        """
        width, height = (size, size) if size is not None else (self.render_width, self.render_height)
        width, height = width or height or 256, height or width or 256
        frame = draw_point_robot(max(width, height), [t["goal"] for t in self.tasks],
                                 self.tasks[self._task_idx]["goal"], self._trail, self.goal_radius)
        if (width, height) != frame.shape[1::-1]:
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))
        return frame

    def episode_frames(self, task: int, first_obs, next_obs, infos: dict, size: int = 256) -> list[np.ndarray]:
        """The plane after each recorded step: the positions are the observations."""
        goals, goal = [t["goal"] for t in self.tasks], self.tasks[self._check_task(task)]["goal"]
        trail = np.concatenate([np.asarray(first_obs, dtype=np.float64)[None], np.asarray(next_obs, dtype=np.float64)])
        return [draw_point_robot(size, goals, goal, trail[: t + 2], self.goal_radius) for t in range(len(next_obs))]


@register_env("sparse-point-robot", n_tasks=40, randomize_tasks=0, max_episode_steps=20,
              goal_radius=0.2)
class SparsePointRobotEnv(PointRobotEnv):
    """Point robot whose evaluation reward is sparse (``info['sparse_reward']``).

    ``step`` returns the dense reward, used for training; evaluation reports the
    sparse one. The reference's own sparsify compared the (negative) reward with
    +goal_radius and so always returned 0; we use PEARL's definition instead.
    """

    offline_data_of = "point-robot"  # behaviour policies train on the dense reward: point-robot's data

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 20,
                 goal_radius: float = 0.2):
        self.goal_radius = checked_goal_radius(goal_radius)
        super().__init__(n_tasks, randomize_tasks, max_episode_steps)


@register_env("point-robot-wind", n_tasks=40, randomize_tasks=0, max_episode_steps=20)
class PointRobotWindEnv(PointRobotEnv):
    """Fixed goal (1, 0); each task adds its own wind drift U(-0.05, 0.05)^2 every step."""

    def __init__(self, n_tasks: int = 2, randomize_tasks: bool = False, max_episode_steps: int = 20,
                 goal_radius: float = 0.2):
        self.goal_radius = checked_goal_radius(goal_radius)
        super().__init__(n_tasks, randomize_tasks, max_episode_steps)

    def _make_tasks(self, randomize: bool) -> list[dict]:
        rng = np.random.RandomState(1337)
        wind_x = rng.uniform(-0.05, 0.05, self.n_tasks)
        wind_y = rng.uniform(-0.05, 0.05, self.n_tasks)
        return [{"goal": np.array([1.0, 0.0]), "wind": np.array([wx, wy])} for wx, wy in zip(wind_x, wind_y)]


class PointRobotVectorEnv(VectorEnv):
    """E point robots (one task each) stepped as one numpy operation.

    Acts like the wrapped env: actions in [-1, 1] are rescaled to ±0.1 and
    observations divided by ``obs_absmax`` when given. Supports the SAME_STEP
    (``info['final_obs']``) and DISABLED (``reset(options={'reset_mask': m})``)
    autoreset modes.
    """

    def __init__(self, env: PointRobotEnv, task_ids, obs_absmax=None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP):
        self.task_ids = np.asarray(list(task_ids), dtype=np.int64)
        self.num_envs = len(self.task_ids)
        if self.num_envs < 1:
            raise ValueError("a vector env needs at least one task")
        self.goals, self.winds = env.task_arrays(self.task_ids)
        self.goal_radius = env.goal_radius
        self.max_episode_steps = env.max_episode_steps
        self.autoreset_mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError("PointRobotVectorEnv supports autoreset_mode SAME_STEP or DISABLED")
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self.obs_absmax = None if obs_absmax is None else np.asarray(obs_absmax, dtype=np.float64)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.num_envs, 2), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.num_envs, 2), dtype=np.float32)
        self._state = np.zeros((self.num_envs, 2))
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)

    def _obs(self, state: np.ndarray) -> np.ndarray:
        obs = state if self.obs_absmax is None else state / self.obs_absmax
        return obs.astype(np.float32)

    def reset(self, *, seed=None, options=None):
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        self._state[mask] = 0.0
        self._elapsed[mask] = 0
        return self._obs(self._state), {"task": self.task_ids.copy()}

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, 2):
            raise ValueError(f"actions must have shape ({self.num_envs}, 2), got {actions.shape}")
        scaled = np.clip(actions * ACTION_BOUND, -ACTION_BOUND, ACTION_BOUND)
        self._state, rewards = point_step(self._state, scaled, self.goals, self.winds)
        self._elapsed += 1
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = self._elapsed >= self.max_episode_steps
        infos = {"task": self.task_ids.copy()}
        if self.goal_radius is not None:
            infos["sparse_reward"] = sparse_reward(rewards, self.goal_radius)
        obs = self._obs(self._state)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and truncated.any():
            infos["final_obs"] = obs.copy()
            infos["_final_obs"] = truncated.copy()
            self._state[truncated] = 0.0
            self._elapsed[truncated] = 0
            obs = self._obs(self._state)
        return obs, rewards.astype(np.float64), terminated, truncated, infos
