"""Offline data generation: one SAC behaviour policy per task, all tasks at once.

The tasks of a job share one :class:`EnsembleSAC` (a task dimension in every
weight tensor) and one lockstep vector env, so a training step is one batched
update and one vectorized env step for all of them (docs/method.md §3).

At every checkpoint step S (multiples of ``eval_frequency`` from
``num_seed_steps`` up to, not including, ``num_train_steps`` — the names the
reference gives its files, e.g. 2000, 2200, ..., 4800 for point-robot):

1. ``num_eval_episodes`` deterministic (mean-action) and
   ``num_eval_sample_episodes`` stochastic episodes per task are rolled out in
   a separate vector env and written to the dataset (native format, or the
   reference's layout with ``legacy_layout``);
2. each task's actor / critic / target weights are saved;
3. the resume state (all weights, optimizers, replay) is saved atomically;
4. the training envs are reset and every RNG reseeded from (seed, S).

Step 4 is what makes a killed-and-restarted run write exactly the files an
uninterrupted one writes: everything after S is a function of the saved
state and (seed, S). (The reference checkpoints at the first episode end
after S; with fixed 20/200-step horizons that is S itself.)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from omegaconf import DictConfig, OmegaConf

from rlkit.behavior.replay import EnsembleReplayBuffer
from rlkit.behavior.sac import EnsembleSAC
from rlkit.core.logger import atomic_torch_save, load_snapshot
from rlkit.core.precision import torch_dtype
from rlkit.fileio import ExclusiveLock
from rlkit.core.progress import progress
from rlkit.data import DatasetError, DatasetWriter, Episode, write_legacy_checkpoint
from rlkit.data.legacy import legacy_task_dirname, scan_legacy
from rlkit.data.native import GENERATOR_STATE_DIR, METADATA_FILE, read_metadata, recorded_checkpoints
from rlkit.data.selection import checkpoint_plan
from rlkit.envs import make_env
from rlkit.envs.vector import make_vector_env
from rlkit.fileio import atomic_file

STATE_DIR = GENERATOR_STATE_DIR  # the generator's resume state and locks (the loader reads the locks)
REPLACED_DIR = "_replaced"  # where --restart moves the checkpoints it regenerates (never deleted)


def derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def task_ids_text(tasks) -> str:
    """Task ids as a user reads them: ``0,5,7`` as given, a run of three or more consecutive ids as
    ``0-7``. (``first..last`` called ``--tasks 0,5,7`` eight tasks.)"""
    tasks = [int(t) for t in tasks]
    parts, i = [], 0
    while i < len(tasks):
        j = i
        while j + 1 < len(tasks) and tasks[j + 1] == tasks[j] + 1:
            j += 1
        parts += [f"{tasks[i]}-{tasks[j]}"] if j - i >= 2 else [str(t) for t in tasks[i:j + 1]]
        i = j + 1
    return ",".join(parts)


def tasks_text(tasks) -> str:
    """``task 3`` or ``tasks 0,5,7`` (:func:`task_ids_text`)."""
    return f"task {tasks[0]}" if len(tasks) == 1 else f"tasks {task_ids_text(tasks)}"


@dataclass
class GenerationJob:
    """What one process generates: ``tasks`` of ``env_name`` into ``data_dir``."""

    env_name: str
    env_params: dict
    tasks: list[int]
    sac: DictConfig
    data_dir: Path
    seed: int = 0
    device: str = "cpu"
    legacy_layout: bool = False
    progress: bool = True
    eval_chunk: int = 0  # episodes per task rolled out at once (0: all of them)
    extra_config: dict = field(default_factory=dict)
    restart: bool = False  # move the tasks' existing checkpoints aside and generate them again

    @property
    def tag(self) -> str:
        """Names this job's resume state: the same command finds it again."""
        key = json.dumps({"tasks": self.tasks, "seed": self.seed}, sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:10]

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_DIR / f"state_{self.tag}.pt"

    @functools.cached_property
    def episode_length(self) -> int:
        """The env's time limit: checkpoints fall on episode ends (:func:`checkpoint_plan`)."""
        return int(make_env(self.env_name, **self.env_params).max_episode_steps)

    def checkpoint_plan(self) -> dict[int, int]:
        """{env step: checkpoint name} this job writes (:func:`rlkit.data.selection.checkpoint_plan`)."""
        sac = self.sac
        return checkpoint_plan(sac.num_train_steps, sac.num_seed_steps, sac.eval_frequency, self.episode_length,
                               bool(sac.get("delay_first_checkpoint", True)))

    def checkpoint_steps(self) -> list[int]:
        """The checkpoints this job writes, ascending: what a complete task holds."""
        return sorted(self.checkpoint_plan().values())

    def check_schedule(self) -> None:
        """A schedule under which no checkpoint is ever written is refused before any training."""
        if not self.checkpoint_plan():
            sac = self.sac
            raise DatasetError(
                f"this schedule writes no checkpoint: checkpoints fall on episode ends ({self.episode_length} steps) "
                f"after num_seed_steps={sac.num_seed_steps}, every eval_frequency={sac.eval_frequency}, before "
                f"num_train_steps={sac.num_train_steps}; set num_train_steps above "
                f"{(int(sac.num_seed_steps) // self.episode_length + 1) * self.episode_length}")

    def generator_config(self) -> dict:
        return {"sac": OmegaConf.to_container(self.sac, resolve=True), "seed": self.seed,
                "legacy_layout": self.legacy_layout, "episode_length": self.episode_length, **self.extra_config}


def weights_path(data_dir: Path, task: int, step: int) -> Path:
    return data_dir / "weights" / f"task_{task:02d}" / f"agent_step{step}.pt"


def existing_checkpoints(job: GenerationJob) -> dict[int, list[int]]:
    """task -> checkpoint steps of ``job.tasks`` already in the job's folder: episodes (either
    layout) or saved policy weights. What a fresh job would rewrite."""
    root = Path(job.data_dir)
    found: dict[int, set[int]] = {}
    if (root / METADATA_FILE).is_file():
        for task, steps in recorded_checkpoints(read_metadata(root)).items():
            found.setdefault(task, set()).update(steps)
    for task, groups in (scan_legacy(root) if root.is_dir() else {}).items():
        found.setdefault(task, set()).update(step for _, step in groups)
    for task in job.tasks:
        folder = weights_path(root, task, 0).parent
        if folder.is_dir():
            for f in folder.glob("agent_step*.pt"):
                step = f.stem.removeprefix("agent_step")
                if step.isdigit():
                    found.setdefault(task, set()).add(int(step))
    return {t: sorted(found[t]) for t in job.tasks if found.get(t)}


def set_aside(job: GenerationJob) -> Path | None:
    """``--restart``: move the job's tasks' checkpoints, weights and this job's resume state to
    ``DIR/_replaced/YYYYmmdd-HHMMSS/`` (same relative paths). Returns that folder, or None if there
    was nothing to move. Nothing is deleted: a regenerated task never mixes with its old files."""
    import time

    root = Path(job.data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = next(d for n in range(1, 10_000)
                if not (d := root / REPLACED_DIR / (stamp if n == 1 else f"{stamp}-{n}")).exists())
    moved = False
    if not job.legacy_layout and (root / METADATA_FILE).is_file():
        # the manifest entries go with the files (a DatasetWriter opens the folder as the generator will)
        probe = make_env(job.env_name, **job.env_params)
        writer = DatasetWriter(root, job.env_name, job.env_params,
                               [_jsonable(probe.task_params(i)) for i in range(probe.n_tasks)],
                               probe.observation_space.shape[0], probe.action_space.shape[0],
                               job.generator_config())
        moved = bool(writer.set_aside_tasks(job.tasks, dest))
    aside = [legacy_task_dirname(t) for t in job.tasks] + [f"weights/task_{t:02d}" for t in job.tasks]
    aside += [f"{STATE_DIR}/{name}" for name in (job.state_path.name, f"replay_{job.tag}",
                                                  f"ray_done_{job.tag}.json", f"ray_claim_{job.tag}.json")]
    for rel in aside:
        if (root / rel).exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).rename(dest / rel)
            moved = True
    return dest if moved else None


def claim_tasks(job: GenerationJob) -> None:
    """Before a fresh job writes: it never rewrites checkpoints someone else wrote (``--tasks 5`` on a
    finished dataset would silently make task 5 a mix of two generator runs). It refuses in one line,
    or with ``--restart`` moves them aside first (:func:`set_aside`). Used by a generator on its folder
    and by the ``--ray`` driver for the groups whose results it gathers."""
    if job.restart:
        aside = set_aside(job)
        if aside is not None:
            print(f"moved the old checkpoints of {tasks_text(job.tasks)} to {aside}")
    existing = existing_checkpoints(job)
    if existing:
        tasks = sorted(existing)
        shown = ",".join(map(str, tasks[:8])) + (",..." if len(tasks) > 8 else "")
        steps = sorted({s for v in existing.values() for s in v})
        raise DatasetError(
            f"{job.data_dir} already holds checkpoints of task(s) {shown} (steps {steps[0]}..{steps[-1]}) written "
            "by an earlier generation job, and a job never rewrites them: to generate them again add --restart "
            "(moves them aside, deletes nothing), or write to another --data_dir")


class EpisodeCollector:
    """Rolls out E tasks x K episodes of the ensemble's policies in one vector env.

    Episodes of a task run side by side (chunked when K is large); each sub-env
    records its own transitions until its episode ends, so early-terminating
    envs give episodes of different lengths.
    """

    def __init__(self, job: GenerationJob, n_episodes: int):
        self.job = job
        e = len(job.tasks)
        self.chunk = min(n_episodes, job.eval_chunk or n_episodes)
        self.task_of = np.repeat(np.asarray(job.tasks), self.chunk)
        self.venv = make_vector_env(job.env_name, job.env_params, self.task_of,
                                    autoreset_mode=AutoresetMode.DISABLED)
        self.e, self.max_steps = e, make_env(job.env_name, **job.env_params).max_episode_steps

    def collect(self, agent: EnsembleSAC, sampled: Sequence[bool], index: Sequence[int],
                seed: int) -> list[list[Episode]]:
        """Episodes per task; episode j samples actions if ``sampled[j]`` and is numbered ``index[j]``."""
        e, c = self.e, self.chunk
        out: list[list[Episode]] = [[] for _ in range(e)]
        gen = torch.Generator(device=agent.device).manual_seed(seed)
        for start in range(0, len(sampled), c):
            ks = list(range(start, min(start + c, len(sampled))))
            mask = np.zeros((e, c), dtype=bool)
            mask[:, : len(ks)] = [sampled[k] for k in ks]
            obs, _ = self.venv.reset(seed=derived_seed(seed, start))
            live = np.zeros((e, c), dtype=bool)
            live[:, : len(ks)] = True
            rec = {k: [] for k in ("obs", "act", "rew", "next")}
            ended = np.zeros((e, c), dtype=bool)
            term_flag = np.zeros((e, c), dtype=bool)
            lengths = np.zeros((e, c), dtype=np.int64)
            for _ in range(self.max_steps):
                o = torch.as_tensor(obs, device=agent.device).reshape(e, c, -1)
                det = agent.act(o, sample=False)
                sto = agent.act(o, sample=True, generator=gen)
                act = torch.where(torch.as_tensor(mask, device=agent.device)[..., None], sto, det)
                act_np = act.reshape(e * c, -1).cpu().numpy().astype(np.float32)
                nxt, rew, term, trunc, _ = self.venv.step(act_np)
                active = (live & ~ended).reshape(-1)
                rec["obs"].append(obs.copy())
                rec["act"].append(act_np)
                rec["rew"].append(rew.copy())
                rec["next"].append(nxt.copy())
                lengths.reshape(-1)[active] += 1
                done_now = (term | trunc).reshape(e, c) & ~ended
                term_flag |= term.reshape(e, c) & done_now
                ended |= done_now
                obs = nxt
                if ended[live].all():
                    break
                if done_now.any():  # DISABLED autoreset: finished sub-envs must be reset to keep stepping
                    obs, _ = self.venv.reset(options={"reset_mask": done_now.reshape(-1)})
            arrays = {k: np.stack(v, axis=1) for k, v in rec.items()}  # [E*C, T, ...]
            for j in range(e):
                for slot, k in enumerate(ks):
                    m, n = j * c + slot, lengths[j, slot]
                    out[j].append(Episode(
                        observations=arrays["obs"][m, :n], actions=arrays["act"][m, :n],
                        rewards=arrays["rew"][m, :n], next_observations=arrays["next"][m, :n],
                        sampled=bool(sampled[k]), index=int(index[k]),
                        terminated=bool(term_flag[j, slot]), truncated=not term_flag[j, slot],
                    ))
        return out

    def close(self) -> None:
        self.venv.close()


def _episode_plan(n_det: int, n_sto: int) -> tuple[list[bool], list[int]]:
    """Which episodes sample actions, and each episode's index k within its group."""
    sampled = [False] * n_det + [True] * n_sto
    index = list(range(n_det)) + list(range(n_sto))
    return sampled, index


def initial_agent(cfg: DictConfig, n_tasks: int, obs_dim: int, act_dim: int, device: torch.device,
                  seed: int, tasks: Sequence[int]) -> EnsembleSAC:
    """The untrained ensemble for ``tasks``.

    ``same_init`` (the default): every task starts from one draw of weights, a
    function of ``seed`` alone. The authors run one process per task, each
    seeded with the same seed, so all their behaviour policies start alike; it
    also makes a task's start independent of which other tasks share the job
    (``--split``, ``--tasks``). ``same_init: false``: independent draws per
    task, a function of the seed and the job's tasks (datasets written before
    the option existed were made this way).

    The ensemble computes in the preset's ``dtype`` (float32, or float64 for
    numbers that do not depend on the machine; rlkit.core.precision).
    """
    dtype = torch_dtype(cfg.get("dtype"))
    if not bool(cfg.get("same_init", False)):
        torch.manual_seed(derived_seed(seed, *tasks))
        return EnsembleSAC.from_config(cfg.agent, n_tasks, obs_dim, act_dim, device=device, dtype=dtype)
    torch.manual_seed(derived_seed(seed))
    one = EnsembleSAC.from_config(cfg.agent, 1, obs_dim, act_dim, device=device, dtype=dtype)
    agent = EnsembleSAC.from_config(cfg.agent, n_tasks, obs_dim, act_dim, device=device, dtype=dtype)
    start = one.member_state_dict(0)
    for j in range(n_tasks):
        agent.load_member_state_dict(j, start)
    return agent


class BehaviourPolicyGenerator:
    """Trains the job's tasks to ``num_train_steps`` and writes every checkpoint."""

    def __init__(self, job: GenerationJob):
        self.job = job
        cfg = job.sac
        self.device = torch.device(job.device)
        probe = make_env(job.env_name, **job.env_params)
        self.obs_dim, self.act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        self.task_params = [_jsonable(probe.task_params(i)) for i in range(probe.n_tasks)]
        self.e = len(job.tasks)
        job.check_schedule()
        self.write_at = job.checkpoint_plan()
        self.schedule = sorted(self.write_at.values())
        self.agent = initial_agent(cfg, self.e, self.obs_dim, self.act_dim, self.device, job.seed, job.tasks)
        self.replay = EnsembleReplayBuffer(self.e, int(cfg.replay_buffer_capacity), self.obs_dim, self.act_dim,
                                           device=self.device, dtype=self.agent.dtype)
        self.writer = None if job.legacy_layout else DatasetWriter(
            job.data_dir, job.env_name, job.env_params, self.task_params, self.obs_dim, self.act_dim,
            job.generator_config())
        self.step = 0
        self._segments: list[tuple[int, int]] = []  # replay rows already saved, as [start, end) ranges
        self.log_path = job.data_dir / STATE_DIR / "returns.csv"

    # ------------------------------------------------------------------ persistence
    @property
    def _segment_dir(self) -> Path:
        return self.job.data_dir / STATE_DIR / f"replay_{self.job.tag}"

    def _save_state(self) -> None:
        """Weights, optimizers and step in the state file; the replay as segments, each saved once.

        The replay only grows (its capacity is the number of training steps), so
        each checkpoint writes the rows added since the last one: 1M MuJoCo steps
        x 40 tasks no longer rewrite gigabytes at every checkpoint. Segments are
        written before the state that lists them, so a kill in between leaves
        the previous state and its segments intact. A buffer that wrapped (a
        capacity below the step count) is saved whole instead.
        """
        replay = self.replay
        if replay.full:
            replay_state = replay.state_dict()
        else:
            start, end = (self._segments[-1][1] if self._segments else 0), len(replay)
            if end > start:
                atomic_torch_save(replay.rows(start, end), self._segment_dir / f"rows_{start:010d}_{end:010d}.pt")
                self._segments.append((start, end))
            replay_state = {"capacity": replay.capacity, "idx": replay.idx, "full": False,
                            "segments": [list(seg) for seg in self._segments]}
        atomic_torch_save({"step": self.step, "agent": self.agent.state_dict(), "replay": replay_state,
                           "tasks": self.job.tasks}, self.job.state_path)
        keep = {f"rows_{a:010d}_{b:010d}.pt" for a, b in self._segments}
        for stale in self._segment_dir.glob("rows_*.pt"):  # left by a run killed before its state was saved
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def _replay_from_segments(self, replay_state: dict) -> dict:
        """The replay state dict assembled from the segment files a state lists (checked contiguous)."""
        parts, expect = [], 0
        for start, end in replay_state["segments"]:
            if start != expect:
                raise DatasetError(f"{self.job.state_path}: replay segments are not contiguous at row {start}; "
                                   "delete the _generator folder to restart generation")
            parts.append(load_snapshot(self._segment_dir / f"rows_{start:010d}_{end:010d}.pt"))
            expect = end
        self._segments = [(int(a), int(b)) for a, b in replay_state["segments"]]
        data = {k: torch.cat([p[k] for p in parts], dim=1) if parts else None for k in (parts[0] if parts else {})}
        return {"capacity": replay_state["capacity"], "idx": replay_state["idx"], "full": False, "data": data}

    def try_resume(self) -> bool:
        path = self.job.state_path
        if not path.exists():
            return False
        state = load_snapshot(path)
        if list(state["tasks"]) != list(self.job.tasks):
            raise DatasetError(f"{path} belongs to tasks {state['tasks']}, not {self.job.tasks}")
        self.agent.load_state_dict(state["agent"])
        replay_state = state["replay"]
        if "segments" in replay_state:
            replay_state = self._replay_from_segments(replay_state)
        if replay_state.get("data"):
            self.replay.load_state_dict(replay_state)
        self.step = int(state["step"])
        return True

    # ------------------------------------------------------------------ checkpoints
    def write_checkpoint(self, step: int, collector: EpisodeCollector) -> dict[int, tuple[float, float]]:
        cfg = self.job.sac
        sampled, index = _episode_plan(cfg.num_eval_episodes, cfg.num_eval_sample_episodes)
        per_task = collector.collect(self.agent, sampled, index, derived_seed(self.job.seed, step, 1))
        returns = {}
        for j, task in enumerate(self.job.tasks):
            eps = per_task[j]
            if self.job.legacy_layout:
                write_legacy_checkpoint(self.job.data_dir, task, step, eps)
            else:
                self.writer.write_checkpoint(task, step, eps)
            atomic_torch_save(self.agent.member_state_dict(j), weights_path(self.job.data_dir, task, step))
            det = [float(e.rewards.sum()) for e in eps if not e.sampled]
            sto = [float(e.rewards.sum()) for e in eps if e.sampled]
            returns[task] = (float(np.mean(det)) if det else float("nan"), float(np.mean(sto)) if sto else float("nan"))
        self._log_returns(step, returns)
        return returns

    def _log_returns(self, step: int, returns: dict[int, tuple[float, float]]) -> None:
        """Rows (step, task, returns) of this checkpoint, replacing any a killed run wrote for it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        header = ["step", "task", "deterministic_return", "sampled_return"]
        rows = []
        if self.log_path.exists():
            with open(self.log_path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
        mine = {str(t) for t in returns}
        rows = [r for r in rows if not (len(r) == 4 and r[0] == str(step) and r[1] in mine)]
        rows += [[step, task, d, s] for task, (d, s) in returns.items()]
        with atomic_file(self.log_path, "w", fsync=False) as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    # ------------------------------------------------------------------ training
    def lock(self) -> ExclusiveLock:
        """One process per (dataset, tasks, seed): a second one would train the same policies twice
        and race on the same resume state. Processes with other tasks (a --split job) run side by side."""
        job = self.job
        return ExclusiveLock.acquire(
            job.state_path.with_suffix(".lock"),
            busy=lambda holder: DatasetError(
                f"{tasks_text(job.tasks)} (seed {job.seed}) of {job.data_dir} are being generated by "
                f"process {holder}; wait for it, or generate other --tasks"),
            unwritable=lambda exc: DatasetError(f"cannot write in {job.data_dir}: {exc.strerror or exc}"))

    def run(self) -> None:
        lock = self.lock()
        try:
            self._run()
        finally:
            lock.release()

    def _run(self) -> None:
        job, cfg = self.job, self.job.sac
        resumed = False if job.restart else self.try_resume()
        if not resumed:
            self._claim_tasks()
        n_eval = cfg.num_eval_episodes + cfg.num_eval_sample_episodes
        collector = EpisodeCollector(job, n_eval)
        venv = make_vector_env(job.env_name, job.env_params, job.tasks, autoreset_mode=AutoresetMode.SAME_STEP)
        tb = _tensorboard(job.data_dir / STATE_DIR / "tb") if cfg.get("log_save_tb", False) else None
        try:
            obs = self._reseed(venv, self.step) if resumed else self._reseed(venv, 0)
            # one rate on the line: steps per second, each step advancing all the job's task envs
            bar = progress(total=int(cfg.num_train_steps), initial=self.step, unit="step",
                           desc=f"{job.env_name} {tasks_text(job.tasks)} ({self.e} envs per step)",
                           enabled=job.progress)
            while self.step < cfg.num_train_steps:
                # the resume state is saved after the checkpoint's files: resuming there, they are complete
                if self.step in self.write_at and not resumed:
                    returns = self.write_checkpoint(self.write_at[self.step], collector)
                    self._save_state()
                    obs = self._reseed(venv, self.step)
                    if tb is not None:
                        for task, (d, _) in returns.items():
                            tb.add_scalar(f"task_{task:02d}/deterministic_return", d, self.step)
                    bar.set_postfix(ret=f"{np.mean([d for d, _ in returns.values()]):.2f}")
                resumed = False
                obs = self._train_step(venv, obs)
                self.step += 1
                if self.step % 100 == 0 or self.step == cfg.num_train_steps:
                    bar.update(self.step - bar.n)
            bar.close()
        finally:
            venv.close()
            collector.close()
            if tb is not None:
                tb.close()

    def _claim_tasks(self) -> None:
        """:func:`claim_tasks`, then the step-0 state at once, so the same command after a kill
        resumes this job instead of refusing its own first checkpoint."""
        claim_tasks(self.job)
        self._save_state()

    def _reseed(self, venv, step: int) -> np.ndarray:
        s = derived_seed(self.job.seed, step)
        torch.manual_seed(s)
        self._rng = np.random.default_rng(s)
        self._gen = torch.Generator(device=self.device).manual_seed(s)
        obs, _ = venv.reset(seed=s)
        return obs

    def _train_step(self, venv, obs: np.ndarray) -> np.ndarray:
        cfg = self.job.sac
        if self.step < cfg.num_seed_steps:
            action = self._rng.uniform(-1.0, 1.0, size=(self.e, self.act_dim)).astype(np.float32)
        else:
            action = self.agent.act(torch.as_tensor(obs, device=self.device), sample=True,
                                    generator=self._gen).cpu().numpy().astype(np.float32)
        if self.step >= cfg.num_seed_steps:  # the reference updates before stepping, from num_seed_steps on
            self.agent.update(self.replay.sample(int(cfg.agent.batch_size), generator=self._gen), self.step,
                              generator=self._gen)
        next_obs, reward, term, trunc, info = venv.step(action)
        real_next = next_obs.copy()
        if "final_obs" in info:  # same-step autoreset: the transition's next obs is the final one
            ended = np.asarray(info["_final_obs"], dtype=bool)
            real_next[ended] = np.stack(info["final_obs"][ended])
        # time-limit ends are not terminal in the target (docs/method.md §3)
        self.replay.add(obs, action, reward, real_next, term.astype(np.float32))
        return next_obs


def _tensorboard(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def _jsonable(params: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()}


def regenerate_sampled(job: GenerationJob) -> int:
    """``--eval``: rewrite the stochastic episodes of every saved checkpoint from its weights."""
    gen = BehaviourPolicyGenerator(job)
    cfg = job.sac
    collector = EpisodeCollector(job, cfg.num_eval_sample_episodes)
    written = 0
    try:
        for step in gen.schedule:
            paths = [weights_path(job.data_dir, t, step) for t in job.tasks]
            if not all(p.exists() for p in paths):
                continue
            for j, p in enumerate(paths):
                gen.agent.load_member_state_dict(j, load_snapshot(p))
            n = cfg.num_eval_sample_episodes
            per_task = collector.collect(gen.agent, [True] * n, list(range(n)), derived_seed(job.seed, step, 2))
            for j, task in enumerate(job.tasks):
                if job.legacy_layout:
                    write_legacy_checkpoint(job.data_dir, task, step, per_task[j])
                else:
                    kept = [e for e in _read_native(job.data_dir, task, step) if not e.sampled]
                    gen.writer.write_checkpoint(task, step, kept + per_task[j])
            written += 1
    finally:
        collector.close()
    return written


def _read_native(root: Path, task: int, step: int) -> list[Episode]:
    from rlkit.data import read_checkpoint_episodes

    try:
        return read_checkpoint_episodes(root, task, step)
    except Exception:  # a missing or unreadable checkpoint: only the new episodes are written
        return []

