"""Open a finished (or running) meta-training run for evaluation and plots.

Every post-hoc tool (``python -m rlkit.evaluate``, ``show_path.py``,
``python -m rlkit.context_shift``) starts from :func:`load_run`, so they all
resolve snapshots, rebuild the agent and find the offline data the same way.
Snapshots are the dicts of :meth:`rlkit.launchers.meta_train.MetaTrainer.snapshot`;
the config stored in the snapshot (not ``variant.json``, which a resume may
have rewritten) decides the network shapes and their dtype, and its
``algo_params.trainer`` which registered trainer rebuilds the agent
(rlkit.trainers; a run made before the key existed is CSRO's).

Failures are :class:`RunLoadError` with a one-line message that names the
path and, for a missing iteration, the iterations that do exist.
"""

from __future__ import annotations

import json
import sys

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rlkit.core.logger import (
    LAST_SNAPSHOT,
    VARIANT_FILE,
    SnapshotError,
    load_snapshot,
    newest_loadable_snapshot,
    numbered_snapshots,
)
from rlkit.core.precision import computing_in, dtype_of
from rlkit.errors import UserError
from rlkit.evaluation.protocols import EvalSettings, OfflineContextFn
from rlkit.torch.networks import context_from_sample

_REQUIRED_KEYS = ("iteration", "trainer", "config", "train_tasks", "test_tasks", "obs_dim", "act_dim")
TASK_SETS = ("train", "test", "all")


class RunLoadError(UserError, RuntimeError):
    """The run directory, its snapshot or its offline data cannot be used; one-line message."""


def _load(path: Path, device) -> dict:
    try:
        state = load_snapshot(path)  # CPU tensors; modules move them to their device on load
    except SnapshotError as exc:
        raise RunLoadError(str(exc)) from None
    return _checked(path, state)


def _checked(path: Path, state: dict) -> dict:
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing or not isinstance(state["trainer"], dict) or "networks" not in state["trainer"]:
        what = ", ".join(missing) if missing else "trainer.networks"
        raise RunLoadError(f"snapshot {str(path)!r} is not a meta-training snapshot (missing {what})")
    return state


def add_run_arguments(parser, run_help: str = "output/ENV/EXP_NAME/seedN") -> None:
    """The arguments every tool that reads a finished run takes, said the same way: the run folder,
    ``--itr`` (which snapshot), ``--gpu`` and ``--data_dir`` (the dataset, if it moved since training).
    :func:`load_run` / :func:`resolve_snapshot` consume them."""
    parser.add_argument("run_dir", help=run_help)
    parser.add_argument("--itr", type=int, default=None, help="snapshot iteration (default: the newest)")
    parser.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    parser.add_argument("--data_dir", default=None, help="offline dataset, if it moved since training")


def resolve_snapshot(run_dir: str | Path, itr: int | None = None, device="cpu") -> tuple[Path, dict]:
    """(path, loaded state) of the snapshot of iteration ``itr`` (None: the newest)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunLoadError(f"run directory {str(run_dir)!r} does not exist")
    if itr is None:  # the same choice as --resume: the highest iteration that loads
        path, state, skipped = newest_loadable_snapshot(run_dir)
        if path is None:
            if skipped:
                raise RunLoadError(skipped[0])
            raise RunLoadError(f"no snapshot (agent.pth / agent_itr_K.pth) in {str(run_dir)!r}; "
                               "has the run finished an iteration?")
        for reason in skipped:  # evaluating an older snapshot than the run's newest must never be silent
            print(f"warning: {reason}; using the newest snapshot that loads instead: {path.name} "
                  f"(iteration {int(state.get('iteration', -1))})", file=sys.stderr)
        return path, _checked(path, state)
    numbered = numbered_snapshots(run_dir)
    if itr in numbered:
        return numbered[itr], _load(numbered[itr], device)
    # agent.pth holds the last iteration, which need not be a multiple of the snapshot gap
    last_itr = None
    last = run_dir / LAST_SNAPSHOT
    if last.is_file():
        state = _load(last, device)
        last_itr = int(state["iteration"])
        if last_itr == itr:
            return last, state
    available = [str(k) for k in numbered]
    if last_itr is not None and last_itr not in numbered:
        available.append(f"{last_itr} (agent.pth)")
    listing = ", ".join(available) if available else "none"
    raise RunLoadError(f"no snapshot of iteration {itr} in {str(run_dir)!r}; available iterations: {listing}")


@dataclass
class LoadedRun:
    """A run's trained agent (eval mode) plus what evaluating it needs.

    The offline buffers are loaded on first use (:meth:`offline_buffer`), so
    tools that only roll out online protocols never read the dataset.
    """

    run_dir: Path
    snapshot_path: Path
    iteration: int
    config: dict
    agent: torch.nn.Module
    train_tasks: list[int]
    test_tasks: list[int]
    obs_dim: int
    act_dim: int
    obs_absmax: np.ndarray | None
    device: torch.device
    data_dir: Path | None = None  # overrides algo_params.data_dir (the dataset moved)
    # {"train": ..., "test": ...}: what the run was trained on (rlkit.data.fingerprint); None for a run
    # made before runs recorded it
    data_fingerprint: dict | None = None
    _cache: dict = field(default_factory=dict, repr=False)  # buffers and the env's goal radius

    @property
    def env_name(self) -> str:
        return self.config["env_name"]

    @property
    def env_params(self) -> dict:
        return dict(self.config["env_params"])

    @property
    def algo(self) -> dict:
        return self.config["algo_params"]

    def settings(self, **overrides) -> EvalSettings:
        """The run's evaluation settings, with e.g. ``num_evals`` overridden."""
        settings = EvalSettings.from_algo_params(self.algo)
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, type(getattr(settings, key))(value))
        return settings

    def tasks(self, which: str = "test") -> list[int]:
        """Task ids of ``which`` in {"train", "test", "all"} (all = train then test)."""
        if which not in TASK_SETS:
            raise ValueError(f"tasks must be one of {', '.join(TASK_SETS)}, got {which!r}")
        return {"train": self.train_tasks, "test": self.test_tasks,
                "all": self.train_tasks + self.test_tasks}[which]

    def split_of(self, task: int) -> str:
        return "test" if int(task) in self.test_tasks else "train"

    # ---- offline data ------------------------------------------------------------------
    def offline_buffer(self, split: str = "test"):
        """The :class:`~rlkit.data.MultiTaskBuffer` of the train or test tasks (loaded once).

        Selected as in meta-training: ``train_epoch`` for train tasks,
        ``eval_epoch`` for test tasks, ``n_trj`` / ``sample`` for both.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split not in self._cache:
            from rlkit.data import DatasetError, MultiTaskBuffer, check_tasks_match, load_offline_data
            from rlkit.data.minari_format import is_minari_ref
            from rlkit.envs import make_env

            algo = self.algo
            data_dir = self.data_dir or Path(algo["data_dir"])
            if not is_minari_ref(data_dir) and not Path(data_dir).exists():
                raise RunLoadError(f"offline data not found at {str(data_dir)!r} (algo_params.data_dir of the run); "
                                   "pass --data_dir, or leave the offline protocol out")
            tasks = self.train_tasks if split == "train" else self.test_tasks
            epochs = algo["train_epoch"] if split == "train" else algo["eval_epoch"]
            try:
                # checked as meta-training checks it: checksums (unless the run turned them off) and the
                # task parameters, so another task set's data is never taken for this run's tasks
                data = load_offline_data(data_dir, tasks, epochs, algo["n_trj"], bool(algo["sample"]),
                                         obs_dim=self.obs_dim, act_dim=self.act_dim, env_name=self.env_name,
                                         max_transitions_per_task=algo["replay_buffer_size"],
                                         verify=bool(algo.get("verify_data", True)))
                check_tasks_match(data.metadata, make_env(self.env_name, **self.env_params), data.task_ids, data_dir)
            except DatasetError as exc:
                raise RunLoadError(f"cannot load the {split} tasks' offline data: {exc}") from None
            self._check_fingerprint(split, data.fingerprint, data_dir)
            self._cache[split] = MultiTaskBuffer(data, self.device, dtype=dtype_of(self.agent))
        return self._cache[split]

    def _check_fingerprint(self, split: str, now: str, data_dir) -> None:
        """Refuse offline data other than the run was trained on: the offline protocol's numbers
        would be those of data the run never saw. A run made before runs recorded their data's
        fingerprint is said once, in one line, and used."""
        from rlkit.data.fingerprint import fingerprint_mismatch

        if self.data_fingerprint is None:
            if not self._cache.get("fingerprint_noted"):
                self._cache["fingerprint_noted"] = True
                print(f"note: {self.run_dir} was made before runs recorded their data's fingerprint, so whether "
                      f"{data_dir} holds the data it was trained on cannot be checked; using it", file=sys.stderr)
            return
        differ = fingerprint_mismatch(self.data_fingerprint, {split: now}, splits=(split,))
        if differ:
            raise RunLoadError(f"the {split} tasks' offline data in {data_dir} is not what {self.run_dir} was trained "
                               f"on (data fingerprint {differ[0]}): pass --data_dir with the dataset the run was "
                               "trained on")

    def context_rows(self, part: dict) -> torch.Tensor:
        """Context tensor (obs, action, reward[, next_obs]) from a buffer sample, as in training.

        Sparse-reward runs see the sparse reward in their context (as meta-training does).
        """
        reward = self._context_reward()
        return context_from_sample(part, self.agent.use_next_obs_in_context, reward)

    def _context_reward(self):
        """The run's context-reward rule (:func:`rlkit.envs.run_context_reward`); the env is built once."""
        if "context_reward" not in self._cache:
            from rlkit.envs import make_env, run_context_reward

            self._cache["context_reward"] = run_context_reward(make_env(self.env_name, **self.env_params), self.algo)
        return self._cache["context_reward"]

    def sample_offline_context(self, task_ids: Sequence[int] | torch.Tensor, n: int,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` rows of each task's offline data, [len(task_ids), n, D], drawn as the run's trainer draws
        the offline protocol's context (its ``offline_context``: uniform transitions for the
        context-encoder methods, one episode's window for BOReL and Prompt-DT), so a finished run is
        evaluated on the context its training evaluations read."""
        from rlkit.trainers import trainer_of

        tasks = torch.as_tensor(task_ids, dtype=torch.long).cpu()
        is_test = torch.tensor([self.split_of(int(t)) == "test" for t in tasks], dtype=torch.bool)
        reward = self._context_reward()
        out = None
        for split, mask in (("test", is_test), ("train", ~is_test)):
            if not mask.any():
                continue
            source = trainer_of(self.config).offline_context(self.config, self.offline_buffer(split), generator, reward)
            rows = source(tasks[mask].to(self.device), n)
            if out is None:
                out = torch.zeros(len(tasks), n, rows.shape[-1], device=rows.device, dtype=rows.dtype)
            out[mask.to(rows.device)] = rows
        return out

    def offline_context(self, seed: int = 0) -> OfflineContextFn:
        """The offline protocol's context source, drawing from a generator seeded with ``seed``."""
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        return lambda task_ids, n: self.sample_offline_context(task_ids, n, generator=generator)


def load_run(run_dir: str | Path, itr: int | None = None, device: str | torch.device = "cpu",
             data_dir: str | Path | None = None) -> LoadedRun:
    """Load ``run_dir``'s snapshot of iteration ``itr`` (None: newest) with the agent in eval mode.

    ``data_dir`` replaces the config's ``algo_params.data_dir`` for the
    offline protocol (a run copied to another machine).
    """
    from rlkit.config import ConfigError
    from rlkit.trainers import trainer_of

    device = torch.device(device)
    path, state = resolve_snapshot(run_dir, itr, device)
    cfg = state["config"]
    try:
        trainer_cls = trainer_of(cfg)  # the registry rebuilds the agent of whichever trainer made the run
    except ConfigError as exc:
        raise RunLoadError(f"cannot read {str(path)!r}: {exc}") from None
    # in the dtype the run computed in (util_params.dtype; snapshots from before the key: float32)
    try:
        with computing_in(cfg.get("util_params", {}).get("dtype")):
            agent = trainer_cls.load_agent(cfg, int(state["obs_dim"]), int(state["act_dim"]), state["trainer"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunLoadError(f"snapshot {str(path)!r} does not fit the networks its config describes: {first}") from None
    agent.to(device).eval()
    absmax = state.get("obs_absmax")
    from rlkit.data.fingerprint import recorded_fingerprint

    fingerprint = recorded_fingerprint(state, _variant(Path(run_dir)))
    return LoadedRun(
        run_dir=Path(run_dir), snapshot_path=path, iteration=int(state["iteration"]), config=cfg, agent=agent,
        train_tasks=[int(t) for t in state["train_tasks"]], test_tasks=[int(t) for t in state["test_tasks"]],
        obs_dim=int(state["obs_dim"]), act_dim=int(state["act_dim"]),
        obs_absmax=None if absmax is None else np.asarray(absmax, dtype=np.float64), device=device,
        data_dir=Path(data_dir) if data_dir is not None else None, data_fingerprint=fingerprint,
    )


def _variant(run_dir: Path) -> dict | None:
    try:
        variant = json.loads((run_dir / VARIANT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return variant if isinstance(variant, dict) else None
