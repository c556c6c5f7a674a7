"""Synthetic datasets for tests, benchmarks and smoke runs (random values, real layouts).

Values encode where they come from, so tests can check that loading and
sampling keep every transition with its task: ``obs[..., 0]`` is the task id,
``obs[..., 1]`` the checkpoint step / 1e6, ``actions[..., 0]`` the episode
index k and ``rewards`` the time step within the episode (when the dims allow).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.data.episodes import Episode
from rlkit.data.legacy import write_legacy_checkpoint
from rlkit.data.loader import OfflineData
from rlkit.data.native import DatasetWriter


def synthetic_episodes(
    rng: np.random.Generator,
    task: int,
    step: int,
    n_deterministic: int,
    n_sampled: int,
    length: int,
    obs_dim: int,
    act_dim: int,
    early_end_prob: float = 0.0,
    max_episode_steps: int | None = None,
) -> list[Episode]:
    """Episodes of one (task, checkpoint). With ``early_end_prob`` some end early in a true terminal."""
    limit = max_episode_steps or length
    out = []
    for sampled, n in ((False, n_deterministic), (True, n_sampled)):
        for k in range(n):
            t = length
            fell = False
            if early_end_prob and rng.random() < early_end_prob:
                t, fell = int(rng.integers(1, length)), True
            o = rng.standard_normal((t + 1, obs_dim)).astype(np.float32)
            o[:, 0] = task
            if obs_dim > 1:
                o[:, 1] = step / 1e6
            a = rng.uniform(-1, 1, (t, act_dim)).astype(np.float32)
            a[:, 0] = k
            r = np.arange(t, dtype=np.float32)
            out.append(Episode(o[:-1], a, r, o[1:], sampled=sampled, index=k, terminated=fell,
                               truncated=(not fell) and t >= limit))
    return out


def write_synthetic_dataset(
    root: str | os.PathLike,
    n_tasks: int,
    steps: Sequence[int],
    n_deterministic: int = 1,
    n_sampled: int = 5,
    length: int = 20,
    obs_dim: int = 2,
    act_dim: int = 2,
    layout: str = "native",
    seed: int = 0,
    early_end_prob: float = 0.0,
    env_name: str = "synthetic",
) -> Path:
    """Write a whole synthetic dataset in the native format or the reference layout."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    writer = None
    if layout == "native":
        writer = DatasetWriter(
            root, env_name, {"n_tasks": n_tasks, "max_episode_steps": length},
            [{"goal": float(i)} for i in range(n_tasks)], obs_dim, act_dim,
            {"synthetic": True, "seed": seed}, fsync=False,
        )
    elif layout != "legacy":
        raise ValueError(f"layout must be 'native' or 'legacy', got {layout!r}")
    for task in range(n_tasks):
        for step in steps:
            eps = synthetic_episodes(rng, task, step, n_deterministic, n_sampled, length, obs_dim, act_dim,
                                     early_end_prob)
            if writer is not None:
                writer.write_checkpoint(task, step, eps)
            else:
                write_legacy_checkpoint(root, task, step, eps)
    return root


def synthetic_offline_data(
    lengths: Sequence[Sequence[int]],
    obs_dim: int = 2,
    act_dim: int = 2,
    task_ids: Sequence[int] | None = None,
    seed: int = 0,
) -> OfflineData:
    """An in-memory :class:`OfflineData` whose task ``j`` holds episodes of ``lengths[j]`` steps.

    No files: for tests and benchmarks that need exact episode lengths (short ones,
    one task without long ones) or sizes too big to write quickly. Values as
    :func:`write_synthetic_dataset`'s: ``obs[..., 0]`` the task id, ``obs[..., 1]``
    the episode's number within its task, ``actions[..., 0]`` the same number and
    ``rewards`` the time step within the episode; the last step of an episode
    is a time-limit end.
    """
    rng = np.random.default_rng(seed)
    task_ids = np.arange(len(lengths), dtype=np.int64) if task_ids is None else np.asarray(task_ids, np.int64)
    if len(task_ids) != len(lengths):
        raise ValueError(f"{len(task_ids)} task ids for {len(lengths)} tasks' episode lengths")
    ep_len = np.concatenate([np.asarray(x, np.int64).reshape(-1) for x in lengths])
    if (ep_len < 1).any():
        raise ValueError("every episode needs at least one step")
    per_task = np.array([len(x) for x in lengths], np.int64)
    ep_task = np.repeat(task_ids, per_task)
    ep_number = np.concatenate([np.arange(n, dtype=np.int64) for n in per_task])
    ep_offsets = np.concatenate([[0], np.cumsum(ep_len)]).astype(np.int64)
    n = int(ep_offsets[-1])
    row_ep = np.repeat(np.arange(len(ep_len)), ep_len)
    step = np.arange(n, dtype=np.int64) - ep_offsets[row_ep]
    obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    next_obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    obs[:, 0] = next_obs[:, 0] = ep_task[row_ep]
    if obs_dim > 1:
        obs[:, 1] = next_obs[:, 1] = ep_number[row_ep]
    actions = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    actions[:, 0] = ep_number[row_ep]
    ends = np.zeros(n, bool)
    ends[ep_offsets[1:] - 1] = True
    return OfflineData(
        task_ids=task_ids, obs=obs, actions=actions, rewards=step.astype(np.float32), next_obs=next_obs,
        terminals=np.zeros(n, bool), timeouts=ends.copy(), episode_ends=ends,
        task_offsets=np.concatenate([[0], np.cumsum([int(np.sum(x)) for x in lengths])]).astype(np.int64),
        episode_offsets=ep_offsets, episode_task=ep_task, episode_step=np.zeros(len(ep_len), np.int64),
        episode_sampled=np.ones(len(ep_len), bool), episode_index=ep_number, layout="native", data_dir="<memory>",
    )
