""""Infer z from the context, then act": the context-encoder methods as an evaluation agent.

CSRO, FOCAL, offline PEARL, CORRO and UNICORN-SS are one adapter of the
stateful contract (:class:`rlkit.core.eval_agent.EvalAgent`):
:class:`ZContextAdapter` keeps the padded context and z, and re-infers z
exactly where the CSRO paper's protocols do (the protocol's ``reinfer``), so
their numbers are what they were when the protocols held z.
:func:`as_eval_agent` wraps such a z-context model (``infer_z`` +
``act(obs, z, deterministic)``) and hands an :class:`EvalAgent` through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rlkit.core.precision import dtype_of
from rlkit.core.eval_agent import (ACT_PAIR, AFTER_EVALUATION, BEFORE_EVALUATION, CAPABILITIES, PER_TRANSITION,
                                  POSTERIOR_SPREAD, EvalAgent, Rollout, Transitions, ZContextModel)

__all__ = ["ACT_PAIR", "CAPABILITIES", "PER_TRANSITION", "POSTERIOR_SPREAD", "ContextStore", "EvalAgent", "Rollout",
           "Transitions", "ZContextAdapter", "ZContextModel", "as_eval_agent"]


@dataclass
class ContextStore:
    """Padded per-env context [M, C, D] on the agent's device, grown on demand."""

    data: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def empty(cls, m: int, dim: int, capacity: int, device, dtype: torch.dtype) -> "ContextStore":
        return cls(torch.zeros(m, max(capacity, 1), dim, device=device, dtype=dtype),
                   torch.zeros(m, dtype=torch.long, device=device))

    def _ensure(self, needed: int) -> None:
        cap = self.data.shape[1]
        if needed > cap:
            grow = torch.zeros(self.data.shape[0], max(needed, 2 * cap) - cap, self.data.shape[2],
                               device=self.data.device, dtype=self.data.dtype)
            self.data = torch.cat([self.data, grow], dim=1)

    def append(self, envs: torch.Tensor, rows: torch.Tensor) -> None:
        """Append ``rows`` [k, n, D] to the contexts of sub-envs ``envs`` [k]."""
        if envs.numel() == 0:
            return
        n = rows.shape[1]
        self._ensure(int(self.lengths[envs].max()) + n)
        pos = self.lengths[envs, None] + torch.arange(n, device=rows.device)[None]
        self.data[envs[:, None], pos] = rows
        self.lengths[envs] += n


class ZContextAdapter(EvalAgent):
    """"Infer z from the context, then act": a z-context model as an :class:`EvalAgent`.

    z starts at the prior (zeros) with an empty context; the context is every
    transition that joins it; z is re-inferred from the whole context where the
    protocol's ``reinfer`` says (before every evaluation episode, or after one
    once ``num_exp_traj_eval * max_path_length`` evaluation transitions were
    made). With a per-transition encoder (:data:`PER_TRANSITION`) each row is
    encoded once, when it joins, and re-inference only pools the cached encodings.
    """

    def __init__(self, model: ZContextModel):
        self.model = model
        self.capabilities = frozenset(getattr(model, "capabilities", frozenset()))
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise TypeError(f"{type(model).__name__} declares unknown capabilities {sorted(unknown)}; "
                            f"known: {sorted(CAPABILITIES)}")
        self.use_next_obs_in_context = bool(model.use_next_obs_in_context)
        self.z_dim = int(model.latent_dim)
        self.dtype = dtype_of(model)
        self.cached = PER_TRANSITION in self.capabilities
        self.z = None

    def reset(self, tasks, rollout):
        m, settings = len(tasks), rollout.settings
        self.device = rollout.device
        self.reinfer_before = rollout.protocol.reinfer == BEFORE_EVALUATION
        self.reinfer_after = rollout.protocol.reinfer == AFTER_EVALUATION
        self.threshold = settings.num_exp_traj_eval * settings.max_path_length
        self.store = ContextStore.empty(m, rollout.context_dim, settings.num_steps_per_eval + 2 * settings.max_path_length,
                                        rollout.device, self.dtype)
        self.encoded = None
        self.z = torch.zeros(m, self.z_dim, device=rollout.device, dtype=self.dtype)  # the prior mean

    # ---- the belief ----------------------------------------------------------------------------
    def observe(self, transitions):
        joined = transitions.joining()
        if joined is None:
            return
        idx, rows = joined
        self.store.append(idx, rows)
        if self.cached:
            enc = self.model.encode_context(rows)
            if self.encoded is None:
                self.encoded = ContextStore.empty(len(self.z), enc.shape[-1], self.store.data.shape[1], self.device,
                                                  enc.dtype)
            self.encoded.append(idx, enc)

    def begin_evaluation(self, mask):
        if self.reinfer_before:
            self._reinfer(mask)

    def end_episodes(self, ended, evaluation, eval_steps):
        if self.reinfer_after:
            self._reinfer(ended & evaluation & (eval_steps >= self.threshold))

    def _reinfer(self, mask: np.ndarray) -> None:
        if mask.any():
            idx = torch.as_tensor(np.flatnonzero(mask), device=self.device)
            if self.cached:
                self.z[idx] = self.model.z_from_encoded(self.encoded.data[idx], self.encoded.lengths[idx]).to(self.z.dtype)
            else:
                n = int(self.store.lengths[idx].max())
                self.z[idx] = self.model.infer_z(self.store.data[idx, :n], self.store.lengths[idx]).to(self.z.dtype)

    def belief(self):
        z_var = None
        if POSTERIOR_SPREAD in self.capabilities and self.cached and self.encoded is not None:
            z_var = self.model.z_var_from_encoded(self.encoded.data, self.encoded.lengths).cpu().numpy()
        return self.z.cpu().numpy(), z_var

    # ---- acting --------------------------------------------------------------------------------
    def act(self, obs, deterministic):
        return self.model.act(obs, self.z, deterministic=deterministic)

    def act_pair(self, obs):
        if ACT_PAIR in self.capabilities:
            return self.model.act_pair(obs, self.z)
        sampled = self.model.act(obs, self.z, deterministic=False)
        return self.model.act(obs, self.z, deterministic=True), sampled


def as_eval_agent(agent) -> EvalAgent:
    """``agent`` itself if it is an :class:`EvalAgent`, else a z-context model wrapped in :class:`ZContextAdapter`."""
    return agent if isinstance(agent, EvalAgent) else ZContextAdapter(agent)
