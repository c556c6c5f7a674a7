"""The env as the agent sees it: actions in [-1, 1], optionally normalized observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def rescale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map [-1, 1] to [low, high] and clip (the reference's NormalizedBoxEnv)."""
    return np.clip(low + (action + 1.0) * 0.5 * (high - low), low, high)


class NormalizedActionEnv(gym.Wrapper):
    """Rescale [-1, 1] actions to the env's bounds; divide observations by ``obs_absmax``.

    ``obs_absmax`` comes from the dataset's ``normalizer.npz`` so that data and
    env observations are scaled identically. The task API of the wrapped env is
    forwarded explicitly (gymnasium >= 1.0 wrappers no longer forward attributes).
    """

    def __init__(self, env, obs_absmax=None):
        super().__init__(env)
        shape = env.action_space.shape
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32)
        obs_dim = env.observation_space.shape
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=obs_dim, dtype=np.float32)
        if obs_absmax is not None:
            obs_absmax = np.asarray(obs_absmax, dtype=np.float64)
            if obs_absmax.shape != obs_dim:
                raise ValueError(
                    f"normalizer abs_max has shape {obs_absmax.shape} but the env's observations are {obs_dim}; "
                    "recompute it with `python -m rlkit.data normalizer DATA_DIR`"
                )
            if not np.all(obs_absmax > 0):
                raise ValueError("normalizer abs_max must be positive everywhere")
        self.obs_absmax = obs_absmax

    def observation(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if self.obs_absmax is not None:
            obs = obs / self.obs_absmax
        return obs.astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.observation(obs), info

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape} does not match the action space {self.action_space.shape}")
        obs, reward, terminated, truncated, info = self.env.step(rescale_action(action, self._low, self._high))
        return self.observation(obs), reward, terminated, truncated, info

    # ---- task API -----------------------------------------------------------------------
    @property
    def n_tasks(self) -> int:
        return self.env.unwrapped.n_tasks

    @property
    def max_episode_steps(self) -> int:
        return self.env.unwrapped.max_episode_steps

    def get_all_task_idx(self):
        return self.env.unwrapped.get_all_task_idx()

    def task_params(self, idx=None):
        return self.env.unwrapped.task_params(idx)

    def reset_task(self, idx: int) -> np.ndarray:
        return self.observation(self.env.unwrapped.reset_task(idx))
