"""All selected transitions of many tasks on the training device; one gather per meta batch.

Rows of every task live back to back in one packed tensor
``[N, obs + act + 1 + obs + 1]`` of the compute dtype (float32 unless the run
computes in float64, rlkit.core.precision; the dataset's float32 values are
cast exactly when the buffer is built) whose columns are, in order, obs, actions,
reward, next_obs, terminal. A meta batch is one row gather with indices
``offset[task] + floor(u * size[task])``, ``u ~ U[0, 1)`` — no Python loop over
tasks or transitions. The returned tensors are views into that one gathered
block; the column order makes the reference's context tensor (obs, action,
reward[, next_obs]) a view too (:meth:`MultiTaskBuffer.sample_context`).

Sequence models get trajectory segments the same way: the rows are in episode
order, so K windows of L steps per task are one gather of ``start + arange(L)``
rows, cut at each episode's end and padded with a mask
(:meth:`MultiTaskBuffer.sample_segments`, :meth:`~MultiTaskBuffer.sample_episodes`;
the draws and the episode table are in :mod:`rlkit.data.sequences`).

On CPU the gather is ``numpy.take`` rather than ``torch.index_select``: a
random gather from a large buffer is bound by memory latency, so torch's
OpenMP split gains little on 2 cores (about 1.5x, idle machine) and, when
another process holds a core, its barrier waits cost ~8 ms per call (measured
20x slower). NumPy's gather is single-threaded and releases the GIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlkit.core.precision import compute_dtype
from rlkit.data.errors import DatasetError
from rlkit.data.loader import OfflineData
from rlkit.data.sequences import (EpisodeTable, check_gamma, check_padding, floor_draw, positive_int,
                                  searchsorted_right, window_index)

TERMINAL_MODES = ("episode_end", "terminal")
FLAG_TERMINAL, FLAG_TIMEOUT, FLAG_EPISODE_END = 1, 2, 4


class MultiTaskBuffer:
    """Offline transitions of several tasks as contiguous tensors on one device.

    Args:
        data: the loaded selection (:func:`rlkit.data.load_offline_data`).
        device: where the tensors live ("cpu", "cuda", a ``torch.device``).
        terminal_mode: what the ``terminals`` key (the ``done`` of the Q
            target) holds. "episode_end" (default, the reference): the last
            transition of every episode, as the reference's loader marks it —
            time-limit ends included. "terminal": true terminals only (falls),
            time-limit ends bootstrap; needs data that records them (native).
        dtype: the samples' floating type (default: the compute dtype,
            :func:`rlkit.core.precision.compute_dtype`), so batches match the
            networks they feed without a cast per step.

    Sampling draws from torch's RNG: the ``generator`` argument (on the
    buffer's device) or the global one (seeded by ``torch.manual_seed``).

    The buffer copies the data into its own packed tensor; drop the
    ``OfflineData`` afterwards to free its memory.
    """

    def __init__(self, data: OfflineData, device: str | torch.device = "cpu", terminal_mode: str = "episode_end",
                 dtype: torch.dtype | None = None):
        if terminal_mode not in TERMINAL_MODES:
            raise ValueError(f"terminal_mode must be one of {TERMINAL_MODES}, got {terminal_mode!r}")
        if terminal_mode == "terminal" and not data.terminals_known:
            raise DatasetError(
                f"{data.data_dir} is in the reference layout, which records no terminals: "
                "use terminal_mode='episode_end' or convert to the native format with the true terminals"
            )
        if len(data) == 0:
            raise DatasetError("no transitions to put in the buffer")
        self.device = torch.device(device)
        self.terminal_mode = terminal_mode
        self.obs_dim, self.act_dim = data.obs_dim, data.act_dim
        self.task_ids = [int(t) for t in data.task_ids]
        od, ad = self.obs_dim, self.act_dim
        self._split = [od, ad, 1, od, 1]
        self.row_dim = sum(self._split)

        n = len(data)
        term = data.episode_ends if terminal_mode == "episode_end" else data.terminals
        # torch's CPU allocator aligns to 64 bytes (NumPy's to 16): rows of 48
        # floats then cover 3 cache lines instead of 4 (~14% faster gathers).
        self.dtype = compute_dtype() if dtype is None else dtype
        packed = torch.empty((n, self.row_dim), dtype=self.dtype).numpy()
        c = 0
        for arr, w in ((data.obs, od), (data.actions, ad), (data.rewards.reshape(-1, 1), 1), (data.next_obs, od),
                       (term.reshape(-1, 1), 1)):
            packed[:, c:c + w] = arr
            c += w
        flags = (data.terminals * FLAG_TERMINAL + data.timeouts * FLAG_TIMEOUT
                 + data.episode_ends * FLAG_EPISODE_END).astype(np.uint8)
        self._cpu = self.device.type == "cpu"
        self._packed = torch.from_numpy(packed).to(self.device)
        self._packed_np = packed if self._cpu else None
        self._flags = torch.from_numpy(flags).to(self.device)

        sizes = np.diff(data.task_offsets).astype(np.int64)
        if np.any(sizes == 0):
            raise DatasetError(f"tasks {[t for t, s in zip(self.task_ids, sizes) if s == 0]} have no transitions")
        self._sizes_np = sizes
        self._offsets_np = data.task_offsets[:-1].astype(np.int64)
        n_slots = len(self.task_ids)
        # Global task id -> slot; unknown ids map to n_slots, which is out of range
        # for the per-slot tables and so fails loudly instead of aliasing a task.
        lut = np.full(max(self.task_ids) + 1, n_slots, np.int64)
        lut[self.task_ids] = np.arange(n_slots)
        self._lut_np = lut
        self._lut = torch.from_numpy(lut).to(self.device)
        self._sizes = torch.from_numpy(sizes).to(self.device)
        self._sizes_f = self._sizes.double()
        self._offsets = torch.from_numpy(self._offsets_np).to(self.device)

        self._episodes_np = np.bincount(lut[data.episode_task], minlength=n_slots).astype(np.int64)
        # the episode table of the sequence samplers, built on first use (rlkit.data.sequences)
        self._episode_offsets_np = np.array(data.episode_offsets, np.int64)
        self._episode_table: EpisodeTable | None = None
        self.obs_abs_max = data.obs_abs_max

    # ---- info -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"MultiTaskBuffer({self.num_tasks} tasks, {len(self)} transitions, obs {self.obs_dim}, "
                f"act {self.act_dim}, {self.device}, terminal_mode={self.terminal_mode!r})")

    def __len__(self) -> int:
        return int(self._packed.shape[0])

    @property
    def num_tasks(self) -> int:
        return len(self.task_ids)

    def num_transitions(self, task_id: int) -> int:
        return int(self._sizes_np[self._slots_np([task_id])[0]])

    def num_episodes(self, task_id: int) -> int:
        return int(self._episodes_np[self._slots_np([task_id])[0]])

    def nbytes(self) -> int:
        return self._packed.numel() * self._packed.element_size() + self._flags.numel()

    # ---- task ids -> slots ------------------------------------------------------------
    def _slots_np(self, task_ids: Any) -> np.ndarray:
        ids = np.asarray(task_ids).reshape(-1)
        if ids.size == 0:
            raise ValueError("task_ids is empty")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"task ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= len(self._lut_np))
        slots = self._lut_np[np.where(bad, 0, ids)]
        bad |= slots == len(self.task_ids)
        if bad.any():
            raise DatasetError(
                f"tasks {sorted(set(ids[bad].tolist()))} are not in this buffer (it holds {self.task_ids})"
            )
        return slots

    def _slots(self, task_ids: Any) -> torch.Tensor:
        if isinstance(task_ids, torch.Tensor):
            # No host sync on the hot path: unknown ids index past the per-slot
            # tables (IndexError on CPU, device assert on CUDA).
            return self._lut[task_ids.to(self.device, torch.int64).reshape(-1)]
        return torch.from_numpy(self._slots_np(task_ids)).to(self.device, non_blocking=True)

    # ---- uniform transitions ----------------------------------------------------------
    def sample_indices(self, task_ids: Any, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """[T, B] global row indices, uniform with replacement within each task (as the reference)."""
        b = int(batch_size)
        if self._cpu:
            # Same draws as the device path (torch's RNG), arithmetic in NumPy: fewer op dispatches.
            slots = self._slots_np(task_ids.numpy() if isinstance(task_ids, torch.Tensor) else task_ids)
            u = torch.rand((len(slots), b), generator=generator, dtype=torch.float64).numpy()
            size = self._sizes_np[slots][:, None]
            local = np.multiply(u, size, out=u).astype(np.int64)
            # floor(u * size) < size except when rounding lands on size exactly
            # (u within 2**-53 of 1); the minimum makes that case harmless.
            np.minimum(local, size - 1, out=local)
            local += self._offsets_np[slots][:, None]
            return torch.from_numpy(local)
        slots = self._slots(task_ids)
        u = torch.rand((slots.shape[0], b), generator=generator, dtype=torch.float64, device=self.device)
        size = self._sizes[slots].unsqueeze(1)
        local = torch.minimum(u.mul_(self._sizes_f[slots].unsqueeze(1)).long(), size - 1)
        return local.add_(self._offsets[slots].unsqueeze(1))

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        flat = index.reshape(-1)
        if self._cpu:
            return torch.from_numpy(np.take(self._packed_np, flat.numpy(), axis=0))
        return self._packed.index_select(0, flat)

    def gather(self, index: torch.Tensor, with_flags: bool = False) -> dict[str, torch.Tensor]:
        """Rows ``index`` ([...]) as a dict of [..., dim] tensors (views of one gathered block)."""
        shape = tuple(index.shape)
        rows = self._rows(index).view(*shape, self.row_dim)
        obs, act, rew, nxt, term = rows.split(self._split, dim=-1)
        out = {"obs": obs, "actions": act, "rewards": rew, "next_obs": nxt, "terminals": term}
        if with_flags:
            f = self._flags.index_select(0, index.reshape(-1).to(self.device)).view(shape)
            out["true_terminals"] = (f & FLAG_TERMINAL).bool().unsqueeze(-1)
            out["timeouts"] = (f & FLAG_TIMEOUT).bool().unsqueeze(-1)
            out["episode_ends"] = (f & FLAG_EPISODE_END).bool().unsqueeze(-1)
        return out

    def sample(
        self, task_ids: Any, batch_size: int, generator: torch.Generator | None = None, with_flags: bool = False
    ) -> dict[str, torch.Tensor]:
        """A meta batch: for each task, ``batch_size`` transitions uniformly at random.

        Returns ``obs`` [T, B, obs_dim], ``actions`` [T, B, act_dim], ``rewards``
        [T, B, 1], ``next_obs`` [T, B, obs_dim], ``terminals`` [T, B, 1] (float,
        per ``terminal_mode``); with ``with_flags`` also bool ``true_terminals``,
        ``timeouts`` and ``episode_ends`` [T, B, 1]. Task ids may repeat
        (``mb_replace``); each row of the batch is drawn from its own task only.
        The tensors are views of one block; do not write into them.
        """
        return self.gather(self.sample_indices(task_ids, batch_size, generator), with_flags)

    def sample_context(
        self, task_ids: Any, batch_size: int, use_next_obs: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The reference's context batch: [T, B, obs + act + 1 (+ obs)] = (s, a, r[, s']), one view."""
        index = self.sample_indices(task_ids, batch_size, generator)
        width = 2 * self.obs_dim + self.act_dim + 1 if use_next_obs else self.obs_dim + self.act_dim + 1
        return self._rows(index).view(*index.shape, self.row_dim)[..., :width]

    # ---- trajectory segments (rlkit.data.sequences) -------------------------------------
    def _table(self) -> EpisodeTable:
        if self._episode_table is None:
            self._episode_table = EpisodeTable(self._episode_offsets_np, np.append(self._offsets_np, len(self)),
                                               self.task_ids, self.device)
        return self._episode_table

    @property
    def max_episode_length(self) -> int:
        """The longest episode's steps: the width of :meth:`sample_episodes`' tensors."""
        return self._table().max_length

    def returns_to_go(self, gamma: float | None = None) -> torch.Tensor:
        """[N] returns-to-go of every row, in the buffer's dtype, on its device; computed once per gamma.

        ``G_t = r_t + gamma * G_{t+1}`` to the episode's last row: with ``gamma``
        None the undiscounted sum of the rewards from this step to the episode's
        end, the step's own reward included (a decision transformer's
        return-to-go). Summed in float64 from the stored rewards, then cast.
        An episode cut by ``max_transitions_per_task`` sums its kept tail.
        """
        gamma = check_gamma(gamma)
        reward_col = self.obs_dim + self.act_dim

        def rewards() -> np.ndarray:
            if self._packed_np is not None:
                return self._packed_np[:, reward_col]
            return self._packed[:, reward_col].cpu().numpy()

        return self._table().returns_to_go(rewards, gamma, self.dtype)

    def _uniform(self, task_ids: Any, k: int, generator: torch.Generator | None) -> tuple[Any, Any]:
        """(slots, u [T, k] float64 in [0, 1)): NumPy arrays on a CPU buffer, device tensors otherwise."""
        if self._cpu:
            slots = self._slots_np(task_ids.numpy() if isinstance(task_ids, torch.Tensor) else task_ids)
            return slots, torch.rand((len(slots), k), generator=generator, dtype=torch.float64).numpy()
        slots = self._slots(task_ids)
        return slots, torch.rand((slots.shape[0], k), generator=generator, dtype=torch.float64, device=self.device)

    def _tensor(self, x: Any) -> torch.Tensor:
        return torch.from_numpy(x) if isinstance(x, np.ndarray) else x

    def segment_starts(self, task_ids: Any, num: int, length: int, padding: str | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """[T, K=num] global start rows of windows of ``length`` steps, per task (see :meth:`sample_segments`)."""
        k, length = positive_int(num, "num"), positive_int(length, "length")
        check_padding(padding)
        if padding is not None:  # every row may start a window: the uniform sampler's own draws
            return self.sample_indices(task_ids, k, generator)
        table = self._table()
        (valid, cum, base, total), total_np = table.windows(length, self._cpu)
        if length > table.min_longest:  # some task holds no full window: are any of those asked for?
            ids = task_ids.cpu().numpy() if isinstance(task_ids, torch.Tensor) else task_ids
            s_np = self._slots_np(ids)
            bad = sorted({self.task_ids[s] for s in s_np[total_np[s_np] == 0].tolist()})
            if bad:
                longest = int(table.longest_np[[self.task_ids.index(t) for t in bad]].max())
                raise DatasetError(
                    f"tasks {bad} have no episode of at least {length} steps (longest: {longest}): "
                    f"use a shorter length or padding='left' or 'right'")
        slots, u = self._uniform(task_ids, k, generator)
        pos = floor_draw(u, total[slots][:, None]) + base[slots][:, None]  # the pos-th full window of the buffer
        ep = searchsorted_right(cum, pos)  # the episode holding it
        start = table.tables(self._cpu)[0]
        return self._tensor(start[ep] + pos - (cum[ep] - valid[ep]))

    def episode_starts(self, task_ids: Any, num: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """[T, num] first rows of episodes drawn uniformly (with replacement) from each task's episodes."""
        k = positive_int(num, "num")
        start, _, count, first = self._table().tables(self._cpu)
        slots, u = self._uniform(task_ids, k, generator)
        return self._tensor(start[floor_draw(u, count[slots][:, None]) + first[slots][:, None]])

    def episode_tail_starts(self, task_ids: Any, num: int, length: int, skip: int = 0,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """[T, num] first rows of the windows of ``length`` steps that end ``skip`` steps before the end of
        episodes drawn uniformly (with replacement) from each task's episodes (as :meth:`episode_starts`);
        an episode shorter than ``length + skip`` steps gives its first row (:meth:`segments_at` then cuts
        the window at the episode's end). A prompt's place in its episode (rlkit.torch.prompt_dt)."""
        if int(skip) < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        length = positive_int(length, "length")
        first = self.episode_starts(task_ids, num, generator)
        start, stop, _, _ = self._table().tables(self._cpu)
        f = first.numpy() if self._cpu else first
        ep = searchsorted_right(start, f) - 1
        tail = stop[ep] - length - int(skip)
        return self._tensor(np.maximum(tail, f) if self._cpu else torch.maximum(tail, f))

    def episode_returns(self) -> torch.Tensor:
        """[E] the undiscounted return of every episode (of its kept rows), in the buffer's dtype."""
        start = self._table().tables(self._cpu)[0]
        return self.returns_to_go()[self._tensor(start)]

    def obs_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) [obs_dim] of the observations of every row, computed in float64, in the buffer's dtype."""
        obs = self._packed[:, :self.obs_dim].double()
        return obs.mean(0).to(self.dtype), obs.std(0, unbiased=False).to(self.dtype)

    def segments_at(self, starts: torch.Tensor, length: int, padding: str = "right", gamma: float | None = None,
                    with_flags: bool = False) -> dict[str, torch.Tensor]:
        """The windows of ``length`` steps from the rows ``starts`` [T, K], cut at their episode's end, padded.

        Returns the keys of :meth:`sample` as [T, K, L, dim] tensors (views of one
        gathered block), plus ``returns_to_go`` [T, K, L, 1] (:meth:`returns_to_go`
        with ``gamma``), ``timesteps`` [T, K, L] int64 (the step within the
        episode) and ``mask`` [T, K, L] bool (True on real steps). Padded steps
        (``padding`` "right": after the real ones; "left": before) hold zeros in
        every field and False flags. All windows of the batch come from one row
        gather (and one gather of the precomputed returns-to-go with the same
        index, one more of the flags with ``with_flags``); no loop over tasks,
        windows or steps.
        """
        length = positive_int(length, "length")
        check_padding(padding, ("left", "right"))
        gamma = check_gamma(gamma)
        if not isinstance(starts, torch.Tensor) or starts.dim() != 2:
            raise ValueError(f"starts must be [T, K] row indices, got shape {tuple(np.shape(starts))}")
        rtg_all = self.returns_to_go(gamma)
        start, stop, _, _ = self._table().tables(self._cpu)
        if self._cpu:
            s = starts.cpu().numpy().astype(np.int64, copy=False)
        else:
            s = starts.to(self.device, torch.int64)
        ep = searchsorted_right(start, s) - 1
        index, mask, timesteps = window_index(s, start[ep], stop[ep], length, padding)
        shape = tuple(index.shape)
        flat = index.reshape(-1)
        pad = ~mask
        if self._cpu:
            rows = np.take(self._packed_np, flat, axis=0).reshape(*shape, self.row_dim)
            rows[pad] = 0
            rtg = np.take(rtg_all.numpy(), flat).reshape(*shape, 1)
            rtg[pad] = 0
            flags = np.take(self._flags.numpy(), flat).reshape(shape) if with_flags else None
            if flags is not None:
                flags[pad] = 0
            rows, rtg, flags, mask, timesteps = (None if x is None else torch.from_numpy(x)
                                                 for x in (rows, rtg, flags, mask, timesteps))
        else:
            rows = self._packed.index_select(0, flat).view(*shape, self.row_dim).masked_fill_(pad[..., None], 0)
            rtg = rtg_all.index_select(0, flat).view(*shape, 1).masked_fill_(pad[..., None], 0)
            flags = self._flags.index_select(0, flat).view(shape).masked_fill_(pad, 0) if with_flags else None
        obs, act, rew, nxt, term = rows.split(self._split, dim=-1)
        out = {"obs": obs, "actions": act, "rewards": rew, "next_obs": nxt, "terminals": term,
               "returns_to_go": rtg, "timesteps": timesteps, "mask": mask}
        if flags is not None:
            out["true_terminals"] = (flags & FLAG_TERMINAL).bool().unsqueeze(-1)
            out["timeouts"] = (flags & FLAG_TIMEOUT).bool().unsqueeze(-1)
            out["episode_ends"] = (flags & FLAG_EPISODE_END).bool().unsqueeze(-1)
        return out

    def sample_segments(self, task_ids: Any, num: int, length: int, padding: str | None = None,
                        gamma: float | None = None, generator: torch.Generator | None = None,
                        with_flags: bool = False) -> dict[str, torch.Tensor]:
        """A sequence meta batch: for each task, ``num`` windows of ``length`` consecutive steps of one episode.

        ``padding`` None: windows start only where a whole window fits, uniformly
        over every such (episode, start) of the task, so ``mask`` is all True;
        a task without an episode of ``length`` steps is an error. "left" or
        "right": windows start at any row (the draws of :meth:`sample_indices`),
        are cut at their episode's end and padded on that side (masked).
        Windows never cross an episode's end or a task's. Keys as
        :meth:`segments_at`; :meth:`segment_starts` draws, :meth:`segments_at` gathers.
        """
        starts = self.segment_starts(task_ids, num, length, padding, generator)
        return self.segments_at(starts, length, padding or "right", gamma, with_flags)

    def sample_episodes(self, task_ids: Any, num: int = 1, padding: str | None = "right", gamma: float | None = None,
                        generator: torch.Generator | None = None, with_flags: bool = False
                        ) -> dict[str, torch.Tensor]:
        """``num`` whole episodes per task (uniform over the task's episodes, not weighted by length).

        Tensors [T, num, W, ...] with ``W`` = :attr:`max_episode_length`; each
        episode from its first step, padded on ``padding``'s side, with
        ``mask``/``timesteps``/``returns_to_go`` as :meth:`segments_at`.
        """
        if padding is None:
            raise ValueError("whole episodes differ in length: padding must be 'left' or 'right', got None")
        check_padding(padding, ("left", "right"))
        starts = self.episode_starts(task_ids, num, generator)
        return self.segments_at(starts, self.max_episode_length, padding, gamma, with_flags)
