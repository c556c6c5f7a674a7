"""The multi-task environment interface every CSRO environment implements.

A *task distribution* env holds a fixed, seeded list of tasks (goals, target
velocities, physics parameters ...). ``reset_task(i)`` switches the task and
resets the agent, exactly as in the reference code; the gymnasium API
(``reset``/``step`` with terminated/truncated) is used everywhere else.

Time limits live inside the env (``max_episode_steps``) because every consumer
(data generation, evaluation) needs the same horizon and the reference stores it
in ``env_params``. ``truncated`` is set at the limit, ``terminated`` only on a
real failure (a fall), so datasets can keep the two apart.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.errors import UserError


class TaskIndexError(UserError, IndexError):
    """A task index outside ``range(n_tasks)``."""


class RenderOptionError(UserError, ValueError):
    """A frame size or camera the env cannot draw (``gym.make(..., width=0)``, an unknown camera name)."""


def _frame_side(name: str, value: Any) -> int | None:
    """A frame width or height: None (the env's default) or a whole number >= 1."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise RenderOptionError(f"{name} must be a positive whole number of pixels, got {value!r}")
    return int(value)


def _count(name: str, value: Any) -> int:
    """A positive whole number, else a ValueError naming it: ``int(2.5)`` would build 2 tasks silently."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
        ok = True  # 40.0, as a JSON number may be written
    if not ok or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


class MultiTaskEnv(gym.Env):
    """Base class: a gymnasium env with a list of tasks.

    Subclasses set ``self.tasks`` (a list of dicts of numpy-friendly values)
    before calling :meth:`reset_task`, and implement :meth:`_apply_task`,
    :meth:`_reset_state` and :meth:`_step`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    render_mode: str | None = None  # set by gymnasium.make(..., render_mode="rgb_array")
    # False when gymnasium.make wrapped the env in a TimeLimit, which then owns the horizon
    truncates_itself: bool = True

    # Facts about the task distribution that the tools read, so that a new env is one file
    # (plus its configs/ENV.json): the behaviour-policy SAC preset (configs/sac/), how many
    # episodes per task a checkpoint rolls out at once (0: all), and show_path's extra figure
    # ("paths": 2-D trajectories, "velocity": forward velocity, "goal_distance", or None).
    sac_preset: str = "train"
    checkpoint_episode_chunk: int = 10
    path_figure: str | None = None

    def __init__(self, n_tasks: int, max_episode_steps: int):
        self.n_tasks = _count("n_tasks", n_tasks)
        self._max_episode_steps = _count("max_episode_steps", max_episode_steps)
        self._elapsed = 0
        self._task_idx = 0
        self.tasks: list[dict[str, Any]] = []

    # ---- task API (the reference's names) -------------------------------------------
    @property
    def max_episode_steps(self) -> int:
        return self._max_episode_steps

    def get_all_task_idx(self) -> range:
        return range(len(self.tasks))

    @property
    def task_idx(self) -> int:
        return self._task_idx

    def task_params(self, idx: int | None = None) -> dict[str, Any]:
        """The parameters of task ``idx`` (default: current) as plain python/numpy values."""
        idx = self._task_idx if idx is None else self._check_task(idx)
        return dict(self.tasks[idx])

    def reset_task(self, idx: int) -> np.ndarray:
        """Switch to task ``idx`` and reset the agent (reference semantics)."""
        self._task_idx = self._check_task(idx)
        self._apply_task(self.tasks[self._task_idx])
        obs, _ = self.reset()
        return obs

    def _check_task(self, idx) -> int:
        if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)):
            raise TaskIndexError(f"task index must be an int, got {idx!r}")
        if not 0 <= int(idx) < len(self.tasks):
            raise TaskIndexError(
                f"task index {idx} out of range: this env has {len(self.tasks)} tasks "
                f"(valid: 0..{len(self.tasks) - 1}); check env_params.n_tasks"
            )
        return int(idx)

    # ---- gymnasium API ------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self._task_idx = self._check_task(options["task"])
            self._apply_task(self.tasks[self._task_idx])
        self._elapsed = 0
        obs = self._reset_state()
        return obs, {"task": self._task_idx}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"{type(self).__name__}.step: action shape {action.shape} does not match "
                f"the action space {self.action_space.shape}"
            )
        obs, reward, terminated, info = self._step(action)
        self._elapsed += 1
        truncated = (not terminated) and self.truncates_itself and self._elapsed >= self._max_episode_steps
        info["task"] = self._task_idx
        return obs, float(reward), bool(terminated), bool(truncated), info

    # The frame size render() draws when gymnasium.make gave none (each env family's own default).
    render_width: int | None = None
    render_height: int | None = None

    def configure_rendering(self, width=None, height=None, camera_id=None, camera_name=None) -> None:
        """Set what :meth:`render` draws: gymnasium's MuJoCo arguments (``MujocoEnv(width=, height=,
        camera_id=, camera_name=)``), checked here so a bad value fails at ``gymnasium.make``, not at
        the first frame of a long job. Envs with cameras override :meth:`_configure_camera`."""
        self.render_width = _frame_side("width", width)
        self.render_height = _frame_side("height", height)
        if camera_id is not None and camera_name is not None:
            raise RenderOptionError("camera_id and camera_name cannot both be given (as in gymnasium's MuJoCo "
                                    f"envs): got camera_id={camera_id!r}, camera_name={camera_name!r}; pass one")
        self._configure_camera(camera_id, camera_name)

    def _configure_camera(self, camera_id, camera_name) -> None:
        if camera_id is not None or camera_name is not None:
            raise RenderOptionError(f"{getattr(self, 'registered_name', type(self).__name__)} draws its plane from above and has no cameras: "
                                    "leave camera_id and camera_name out")

    def render(self):
        """An RGB frame (H x W x 3 uint8) of the current state, with the task drawn where it can be.

        Only with ``render_mode="rgb_array"`` (gymnasium's convention: an env made
        without a render mode renders nothing).
        """
        if self.render_mode is None:
            return None
        return self.render_frame()

    def context_reward(self, rewards):
        """The reward a sparse-reward run's context holds for these dense ``rewards`` (tensor or array):
        the env's own rule, so the networks never need to know one simulator's. Dense envs: unchanged."""
        return rewards

    def relabel_outcomes(self, obs, actions, task_ids):
        """What each transition's (s, a) leads to in task ``task_ids[...]``: ``(next_obs, rewards)``.

        ``obs`` [..., obs_dim] and ``actions`` [..., act_dim] as the data stores them (actions in
        [-1, 1], the agent's scale), ``task_ids`` [...] indices into :attr:`tasks`; torch tensors, on any
        device. Ground-truth relabelling (CORRO's negatives from other tasks) needs one simulator step
        from an arbitrary state, which only some envs can take in closed form; the others refuse.
        """
        from rlkit.envs import RelabelUnsupported

        raise RelabelUnsupported(f"{type(self).__name__} cannot compute another task's outcome of a stored "
                                 "transition (a MuJoCo step from an arbitrary state); use CORRO's generative "
                                 "negatives: algo_params.corro_negatives_from=cvae")

    def render_frame(self) -> np.ndarray:
        """The frame :meth:`render` returns, whatever ``render_mode`` is (the video tools call it)."""
        raise NotImplementedError(f"{type(self).__name__} does not draw frames")

    def episode_frames(self, task: int, first_obs, next_obs, infos: dict, size: int = 256) -> list[np.ndarray]:
        """One frame per recorded step of an episode of ``task``, drawn from the trace alone.

        ``first_obs`` [obs_dim] is the observation the episode started from, ``next_obs`` [T, obs_dim]
        each step's next observation (unnormalised), ``infos`` the step infos as arrays [T, ...]
        (:class:`rlkit.evaluation.protocols._Trace`). The protocol clips (``show_path --video``) call
        it, so a clip shows exactly the rollout that was scored, not a second one.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot draw a recorded episode")

    @classmethod
    def draws_episodes(cls) -> bool:
        """Whether :meth:`episode_frames` is implemented (the protocol clips check before any rollout)."""
        return cls.episode_frames is not MultiTaskEnv.episode_frames

    # ---- to implement ---------------------------------------------------------------
    def _apply_task(self, task: dict[str, Any]) -> None:
        raise NotImplementedError

    def _reset_state(self) -> np.ndarray:
        raise NotImplementedError

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict]:
        """Advance one step; return (obs, reward, terminated, info)."""
        raise NotImplementedError
