"""Replay memory for E tasks stepping in lockstep, stored as [E, capacity, dim] tensors.

All members receive one transition per environment step, so they share one
write index; writing is a single indexed copy and sampling one gather, both on
the training device (no python loop over tasks, no host round trip per batch).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class EnsembleReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, terminated) per member.

    ``terminated`` is 1 only for true terminations; store time-limit ends as 0
    so that the SAC target keeps bootstrapping through them.
    """

    def __init__(self, n_members: int, capacity: int, obs_dim: int, act_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        if n_members < 1 or capacity < 1:
            raise ValueError(f"n_members and capacity must be >= 1, got {n_members}, {capacity}")
        self.n_members, self.capacity = int(n_members), int(capacity)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.device, self.dtype = torch.device(device), dtype
        dims = {"obs": obs_dim, "action": act_dim, "reward": 1, "next_obs": obs_dim, "terminated": 1}
        self.data = {k: torch.zeros(n_members, capacity, d, device=self.device, dtype=dtype) for k, d in dims.items()}
        self._members = torch.arange(n_members, device=self.device)
        self.idx = 0       # next write position
        self.full = False  # wrapped at least once

    def __len__(self) -> int:
        return self.capacity if self.full else self.idx

    def _as_rows(self, x: Any, name: str) -> torch.Tensor:
        t = torch.as_tensor(x, device=self.device, dtype=self.dtype).reshape(self.n_members, -1)
        if t.shape[1] != self.data[name].shape[2]:
            raise ValueError(f"{name}: expected {self.data[name].shape[2]} values per member, got {t.shape[1]}")
        return t

    @torch.no_grad()
    def add(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any) -> None:
        """Store one transition for every member: obs/next_obs [E, obs_dim], action [E, act_dim],
        reward and terminated [E] or [E, 1] (tensors or arrays)."""
        values = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": terminated}
        if self.device.type != "cpu" and all(isinstance(v, np.ndarray) for v in values.values()):
            # host arrays for a device buffer: one copy to the device instead of five blocking ones
            rows = [np.asarray(v).reshape(self.n_members, -1) for v in values.values()]
            widths = [r.shape[1] for r in rows]
            packed = torch.as_tensor(np.concatenate(rows, axis=1), dtype=self.dtype).to(self.device)
            values = dict(zip(values, packed.split(widths, dim=1)))
        for name, v in values.items():
            self.data[name][:, self.idx] = self._as_rows(v, name)
        self.idx = (self.idx + 1) % self.capacity
        self.full = self.full or self.idx == 0

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions per member, uniform with replacement over what that member
        has stored (as the reference); returns a dict of [E, B, dim] tensors. ``generator``, if
        given, must live on the buffer's device."""
        n = len(self)
        if n == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, n, (self.n_members, batch_size), generator=generator, device=self.device)
        rows = self._members[:, None]
        return {k: v[rows, idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """Stored transitions (only the filled part) and the write position, for resuming."""
        n = len(self)
        return {"capacity": self.capacity, "idx": self.idx, "full": self.full,
                "data": {k: v[:, :n].clone() for k, v in self.data.items()}}

    def rows(self, start: int, end: int) -> dict[str, torch.Tensor]:
        """Copies of the stored rows ``start:end`` of every member (for incremental saves)."""
        return {k: v[:, start:end].clone() for k, v in self.data.items()}

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"checkpoint capacity {state['capacity']} != buffer capacity {self.capacity}")
        for k in FIELDS:
            src = state["data"][k]
            if src.shape[0] != self.n_members or src.shape[2] != self.data[k].shape[2]:
                raise ValueError(f"{k}: checkpoint shape {tuple(src.shape)} does not fit {tuple(self.data[k].shape)}")
            self.data[k].zero_()
            self.data[k][:, : src.shape[1]] = src.to(device=self.device, dtype=self.dtype)
        self.idx, self.full = int(state["idx"]), bool(state["full"])
