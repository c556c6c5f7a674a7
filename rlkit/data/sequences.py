"""Trajectory segments of a :class:`rlkit.data.MultiTaskBuffer`: the episode table, windows, returns-to-go.

A sequence model (a decision transformer, a recurrent belief model) reads
consecutive steps of one episode. The buffer's rows are already in episode
order (task, checkpoint, k, time; episodes tile the rows), so a window of L
steps from row ``s`` is the rows ``s .. s + L - 1`` cut at its episode's end.
Everything here turns draws into such row indices with a fixed number of
tensor ops, whatever T, K and L: the buffer then reads all windows of a meta
batch with its one row gather.

The two ways to start a window (``padding``):

* ``None``: starts are drawn uniformly over every (episode, start) pair where a
  whole window fits, so windows never reach past an episode's end and need no
  mask; episodes shorter than L never contribute (long episodes weigh more, as
  they hold more windows). A task without an episode of L steps is an error.
* ``"left"`` / ``"right"``: starts are drawn uniformly over all of a task's rows
  (exactly the uniform sampler's draws), a window is cut at its episode's end,
  and the missing steps are padding on that side, as decision transformers pad
  (left) or a recurrent model reading from the first step does (right).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch

from rlkit.data.errors import DatasetError

PADDINGS = (None, "left", "right")


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1, or a one-line TypeError/ValueError naming ``what``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer >= 1, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer >= 1, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {n}")
    return int(n)


def check_padding(padding: Any, allowed: tuple = PADDINGS) -> None:
    if padding not in allowed:
        raise ValueError(f"padding must be one of {', '.join(map(repr, allowed))}, got {padding!r}")


def check_gamma(gamma: Any) -> float | None:
    if gamma is None:
        return None
    g = float(gamma)
    if not 0.0 < g <= 1.0:
        raise ValueError(f"gamma must be in (0, 1] or None, got {gamma!r}")
    return g


def returns_to_go(rewards: np.ndarray, starts: np.ndarray, lengths: np.ndarray, gamma: float | None = None
                  ) -> np.ndarray:
    """[N] float64: ``G_t = r_t + gamma G_{t+1}`` within each episode, ``G = 0`` past its last step.

    ``gamma`` None is the undiscounted sum (decision transformers' return-to-go).
    Vectorised over episodes: one pass per time step from the longest episode's
    end back to 0, each updating every episode that long at once (episodes are
    sorted by length, so those are a prefix) — the recursion in the same
    float64 arithmetic, in the same order, as the written-out loop per episode,
    in (longest episode) NumPy steps rather than N Python ones.
    """
    rewards = np.asarray(rewards, np.float64)
    order = np.argsort(-lengths, kind="stable")
    s, n = starts[order], lengths[order]
    out = np.zeros(len(rewards), np.float64)
    acc = np.zeros(len(s), np.float64)
    # active[k] = how many episodes have more than k steps (a prefix of the sorted order)
    active = np.searchsorted(-n, -np.arange(int(n.max()) if len(n) else 0), side="left")
    for k in range(len(active) - 1, -1, -1):
        m = int(active[k])
        rows = s[:m] + k
        head = acc[:m]
        if gamma is None:
            np.add(rewards[rows], head, out=head)
        else:
            np.add(rewards[rows], gamma * head, out=head)
        out[rows] = head
    return out


class EpisodeTable:
    """The episodes of a buffer's rows, grouped by task slot: NumPy arrays and their copies on the device.

    Built once per buffer (on the first sequence request) from the data's
    ``episode_offsets``; checks that episodes tile the rows and that none spans
    two tasks. ``tables(host)`` gives (start, stop, count, first) as NumPy
    arrays (``host``, the CPU buffer's path) or device tensors; ``windows(L,
    host)`` the per-L counts of full-window starts; both, and the
    returns-to-go per gamma, are cached here.
    """

    def __init__(self, episode_offsets: np.ndarray, task_offsets: np.ndarray, task_ids: list[int],
                 device: torch.device):
        off = np.asarray(episode_offsets, np.int64)
        n_rows = int(task_offsets[-1])
        if len(off) < 2 or off[0] != 0 or off[-1] != n_rows or np.any(np.diff(off) <= 0):
            raise DatasetError(f"the episode table does not tile the buffer's {n_rows} rows "
                               f"(offsets from {off[:1].tolist()} to {off[-1:].tolist()}): rebuild the OfflineData")
        start, length = off[:-1], np.diff(off)
        slot = np.searchsorted(task_offsets, start, side="right") - 1
        stop_slot = np.searchsorted(task_offsets, off[1:] - 1, side="right") - 1
        if np.any(slot != stop_slot):
            bad = int(np.flatnonzero(slot != stop_slot)[0])
            raise DatasetError(f"episode {bad} (rows {start[bad]}..{off[bad + 1] - 1}) spans tasks "
                               f"{task_ids[slot[bad]]} and {task_ids[stop_slot[bad]]}")
        n_slots = len(task_ids)
        self.device = device
        self.start_np, self.length_np = start, length
        count = np.bincount(slot, minlength=n_slots).astype(np.int64)
        first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        self.count_np, self.first_np = count, first
        self.longest_np = np.zeros(n_slots, np.int64)
        np.maximum.at(self.longest_np, slot, length)
        self.max_length = int(length.max())
        self.min_longest = int(self.longest_np.min())
        self._host = (start, off[1:].copy(), count, first)
        self._dev = tuple(self._to_device(a) for a in self._host)
        self._windows: dict[int, tuple] = {}
        self._rtg: dict[float | None, torch.Tensor] = {}

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.int64)).to(self.device)

    def tables(self, host: bool) -> tuple:
        """(start [E], stop [E], count [S], first [S]): episodes' first and past-the-end rows, episodes per slot."""
        return self._host if host else self._dev

    def windows(self, length: int, host: bool) -> tuple:
        """Full windows of ``length``: (valid [E], inclusive cumsum [E], base [S], total [S]) and total as NumPy."""
        hit = self._windows.get(length)
        if hit is None:
            valid = np.maximum(self.length_np - length + 1, 0)  # full windows in each episode
            cum = np.cumsum(valid)
            base = (cum - valid)[self.first_np]  # full windows in the slots before (every slot has episodes)
            total = np.add.reduceat(valid, self.first_np)
            arrays = (valid, cum, base, total)
            hit = (arrays, tuple(self._to_device(a) for a in arrays))
            self._windows[length] = hit
        return (hit[0] if host else hit[1]), hit[0][3]

    def returns_to_go(self, rewards: Any, gamma: float | None, dtype: torch.dtype) -> torch.Tensor:
        hit = self._rtg.get(gamma)
        if hit is None:
            r = rewards() if callable(rewards) else rewards
            hit = torch.from_numpy(returns_to_go(r, self.start_np, self.length_np, gamma)).to(self.device, dtype)
            self._rtg[gamma] = hit
        return hit


# The index arithmetic below runs on NumPy arrays (the CPU buffer: single-threaded, no op dispatch; torch's
# CPU searchsorted splits into OpenMP threads and stalls for milliseconds when another process holds a core)
# or on device tensors, with the same integer results either way.


def searchsorted_right(sorted_seq: Any, values: Any) -> Any:
    if isinstance(values, np.ndarray):
        return np.searchsorted(sorted_seq, values, side="right")
    return torch.searchsorted(sorted_seq, values, right=True)


def floor_draw(u: Any, n: Any) -> Any:
    """``floor(u * n)`` for ``u`` in [0, 1) float64, kept below n (as :meth:`MultiTaskBuffer.sample_indices`)."""
    if isinstance(u, np.ndarray):
        return np.minimum((u * n).astype(np.int64), n - 1)
    return torch.minimum((u * n.double()).long(), n - 1)


def window_index(starts: Any, ep_start: Any, ep_stop: Any, length: int, padding: str) -> tuple:
    """(row index [T, K, L], mask [T, K, L] bool, timesteps [T, K, L] int64) of windows from ``starts`` [T, K].

    A window holds the rows ``start ..`` up to ``length`` of them, cut at its
    episode's end ``ep_stop`` (exclusive); ``padding`` "right" puts them first
    and the padding after, "left" the other way round. Padded places index a
    row of the same window (so the gather stays in range) and are masked.
    NumPy arrays or torch tensors in, the same kind out.
    """
    host = isinstance(starts, np.ndarray)
    xp = np if host else torch
    j = np.arange(length) if host else torch.arange(length, device=starts.device)
    s, stop = starts[..., None], ep_stop[..., None]
    if padding == "left":
        shift = (s + length - stop).clip(min=0)  # padded places at the front
        index = xp.maximum(s + j - shift, s)
        mask = j >= shift
    else:
        index = s + j
        mask = index < stop
        index = xp.minimum(index, stop - 1)
    timesteps = (index - ep_start[..., None]) * mask
    return index, mask, timesteps
