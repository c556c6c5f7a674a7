"""The test-time context-collection protocols of CSRO (docs/method.md §6), batched.

Each protocol is a small class that states what enters the context, when the
CSRO paper re-infers z and how it explores (:class:`Online`, :class:`Offline`,
:class:`NonPrior`); :func:`run_protocol` runs any of them the same way, with
any agent: the agent is an :class:`rlkit.evaluation.agent.EvalAgent`, told
every transition (and whether it joins the context) and every episode
boundary, and when it updates its belief is its own. A context-encoder
method's agent is the :class:`~rlkit.evaluation.agent.ZContextAdapter`, which
re-infers z where the paper does (``Protocol.reinfer``).

Every (task, repeat) pair is one sub-env of a single lockstep vector env, so
each time step costs one policy forward and one vectorized env step for all
of them. Each sub-env runs its own small state machine (episodes may end at
different times in hopper/walker/humanoid).

Common to all: the agent starts from its prior with an empty context; only the
deterministic evaluation episodes count toward ``num_steps_per_eval``; the
score is the return of the last evaluation episode, averaged over repeats and
tasks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlkit.config import load_defaults
from rlkit.envs.vector import make_vector_env
from rlkit.evaluation.agent import EvalAgent, Rollout, Transitions, ZContextModel, as_eval_agent
from rlkit.core.eval_agent import AFTER_EVALUATION, BEFORE_EVALUATION
from rlkit.torch.networks import build_context, context_dim

# What can enter the context (Protocol.context):
EXPLORATION = "exploration"  # every transition of the exploration episodes
EVALUATION = "evaluation"  # every transition of the (deterministic, scored) evaluation episodes
OFFLINE_DATA = "offline_data"  # before each evaluation episode, max_path_length draws from the task's offline data
# When the CSRO paper re-infers z from the whole context (Protocol.reinfer; the ZContextAdapter follows it):
# BEFORE_EVALUATION, AFTER_EVALUATION, defined with the agent's contract (rlkit.core.eval_agent)


class Protocol:
    """One context-collection protocol, declared by class attributes; a new protocol is one subclass.

    ``context``: the sources (above) whose transitions join the context;
    ``reinfer``: when z is re-inferred; ``explores``: whether each evaluation
    episode is preceded by a round of exploration episodes, collected until the
    round holds ``max_path_length`` transitions, whose actions
    :meth:`exploration_actions` chooses. Evaluation episodes always act with
    the deterministic policy.
    """

    name: ClassVar[str]
    title: ClassVar[str]  # what figures and tables call it, in plain words
    progress_key: ClassVar[str]  # the reference's progress.csv column
    context: ClassVar[frozenset[str]]
    reinfer: ClassVar[str]
    explores: ClassVar[bool] = False
    # run at every meta-training evaluation (progress.csv column, plans, figures), or only on demand
    # (rlkit.evaluate / context_shift / show_path --protocols): a stress test need not cost every run
    in_training: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = set(cls.context) - {EXPLORATION, EVALUATION, OFFLINE_DATA}
        if unknown or cls.reinfer not in (BEFORE_EVALUATION, AFTER_EVALUATION):
            raise TypeError(f"protocol {cls.name}: unknown context sources {sorted(unknown)} "
                            f"or reinfer {cls.reinfer!r}")
        if (EXPLORATION in cls.context) != cls.explores:
            raise TypeError(f"protocol {cls.name}: exploration transitions join the context iff it explores")

    def context_tasks(self, task_of: torch.Tensor, tasks: Sequence[int]) -> torch.Tensor:
        """Whose offline data the sub-envs of tasks ``task_of`` get as context (OFFLINE_DATA protocols):
        their own by default. ``tasks``: the distinct tasks of this evaluation, in order."""
        return task_of

    def exploration_actions(self, rng: np.random.Generator, sampled: np.ndarray, steps: np.ndarray,
                            settings: "EvalSettings") -> np.ndarray:
        """Actions [M, A] for sub-envs in an exploration episode.

        ``sampled``: policy actions sampled with the current z; ``steps``: evaluation
        transitions so far + steps of this exploration episode, per sub-env. Called on
        every lockstep step on which any sub-env explores.
        """
        raise NotImplementedError(f"protocol {self.name} does not explore")


class Online(Protocol):
    """Exploration by the agent's own prior policy (§6.1): where context shift bites."""

    name = "online"
    title = "online context"
    progress_key = "Average_OnlineReturn_all_test_tasks"
    context = frozenset({EVALUATION})  # every transition the agent takes
    reinfer = AFTER_EVALUATION


class Offline(Protocol):
    """The behaviour policies' context (§6.2): no shift, an upper reference."""

    name = "offline"
    title = "offline context"
    progress_key = "Average_OfflineReturn_all_test_tasks"
    context = frozenset({OFFLINE_DATA})  # the episodes' own transitions never join
    reinfer = BEFORE_EVALUATION


class NonPrior(Protocol):
    """CSRO's non-prior collection (§6.3): the context carries no policy signature early on."""

    name = "np_online"
    title = "non-prior context"
    progress_key = "Average_NpOnlineReturn_all_test_tasks"
    context = frozenset({EXPLORATION})  # evaluation episodes add nothing
    reinfer = AFTER_EVALUATION
    explores = True

    def exploration_actions(self, rng, sampled, steps, settings):
        """Uniform in [-1, 1]^d while ``steps`` < num_steps_per_eval / 2, the sampled policy action after."""
        uniform = rng.uniform(-1.0, 1.0, size=sampled.shape)
        return np.where((steps < settings.num_steps_per_eval / 2)[:, None], uniform, sampled)


class NonPriorUniform(NonPrior):
    """A diagnostic of the non-prior protocol: every exploration action uniform, none sampled from the policy.

    The non-prior protocol switches its exploration from uniform actions to the
    policy's own sampled actions halfway through ``num_steps_per_eval``, so the
    second half of its context carries the policy's signature again. The gap
    between the two says how much of the non-prior return that half costs. On
    demand only (``rlkit.evaluate --protocols np_online,np_uniform``).
    """

    name = "np_uniform"
    title = "non-prior context, uniform exploration throughout"
    progress_key = "Average_NpUniformReturn_all_test_tasks"
    in_training = False

    def exploration_actions(self, rng, sampled, steps, settings):
        """Uniform in [-1, 1]^d on every exploration step (the same draws as ``np_online``'s first half)."""
        return rng.uniform(-1.0, 1.0, size=sampled.shape)


class OfflineOtherTask(Protocol):
    """A context-shift stress test: the offline protocol, with the behaviour data of *another* test task
    (the next one in the evaluation's task list). A method whose z follows its context goes to that
    task's goal and scores like a wrong-task agent; one that ignores its context scores as with its own
    task's data. On demand only (``rlkit.evaluate --protocols offline,offline_other_task``)."""

    name = "offline_other_task"
    title = "offline context of another task"
    progress_key = "Average_OfflineOtherTaskReturn_all_test_tasks"
    context = frozenset({OFFLINE_DATA})
    reinfer = BEFORE_EVALUATION
    in_training = False

    def context_tasks(self, task_of, tasks):
        if len(tasks) < 2:
            raise ValueError(f"the {self.name} protocol needs at least two tasks to swap their data")
        order = torch.as_tensor(list(tasks), device=task_of.device)
        position = (task_of[:, None] == order[None, :]).int().argmax(dim=1)  # each sub-env's task in the list
        return torch.roll(order, -1)[position]


# The registry: every table, figure panel, record field and CLI choice iterates it, in this order
# (which is also the order evaluate() runs them in, so it fixes each protocol's seed: keep it).
# A new protocol is one class and one line here.
PROTOCOL_CLASSES: dict[str, type[Protocol]] = {cls.name: cls for cls in (Online, Offline, NonPrior, OfflineOtherTask,
                                                                         NonPriorUniform)}
ALL_PROTOCOLS = tuple(PROTOCOL_CLASSES)  # what --protocols accepts
PROTOCOLS = tuple(n for n, cls in PROTOCOL_CLASSES.items() if cls.in_training)  # ("online", "offline", "np_online")
PROGRESS_KEYS = {name: cls.progress_key for name, cls in PROTOCOL_CLASSES.items()}
PROTOCOL_TITLES = {name: cls.title for name, cls in PROTOCOL_CLASSES.items()}  # figure panels, table headers


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol object of a name (or the object itself)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOL_CLASSES:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOL_CLASSES[protocol]()


# What the protocols roll out: an EvalAgent, or a z-context model they adapt (rlkit.evaluation.agent)
ContextAgent = EvalAgent | ZContextModel


# An offline context source: (task ids [M] as a LongTensor, n) -> transitions [M, n, D]
OfflineContextFn = Callable[[torch.Tensor, int], torch.Tensor]


@functools.lru_cache(maxsize=1)
def _algo_defaults() -> dict:
    return dict(load_defaults()[0]["algo_params"])


def _algo_default(key: str):
    """A field default read from rlkit/defaults.py, the one place evaluation defaults are declared."""
    return field(default_factory=lambda: _algo_defaults()[key])


@dataclass
class EvalSettings:
    """What an evaluation needs from ``algo_params``; an unset field takes rlkit/defaults.py's value."""

    max_path_length: int = _algo_default("max_path_length")
    num_steps_per_eval: int = _algo_default("num_steps_per_eval")
    num_exp_traj_eval: int = _algo_default("num_exp_traj_eval")
    num_evals: int = _algo_default("num_evals")
    sparse_rewards: bool = _algo_default("sparse_rewards")

    @classmethod
    def from_algo_params(cls, algo: dict) -> "EvalSettings":
        return cls(
            max_path_length=int(algo["max_path_length"]),
            num_steps_per_eval=int(algo["num_steps_per_eval"]),
            num_exp_traj_eval=int(algo["num_exp_traj_eval"]),
            num_evals=int(algo["num_evals"]),
            sparse_rewards=bool(algo["sparse_rewards"]),
        )


@dataclass
class ProtocolResult:
    """Returns of the evaluation episodes of one protocol.

    ``episode_returns[m]`` lists the evaluation-episode returns of sub-env m
    (task ``task_of[m]``); ``trace`` optionally records every step for plots
    (``record_trace=True``; keys and shapes in :class:`_Trace`).
    """

    protocol: str
    task_ids: list[int]
    task_of: np.ndarray
    episode_returns: list[list[float]]
    trace: dict | None = None
    context_lengths: np.ndarray | None = None
    z: np.ndarray | None = None
    z_var: np.ndarray | None = None  # the final posterior's var per sub-env (agents that expose it)

    def final_returns(self) -> np.ndarray:
        """Per task: the last evaluation episode's return, averaged over repeats."""
        last = np.array([r[-1] for r in self.episode_returns])
        return np.array([last[self.task_of == t].mean() for t in self.task_ids])

    def average_final_return(self) -> float:
        return float(self.final_returns().mean())

    def return_curve(self) -> np.ndarray:
        """Mean return of the 1st, 2nd, ... evaluation episode (over repeats, then tasks)."""
        n = min(len(r) for r in self.episode_returns)
        per_env = np.array([r[:n] for r in self.episode_returns])
        per_task = np.stack([per_env[self.task_of == t].mean(0) for t in self.task_ids])
        return per_task.mean(0)


@dataclass
class _EnvState:
    m: int
    eval_steps: np.ndarray = field(init=False)
    episode_len: np.ndarray = field(init=False)
    explore_steps: np.ndarray = field(init=False)  # exploration transitions this round (np_online)
    exploring: np.ndarray = field(init=False)
    done: np.ndarray = field(init=False)
    ep_return: np.ndarray = field(init=False)

    def __post_init__(self):
        self.eval_steps = np.zeros(self.m, dtype=np.int64)
        self.episode_len = np.zeros(self.m, dtype=np.int64)
        self.explore_steps = np.zeros(self.m, dtype=np.int64)
        self.exploring = np.zeros(self.m, dtype=bool)
        self.done = np.zeros(self.m, dtype=bool)
        self.ep_return = np.zeros(self.m)


class _Trace:
    """Per-step record of a rollout for plots and diagnostics (``record_trace=True``).

    ``arrays()`` gives [T, M, ...] arrays: ``obs``, ``actions``, ``rewards`` (as scored,
    i.e. sparse when ``sparse_rewards``), ``next_obs``, ``exploring`` (the step belongs
    to an np_online exploration episode), ``active`` (the sub-env was not done yet),
    ``ended`` (an episode of an active sub-env ended at this step) and ``info``: the
    env's numeric per-env infos (``x_velocity``, ``xy``, ...), NaN where an env did
    not report the key. With these, the protocols' contexts can be rebuilt exactly.
    """

    _SKIP_INFOS = ("task", "final_obs", "final_info", "episode")

    def __init__(self):
        self.steps: dict[str, list] = {}
        self.infos: dict[str, list] = {}

    def add(self, **values) -> None:
        for key, value in values.items():
            self.steps.setdefault(key, []).append(np.array(value, copy=True))

    def add_infos(self, infos: dict, m: int) -> None:
        t = len(self.steps["obs"]) - 1  # index of the step being recorded
        for key, value in infos.items():
            if key.startswith("_") or key in self._SKIP_INFOS:
                continue
            value = np.asarray(value)
            if value.shape[:1] != (m,) or value.dtype.kind not in "fiub":
                continue
            value = value.astype(np.float64)
            mask = infos.get(f"_{key}")
            if mask is not None:
                value[~np.asarray(mask, dtype=bool)] = np.nan
            column = self.infos.setdefault(key, [None] * t)
            column.extend([None] * (t - len(column)))
            column.append(value)

    def arrays(self) -> dict:
        out = {k: np.stack(v) for k, v in self.steps.items()}
        n = len(self.steps.get("obs", []))
        info = {}
        for key, column in self.infos.items():
            column = column + [None] * (n - len(column))
            shape = next(v.shape for v in column if v is not None)
            info[key] = np.stack([np.full(shape, np.nan) if v is None else v for v in column])
        out["info"] = info
        return out


@torch.no_grad()
def run_protocol(
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
    return _ProtocolRun(proto, as_eval_agent(agent), venv, task_ids, task_of, settings, offline_context, seed,
                        torch.device(device), record_trace, progress).run()


class _ProtocolRun:
    """One protocol's lockstep rollout: the state it carries between steps, and one method per event
    (a step's actions, transitions joining the context, episodes ending, an evaluation starting, z
    re-inferred). :func:`run_protocol` builds one and calls :meth:`run`."""

    def __init__(self, proto: Protocol, agent: EvalAgent, venv, task_ids: list[int], task_of: np.ndarray,
                 settings: EvalSettings, offline_context: OfflineContextFn | None, seed: int,
                 device: torch.device, record_trace: bool, progress):
        self.proto, self.agent, self.venv, self.settings = proto, agent, venv, settings
        self.task_ids, self.task_of, self.offline_context, self.seed = task_ids, task_of, offline_context, seed
        self.device, self.progress = device, progress
        self.m = m = len(task_of)
        self.dtype = agent.dtype  # observations and contexts in the agent's dtype (float32 or float64)
        self.rng = np.random.default_rng(seed)  # uniform exploration actions; policy sampling uses torch's RNG
        self.mpl, self.budget = settings.max_path_length, settings.num_steps_per_eval
        self.act_dim = venv.single_action_space.shape[0]
        self.obs_dim = venv.single_observation_space.shape[0]
        ctx_dim = context_dim(self.obs_dim, self.act_dim, agent.use_next_obs_in_context)
        self.context_lengths = np.zeros(m, dtype=np.int64)  # rows that joined each sub-env's context
        self.task_tensor = torch.as_tensor(task_of, device=device)
        agent.reset(self.task_tensor, Rollout(proto, settings, self.obs_dim, self.act_dim, ctx_dim, device))
        self.st = _EnvState(m)
        self.returns: list[list[float]] = [[] for _ in range(m)]
        self.trace = _Trace() if record_trace else None
        self.eval_joins, self.explore_joins = EVALUATION in proto.context, EXPLORATION in proto.context
        self.reported = 0  # evaluation transitions already counted in ``progress``

    # ---- what the agent is told ------------------------------------------------------------------
    def start_evaluation(self, mask: np.ndarray) -> None:
        """Sub-envs in ``mask`` are about to start an evaluation episode (after their offline draw, if any)."""
        if not mask.any():
            return
        if OFFLINE_DATA in self.proto.context:
            envs = np.flatnonzero(mask)
            tasks = self.proto.context_tasks(self.task_tensor[torch.as_tensor(envs, device=self.device)], self.task_ids)
            rows = self.offline_context(tasks, self.mpl).to(self.device, self.dtype)
            self.context_lengths[envs] += rows.shape[1]
            everyone = np.ones(len(envs), dtype=bool)
            self.agent.observe(Transitions(envs, everyone, ~everyone, True,
                                           lambda pos: rows if len(pos) == len(envs) else rows[torch.as_tensor(pos)]))
        self.agent.begin_evaluation(mask)

    # ---- one lockstep step -----------------------------------------------------------------------
    def actions(self, obs: torch.Tensor) -> np.ndarray:
        st = self.st
        if st.exploring.any():
            det_t, sto_t = self.agent.act_pair(obs)
            det_actions, sampled = torch.stack((det_t, sto_t)).cpu().numpy()  # one device-to-host copy
            explore = self.proto.exploration_actions(self.rng, sampled, st.eval_steps + st.episode_len, self.settings)
            actions = np.where(st.exploring[:, None], explore, det_actions)
        else:
            actions = self.agent.act(obs, deterministic=True).cpu().numpy()
        return actions.astype(np.float32)

    def observe_step(self, active: np.ndarray, joins: np.ndarray, obs_np, actions, rewards, next_obs_np) -> None:
        """The agent observes the transitions of the ``active`` sub-envs; those in ``joins`` join their context."""
        envs = np.flatnonzero(active)
        if envs.size == 0:
            return
        self.context_lengths += joins

        def rows(pos: np.ndarray) -> torch.Tensor:
            # s, a, r, s' packed on the host: one copy to the device instead of four (each a blocking
            # transfer on a GPU), split there and assembled by build_context; the rewards are rounded to
            # the agent's dtype, not to float32, in a float64 run
            idx = envs[pos]
            packed = np.concatenate([obs_np[idx], actions[idx], np.asarray(rewards)[idx, None], next_obs_np[idx]],
                                    axis=1)
            o, a, r, o2 = torch.as_tensor(packed, device=self.device, dtype=self.dtype).split(
                [self.obs_dim, self.act_dim, 1, self.obs_dim], dim=1)
            return build_context(o, a, r, o2, self.agent.use_next_obs_in_context)[:, None]

        self.agent.observe(Transitions(envs, joins[envs], self.st.exploring[envs].copy(), False, rows))

    def end_episodes(self, ended: np.ndarray) -> None:
        """Bookkeeping of the episodes that ended this step: scores, progress, re-inference, rounds."""
        st, proto = self.st, self.proto
        # an exploration round goes on, episode after episode, until it holds a full path's worth
        eval_end = ended & ~st.exploring
        evaluation = ~st.exploring
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
            st.done |= eval_end & (st.eval_steps >= self.budget)
            if proto.explores:
                next_round = eval_end & ~st.done
                st.exploring[next_round] = True
                st.explore_steps[next_round] = 0
        if ended.any():
            self.agent.end_episodes(ended, evaluation, st.eval_steps.copy())
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
            self.observe_step(active, joins, obs_np, actions, rewards, next_obs_np)

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
        belief = self.agent.belief()
        z, z_var = belief if belief is not None else (None, None)
        return ProtocolResult(
            protocol=self.proto.name, task_ids=self.task_ids, task_of=self.task_of, episode_returns=self.returns,
            trace=trace.arrays() if trace is not None else None,
            context_lengths=self.context_lengths.copy(), z=z, z_var=z_var,
        )


def evaluate(
    agent: ContextAgent,
    env_name: str,
    env_params: dict,
    task_ids: Sequence[int],
    settings: EvalSettings,
    protocols: Sequence[str] = PROTOCOLS,
    offline_context: OfflineContextFn | None = None,
    obs_absmax=None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress=None,
) -> dict[str, ProtocolResult]:
    """Run each protocol; one vector env of tasks x repeats is built once and reused.

    ``progress`` counts evaluation transitions: :func:`eval_transitions` in all.
    """
    task_of = np.repeat(np.asarray([int(t) for t in task_ids]), settings.num_evals)
    venv = make_vector_env(env_name, env_params, task_of, obs_absmax=obs_absmax,
                           autoreset_mode=AutoresetMode.DISABLED)
    try:
        return {
            p: run_protocol(p, agent, env_name, env_params, task_ids, settings, offline_context=offline_context,
                            obs_absmax=obs_absmax, seed=seed + k, device=device, venv=venv, progress=progress)
            for k, p in enumerate(protocols)
        }
    finally:
        venv.close()


def eval_transitions(settings: EvalSettings, n_tasks: int, n_protocols: int = 1) -> int:
    """The evaluation transitions ``n_protocols`` protocols on ``n_tasks`` tasks count (their progress total)."""
    return int(n_protocols) * int(n_tasks) * settings.num_evals * settings.num_steps_per_eval


def progress_row(results: dict[str, ProtocolResult]) -> dict[str, float]:
    """The reference's progress.csv columns plus per-episode return curves."""
    row = {}
    for name, res in results.items():
        row[PROGRESS_KEYS[name]] = res.average_final_return()
        for k, value in enumerate(res.return_curve()):
            row[f"eval/{name}_return_episode_{k + 1}"] = float(value)
    return row


def trace_episodes(trace: dict, m: int) -> list[dict]:
    """The episodes of sub-env ``m`` in a recorded trace, in order.

    Each is ``{"steps": int array of trace step indices, "exploring": bool, "return": float}``;
    ``exploring`` marks np_online exploration episodes (their return is not scored).
    """
    active, ended = trace["active"][:, m], trace["ended"][:, m]
    episodes, start = [], None
    for t in np.flatnonzero(active):
        start = t if start is None else start
        if ended[t]:
            steps = np.arange(start, t + 1)
            steps = steps[active[steps]]
            episodes.append({"steps": steps, "exploring": bool(trace["exploring"][start, m]),
                             "return": float(trace["rewards"][steps, m].sum())})
            start = None
    return episodes
