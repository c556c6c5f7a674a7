"""One recorded episode, the unit the data generator hands to the writers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from rlkit.data.errors import DatasetError

_ALIASES = {
    "obs": "observations",
    "observation": "observations",
    "action": "actions",
    "reward": "rewards",
    "next_obs": "next_observations",
    "next_observation": "next_observations",
    "terminal": "terminated",
    "timeout": "truncated",
    "k": "index",
}


@dataclass
class Episode:
    """The transitions of one episode, in time order.

    ``sampled``: actions were sampled from the behaviour policy (the reference's
    ``trj_evalsample{k}`` files) rather than its mean (``trj_eval{k}``).
    ``index``: the episode number k within its (task, checkpoint, sampled) group.
    ``terminated``: the last transition is a true terminal (the agent fell; no
    bootstrapping past it). ``truncated``: the episode was cut by the time limit.
    Both may be false (stopped for another reason); both true is an error.
    """

    observations: np.ndarray  # [T, obs_dim]
    actions: np.ndarray  # [T, act_dim]
    rewards: np.ndarray  # [T]
    next_observations: np.ndarray  # [T, obs_dim]
    sampled: bool
    index: int
    terminated: bool = False
    truncated: bool = False

    def __post_init__(self) -> None:
        self.observations = _as_2d(self.observations, "observations")
        self.actions = _as_2d(self.actions, "actions")
        self.next_observations = _as_2d(self.next_observations, "next_observations")
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.sampled = bool(self.sampled)
        self.index = int(self.index)
        self.terminated = bool(self.terminated)
        self.truncated = bool(self.truncated)
        t = len(self.observations)
        if t == 0:
            raise DatasetError(f"episode {self.index} is empty: an episode needs at least one transition")
        for name in ("actions", "rewards", "next_observations"):
            if len(getattr(self, name)) != t:
                raise DatasetError(
                    f"episode {self.index}: {name} has {len(getattr(self, name))} rows but observations has {t}"
                )
        if self.next_observations.shape[1] != self.observations.shape[1]:
            raise DatasetError(
                f"episode {self.index}: next_observations dim {self.next_observations.shape[1]} "
                f"!= observations dim {self.observations.shape[1]}"
            )
        if self.index < 0:
            raise DatasetError(f"episode index must be >= 0, got {self.index}")
        if self.terminated and self.truncated:
            raise DatasetError(f"episode {self.index} is marked both terminated and truncated; pick one")

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "Episode":
        """Build from a dict; accepts the short names (``obs``, ``next_obs``, ``terminal``, ...)."""
        kw = {}
        for key, value in m.items():
            kw[_ALIASES.get(key, key)] = value
        try:
            return cls(**kw)
        except TypeError as e:
            raise DatasetError(f"bad episode dict ({e}); expected keys {sorted(cls.__dataclass_fields__)}") from None


def as_episode(e: "Episode | Mapping[str, Any]") -> Episode:
    if isinstance(e, Episode):
        return e
    if isinstance(e, Mapping):
        return Episode.from_mapping(e)
    raise DatasetError(f"expected an Episode or a dict, got {type(e).__name__}")


def episodes_from_flat(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    lengths: Sequence[int],
    sampled: bool | Sequence[bool],
    index: Sequence[int] | None = None,
    terminated: Sequence[bool] | None = None,
    truncated: Sequence[bool] | None = None,
) -> list[Episode]:
    """Split flat transition arrays (episodes back to back) into :class:`Episode` objects.

    ``index`` defaults to 0, 1, ... within each sampled/deterministic group.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    n_ep = len(lengths)
    if lengths.sum() != len(observations):
        raise DatasetError(f"episode lengths sum to {int(lengths.sum())} but there are {len(observations)} transitions")
    sampled_arr = np.broadcast_to(np.asarray(sampled, dtype=bool), (n_ep,))
    if index is None:
        index_arr = np.zeros(n_ep, dtype=np.int64)
        for flag in (False, True):
            sel = np.flatnonzero(sampled_arr == flag)
            index_arr[sel] = np.arange(len(sel))
    else:
        index_arr = np.asarray(index, dtype=np.int64).reshape(-1)
    term = np.zeros(n_ep, bool) if terminated is None else np.asarray(terminated, dtype=bool).reshape(-1)
    trunc = np.zeros(n_ep, bool) if truncated is None else np.asarray(truncated, dtype=bool).reshape(-1)
    for name, arr in (("index", index_arr), ("terminated", term), ("truncated", trunc)):
        if len(arr) != n_ep:
            raise DatasetError(f"{name} has {len(arr)} entries but there are {n_ep} episodes")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [
        Episode(
            observations[a:b], actions[a:b], rewards[a:b], next_observations[a:b],
            sampled=bool(sampled_arr[i]), index=int(index_arr[i]),
            terminated=bool(term[i]), truncated=bool(trunc[i]),
        )
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise DatasetError(f"episode {name} must be [T, dim], got shape {a.shape}")
    return a
