"""The protocols' rollout as it was before the stateful agent contract (rlkit.evaluation.agent), kept as a
test helper: the protocol runner held the context and z itself and re-inferred z where ``Protocol.reinfer``
said. tests/test_eval_agent.py runs every shipped preset's agent through this and through today's
runner (the agent behind a ZContextAdapter) and asks for the same numbers, bit for bit.

Copied from rlkit/evaluation/protocols.py at 9d88a34 (the project's own code): ``_ContextStore``,
``_policy_actions``, ``run_protocol`` (here :func:`legacy_run_protocol`) and ``_ProtocolRun``; the
protocol classes, the settings, ``_EnvState``, ``_Trace`` and ``ProtocolResult`` are today's, unchanged.
Do not edit it to follow the runner: it is the reference the runner must keep matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlkit.core.precision import dtype_of
from rlkit.envs.vector import make_vector_env
from rlkit.evaluation.protocols import (AFTER_EVALUATION, BEFORE_EVALUATION, EVALUATION, EXPLORATION, OFFLINE_DATA,
                                        EvalSettings, OfflineContextFn, Protocol, ProtocolResult, _EnvState, _Trace,
                                        get_protocol)
from rlkit.torch.networks import build_context, context_dim

ContextAgent = object  # infer_z + act(obs, z, deterministic), optionally encode_context / z_from_encoded / act_pair


@dataclass
class _ContextStore:
    """Padded per-env context [M, C, D] on the agent's device, grown on demand."""

    data: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def empty(cls, m: int, dim: int, capacity: int, device, dtype: torch.dtype) -> "_ContextStore":
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


def _policy_actions(agent: ContextAgent, obs: torch.Tensor, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(deterministic, sampled) actions on the host, from one policy forward when the agent offers it."""
    if hasattr(agent, "act_pair"):
        det_t, sto_t = agent.act_pair(obs, z)
        det, sampled = torch.stack((det_t, sto_t)).cpu().numpy()  # one device-to-host copy
        return det, sampled
    sampled = agent.act(obs, z, deterministic=False).cpu().numpy()
    return agent.act(obs, z, deterministic=True).cpu().numpy(), sampled


@torch.no_grad()
def legacy_run_protocol(
    protocol: str | Protocol,
    agent: ContextAgent,
    env_name: str,
    env_params: dict,
    task_ids: Sequence[int],
    settings: EvalSettings,
    offline_context: OfflineContextFn | None = None,
    obs_absmax=None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    record_trace: bool = False,
    venv=None,
    progress=None,
) -> ProtocolResult:
    """Run one protocol (a name or a :class:`Protocol`) on ``task_ids`` x ``settings.num_evals`` sub-envs in lockstep.

    Random numbers: exploration draws one [M, A] block of uniforms from
    ``np.random.default_rng(seed)`` and one of policy noise from torch's RNG on
    every step on which any sub-env explores. ``progress`` (a
    :class:`rlkit.core.progress.Progress`) is advanced by the evaluation
    transitions each sub-env completes, up to ``num_steps_per_eval`` each
    (exploration transitions are not counted).
    """
    proto = get_protocol(protocol)
    if OFFLINE_DATA in proto.context and offline_context is None:
        raise ValueError(f"the {proto.name} protocol needs the test tasks' offline data (offline_context)")
    task_ids = [int(t) for t in task_ids]
    task_of = np.repeat(np.asarray(task_ids), settings.num_evals)
    if venv is None:
        venv = make_vector_env(env_name, env_params, task_of, obs_absmax=obs_absmax,
                               autoreset_mode=AutoresetMode.DISABLED)
    return _ProtocolRun(proto, agent, venv, task_ids, task_of, settings, offline_context, seed,
                        torch.device(device), record_trace, progress).run()


class _ProtocolRun:
    """One protocol's lockstep rollout: the state it carries between steps, and one method per event
    (a step's actions, transitions joining the context, episodes ending, an evaluation starting, z
    re-inferred). :func:`run_protocol` builds one and calls :meth:`run`."""

    def __init__(self, proto: Protocol, agent: ContextAgent, venv, task_ids: list[int], task_of: np.ndarray,
                 settings: EvalSettings, offline_context: OfflineContextFn | None, seed: int,
                 device: torch.device, record_trace: bool, progress):
        self.proto, self.agent, self.venv, self.settings = proto, agent, venv, settings
        self.task_ids, self.task_of, self.offline_context, self.seed = task_ids, task_of, offline_context, seed
        self.device, self.progress = device, progress
        self.m = m = len(task_of)
        self.dtype = dtype_of(agent)  # observations and contexts in the agent's dtype (float32 or float64)
        self.rng = np.random.default_rng(seed)  # uniform exploration actions; policy sampling uses torch's RNG
        self.mpl, self.budget = settings.max_path_length, settings.num_steps_per_eval
        self.threshold = settings.num_exp_traj_eval * self.mpl
        self.act_dim = venv.single_action_space.shape[0]
        self.obs_dim = venv.single_observation_space.shape[0]
        ctx_dim = context_dim(self.obs_dim, self.act_dim, agent.use_next_obs_in_context)
        self.store = _ContextStore.empty(m, ctx_dim, self.budget + 2 * self.mpl, device, self.dtype)
        # With an encoder that maps transitions independently, each row is encoded once, when it
        # enters the context, and re-inference only pools the cached encodings.
        self.cached = hasattr(agent, "encode_context") and hasattr(agent, "z_from_encoded")
        self.encoded = None
        self.z = torch.zeros(m, agent.latent_dim, device=device, dtype=self.dtype)  # the prior mean
        self.task_tensor = torch.as_tensor(task_of, device=device)
        self.st = _EnvState(m)
        self.returns: list[list[float]] = [[] for _ in range(m)]
        self.trace = _Trace() if record_trace else None
        self.eval_joins, self.explore_joins = EVALUATION in proto.context, EXPLORATION in proto.context
        self.reported = 0  # evaluation transitions already counted in ``progress``

    # ---- context and z ----------------------------------------------------------------------------
    def reinfer(self, mask: np.ndarray) -> None:
        if mask.any():
            idx = torch.as_tensor(np.flatnonzero(mask), device=self.device)
            if self.cached:
                self.z[idx] = self.agent.z_from_encoded(self.encoded.data[idx], self.encoded.lengths[idx]).to(self.z.dtype)
            else:
                n = int(self.store.lengths[idx].max())
                self.z[idx] = self.agent.infer_z(self.store.data[idx, :n], self.store.lengths[idx]).to(self.z.dtype)

    def add_context(self, idx: torch.Tensor, rows: torch.Tensor) -> None:
        self.store.append(idx, rows)
        if self.cached:
            enc = self.agent.encode_context(rows)
            if self.encoded is None:
                self.encoded = _ContextStore.empty(self.m, enc.shape[-1], self.store.data.shape[1], self.device, enc.dtype)
            self.encoded.append(idx, enc)

    def start_evaluation(self, mask: np.ndarray) -> None:
        """Sub-envs in ``mask`` are about to start an evaluation episode."""
        if not mask.any():
            return
        if OFFLINE_DATA in self.proto.context:
            idx = torch.as_tensor(np.flatnonzero(mask), device=self.device)
            tasks = self.proto.context_tasks(self.task_tensor[idx], self.task_ids)
            self.add_context(idx, self.offline_context(tasks, self.mpl).to(self.device, self.dtype))
        if self.proto.reinfer == BEFORE_EVALUATION:
            self.reinfer(mask)

    # ---- one lockstep step -----------------------------------------------------------------------
    def actions(self, obs: torch.Tensor) -> np.ndarray:
        st = self.st
        if st.exploring.any():
            det_actions, sampled = _policy_actions(self.agent, obs, self.z)
            explore = self.proto.exploration_actions(self.rng, sampled, st.eval_steps + st.episode_len, self.settings)
            actions = np.where(st.exploring[:, None], explore, det_actions)
        else:
            actions = self.agent.act(obs, self.z, deterministic=True).cpu().numpy()
        return actions.astype(np.float32)

    def join_context(self, add: np.ndarray, obs_np, actions, rewards, next_obs_np) -> None:
        """The transitions of sub-envs ``add`` join their context."""
        if not add.any():
            return
        idx = np.flatnonzero(add)
        # s, a, r, s' packed on the host: one copy to the device instead of four (each a blocking
        # transfer on a GPU), split there and assembled by build_context; the rewards are rounded to
        # the agent's dtype, not to float32, in a float64 run
        packed = np.concatenate([obs_np[idx], actions[idx], np.asarray(rewards)[idx, None], next_obs_np[idx]], axis=1)
        o, a, r, o2 = torch.as_tensor(packed, device=self.device, dtype=self.dtype).split(
            [self.obs_dim, self.act_dim, 1, self.obs_dim], dim=1)
        rows = build_context(o, a, r, o2, self.agent.use_next_obs_in_context)
        self.add_context(torch.as_tensor(idx, device=self.device), rows[:, None])

    def end_episodes(self, ended: np.ndarray) -> None:
        """Bookkeeping of the episodes that ended this step: scores, progress, re-inference, rounds."""
        st, proto = self.st, self.proto
        # an exploration round goes on, episode after episode, until it holds a full path's worth
        eval_end = ended & ~st.exploring
        st.exploring[ended & st.exploring & (st.explore_steps >= self.mpl)] = False
        if eval_end.any():
            for i in np.flatnonzero(eval_end):
                self.returns[i].append(float(st.ep_return[i]))
            st.eval_steps += np.where(eval_end, st.episode_len, 0)
            if self.progress is not None:
                counted = int(np.minimum(st.eval_steps, self.budget).sum())
                self.progress.update(counted - self.reported)
                self.reported = counted
            st.ep_return[eval_end] = 0.0
            if proto.reinfer == AFTER_EVALUATION:
                self.reinfer(eval_end & (st.eval_steps >= self.threshold))
            st.done |= eval_end & (st.eval_steps >= self.budget)
            if proto.explores:
                next_round = eval_end & ~st.done
                st.exploring[next_round] = True
                st.explore_steps[next_round] = 0
        st.episode_len[ended] = 0

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> ProtocolResult:
        st, venv, trace, settings = self.st, self.venv, self.trace, self.settings
        obs_np, _ = venv.reset(seed=self.seed)
        st.exploring[:] = self.proto.explores
        self.start_evaluation(~st.exploring)
        while not st.done.all():
            obs = torch.as_tensor(obs_np, device=self.device, dtype=self.dtype)
            active = ~st.done
            actions = self.actions(obs)
            next_obs_np, rewards, term, trunc, infos = venv.step(actions)
            if settings.sparse_rewards and "sparse_reward" in infos:
                rewards = np.asarray(infos["sparse_reward"], dtype=np.float64)
            if trace is not None:
                trace.add(obs=obs_np, actions=actions, exploring=st.exploring, active=active, rewards=rewards,
                          next_obs=next_obs_np)
                trace.add_infos(infos, self.m)
            joins = active & np.where(st.exploring, self.explore_joins, self.eval_joins)
            self.join_context(joins, obs_np, actions, rewards, next_obs_np)

            st.episode_len += active
            st.explore_steps += active & st.exploring
            st.ep_return += np.where(active & ~st.exploring, rewards, 0.0)
            ended = active & (term | trunc | (st.episode_len >= self.mpl))
            if trace is not None:
                trace.add(ended=ended)
            obs_np = next_obs_np
            if not (ended.any() or (term | trunc).any()):
                continue
            self.end_episodes(ended)
            # finished sub-envs idle along in lockstep; they are reset too, since gymnasium's
            # DISABLED autoreset mode refuses to step an env whose episode has ended
            restart = ended | (~active & (term | trunc))
            if restart.any():
                obs_np, _ = venv.reset(options={"reset_mask": restart.copy()})
                self.start_evaluation(restart & ~st.done & ~st.exploring)
        encoded = self.encoded
        return ProtocolResult(
            protocol=self.proto.name, task_ids=self.task_ids, task_of=self.task_of, episode_returns=self.returns,
            trace=trace.arrays() if trace is not None else None,
            context_lengths=self.store.lengths.cpu().numpy(), z=self.z.cpu().numpy(),
            z_var=(self.agent.z_var_from_encoded(encoded.data, encoded.lengths).cpu().numpy()
                   if self.cached and encoded is not None and hasattr(self.agent, "z_var_from_encoded") else None),
        )
