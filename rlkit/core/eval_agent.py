"""What a trainer's evaluation agent is: the stateful contract the protocols roll out.

A protocol (rlkit.evaluation.protocols) decides what joins an agent's context
and when actions are random; *when the agent updates its belief* is the
agent's own. So the protocols talk to an :class:`EvalAgent` through events --
:meth:`~EvalAgent.reset` at the start of a rollout, :meth:`~EvalAgent.observe`
for every transition (with whether it joins the context),
:meth:`~EvalAgent.begin_evaluation` / :meth:`~EvalAgent.end_episodes` at
episode boundaries -- and ask it for actions with :meth:`~EvalAgent.act`. A
recurrent belief model updates after every observed step; a decision
transformer keeps its prompt and its recent history; a context-encoder method
infers z from its context (rlkit.evaluation.agent.ZContextAdapter).

The contract sits in the core layer, below the evaluation layer that drives it and
below the trainers (:meth:`rlkit.trainers.base.Trainer.eval_agent` returns one) and
the networks (rlkit.torch) that implement it, so any of them can subclass it.
Optional speed-ups of a z-context model are declared, not probed: its
``capabilities`` set names them (:data:`PER_TRANSITION`, :data:`ACT_PAIR`,
:data:`POSTERIOR_SPREAD`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Protocol as TypingProtocol

import numpy as np
import torch

# Capabilities a z-context model may declare in its ``capabilities`` (rlkit.torch.csro.CSROAgent declares all):
PER_TRANSITION = "encode_per_transition"  # encode_context(rows [k, n, D]) -> [k, n, E]; z_from_encoded(enc, lengths) -> z
ACT_PAIR = "act_pair"  # act_pair(obs, z) -> (deterministic, sampled) actions from one policy forward
POSTERIOR_SPREAD = "posterior_spread"  # z_var_from_encoded(enc, lengths) -> the posterior's var [M, L]
CAPABILITIES = frozenset({PER_TRANSITION, ACT_PAIR, POSTERIOR_SPREAD})

# When the CSRO paper re-infers z from the whole context: the values of a protocol's ``reinfer``
# (rlkit.evaluation.protocols.Protocol), which an agent reads from Rollout.protocol. They are part of
# this contract, not of the protocols' module, so an agent needs no import of the layer that runs it.
BEFORE_EVALUATION = "before_evaluation"  # before every evaluation episode (after its offline draw, if any)
AFTER_EVALUATION = "after_evaluation"  # after an evaluation episode, once evaluation transitions reach
#                                        num_exp_traj_eval * max_path_length


@dataclass(frozen=True)
class Rollout:
    """What a rollout is, told to the agent at :meth:`EvalAgent.reset`: the protocol (its rules,
    among them when the CSRO paper re-infers z), the settings, the spaces and where tensors live."""

    protocol: object  # rlkit.evaluation.protocols.Protocol
    settings: object  # rlkit.evaluation.protocols.EvalSettings
    obs_dim: int
    act_dim: int
    context_dim: int
    device: torch.device


@dataclass(frozen=True)
class Transitions:
    """Transitions of sub-envs ``envs`` (host indices [k]) for the agent to observe.

    ``joins[i]``: whether transition i joins sub-env ``envs[i]``'s context under the protocol's rule.
    ``exploring[i]``: it belongs to an exploration episode (its action may have been random).
    ``offline``: these are rows drawn from the task's offline data before an evaluation episode
    (``max_path_length`` per sub-env), not steps the sub-envs took.
    :meth:`rows` builds context rows (s, a, r[, s']) on the device only for what is asked.
    """

    envs: np.ndarray
    joins: np.ndarray
    exploring: np.ndarray
    offline: bool
    _rows: Callable[[np.ndarray], torch.Tensor]

    def rows(self, which: np.ndarray | None = None) -> torch.Tensor:
        """Context rows [j, n, D] of the positions ``which`` (bool [k] or indices; default: those that join)."""
        which = self.joins if which is None else which
        pos = np.flatnonzero(which) if np.asarray(which).dtype == bool else np.asarray(which)
        return self._rows(pos)

    def joining(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(sub-env indices [j] on the rows' device, rows [j, n, D]) of the transitions that join, or None."""
        if not self.joins.any():
            return None
        rows = self.rows()
        return torch.as_tensor(self.envs[self.joins], device=rows.device), rows


class EvalAgent(ABC):
    """A trained agent rolled out on M sub-envs at once, its belief its own.

    The protocol calls, in order: :meth:`reset` once, then per lockstep step
    :meth:`act` (which must not change the agent's state: the protocol may call
    it twice on one step) and :meth:`observe`; :meth:`end_episodes` when
    episodes end and :meth:`begin_evaluation` before an evaluation episode
    (after that episode's offline rows, if the protocol gives any, were
    observed). ``z_dim`` declares a belief with a z of that size
    (:meth:`belief` then gives it, for the z diagnostics); None: no z ("n/a").
    """

    use_next_obs_in_context: bool = False  # whether the context rows the protocol builds carry s'
    z_dim: int | None = None
    dtype: torch.dtype = torch.float32  # what observations and rows are handed in

    @abstractmethod
    def reset(self, tasks: torch.Tensor, rollout: Rollout) -> None:
        """A new rollout of ``len(tasks)`` sub-envs (``tasks``: each one's task id, for bookkeeping only):
        forget every context and start from the prior."""

    @abstractmethod
    def observe(self, transitions: Transitions) -> None:
        """Transitions the sub-envs made (or were given, :attr:`Transitions.offline`)."""

    def begin_evaluation(self, mask: np.ndarray) -> None:
        """Sub-envs ``mask`` [M] are about to start an evaluation (scored, deterministic) episode."""

    def end_episodes(self, ended: np.ndarray, evaluation: np.ndarray, eval_steps: np.ndarray) -> None:
        """Episodes of sub-envs ``ended`` [M] ended this step; ``evaluation`` [M] marks the evaluation
        episodes among them; ``eval_steps`` [M]: evaluation transitions per sub-env so far. The next
        episode of a sub-env that ended starts fresh."""

    @abstractmethod
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions in [-1, 1], [M, act_dim], for the observations [M, obs_dim] of every sub-env."""

    def act_pair(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(deterministic, sampled) actions; an agent overrides it when one forward gives both."""
        sampled = self.act(obs, deterministic=False)
        return self.act(obs, deterministic=True), sampled

    def belief(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(z [M, z_dim], its variance [M, z_dim] or None) at the end of a rollout; None without a z."""
        return None


class ZContextModel(TypingProtocol):
    """A z-context model: infers z from a context and acts on (s, z) (rlkit.torch.csro.CSROAgent)."""

    latent_dim: int
    use_next_obs_in_context: bool
    capabilities: frozenset  # optional: names from CAPABILITIES (missing: none)

    def infer_z(self, context: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """z [M, L] from padded contexts [M, C, D]; only the first ``lengths[m]`` rows count."""

    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions in [-1, 1], [M, act_dim]."""


