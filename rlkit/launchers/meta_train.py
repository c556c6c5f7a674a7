"""Meta-training: the loop behind ``launch_experiment.py``, for any registered trainer.

One iteration = ``num_train_steps_per_itr`` steps of the run's trainer
(``algo_params.trainer``, from the registry rlkit.trainers: CSRO's for every
shipped preset), then the evaluation protocols on the test tasks, one
progress.csv row, and a snapshot. Every iteration reseeds torch and numpy
from (seed, iteration), so a run resumed from the snapshot of iteration k
produces the same rows as one that never stopped.

The loop knows no method: how a batch is laid out and drawn, the update, the
networks, the method's columns and its memory bound are the trainer's
(:class:`rlkit.trainers.base.Trainer`); no method's module is imported here.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlkit.config import Config, ConfigError, algo_presets, check_seed, load_config, read_json_object
from rlkit.core.device import run_device
from rlkit.core.precision import computing_in
from rlkit.core.logger import (START_OVER, VARIANT_FILE, RunDirError, RunLogger, holds_a_run,
                               latest_snapshot, load_snapshot, move_aside, numbered_snapshots,
                               newest_loadable_snapshot, run_dir_path, settings_drift)
from rlkit.core.progress import progress
from rlkit.core.tracking import attach_trackers, import_wandb, key_hparams
from rlkit.data import MultiTaskBuffer, check_tasks_match, load_offline_data, split_tasks_from_variant
from rlkit.data.fingerprint import FINGERPRINT_KEY, describe, fingerprint_mismatch, recorded_fingerprint
from rlkit.data.loader import resolve_auto, selection_fingerprint
from rlkit.envs import ENVS, make_env, run_context_reward
from rlkit.errors import UserError
from rlkit.evaluation.agent import as_eval_agent
from rlkit.evaluation.protocols import EvalSettings, evaluate, progress_row
from rlkit.evaluation.reference import ReferenceUnavailable, reference_returns
from rlkit.launchers.progress_columns import (NORMALIZED, eval_z_columns, is_eval_z_column, normalized_columns,
                                              run_columns, with_missing_as_nan)
from rlkit.trainers import get_trainer, trainer_of


def iteration_seed(seed: int, itr: int) -> int:
    return int(np.random.SeedSequence([seed, itr]).generate_state(1)[0])


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN or infinite; the message names which and when (one line)."""


class SettingsChanged(RunDirError):
    """A run folder holds a run made with other settings than the ones asked now (one line, naming the keys)."""


class DataChanged(RunDirError):
    """A run folder holds a run trained on other data than its data_dir holds now (one line, naming both fingerprints)."""


class NotEnoughMemory(UserError, MemoryError):
    """The settings need more memory than the device has (one line naming the setting)."""


def check_env_name(name: str) -> None:
    """An unknown ``env_name`` as a one-line ConfigError naming the closest known env and all of them.

    Passed to :func:`rlkit.config.load_config` as ``check_env``, so it is reported
    before the task counts and other values that only make sense for a known env.
    """
    if name in ENVS:
        return
    names = sorted(ENVS)
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.0)
    hint = f" (the closest is {close[0]!r})" if close else ""
    raise ConfigError(f"unknown env_name {name!r}{hint}; known envs: {', '.join(names)}")


def check_method_preset(algo_type: str, trainer: str | None = None) -> None:
    """A method preset that leaves a method-defining key open is refused (one line, naming the keys).

    The env JSON sits under the preset, so a key the preset does not fix is the env JSON's to set:
    ``use_corro: true`` in an env JSON would have made a "CSRO" run train CORRO's loss. Which keys
    define a method is the trainer's to say (``trainer``: the run's, default the preset's own).
    """
    path = algo_presets().get(algo_type)
    if path is None:
        return  # load_config has refused an unknown algo_type already
    preset = read_json_object(path)
    trainer_cls = get_trainer(trainer) if trainer is not None else trainer_of(preset)
    open_keys = trainer_cls.preset_open_keys(preset)
    if open_keys:
        raise ConfigError(f"method preset {str(path)!r} does not fix {', '.join(open_keys)}: a preset defines its "
                          "method, so add them to its algo_params")


def load_run_config(path, overrides=()) -> Config:
    """:func:`rlkit.config.load_config` for a training run: a known env, a registered trainer and a closed
    method preset."""
    cfg = load_config(path, list(overrides), check_env=check_env_name)
    trainer = cfg["algo_params"]["trainer"]
    get_trainer(trainer)  # an unknown name: one line listing the registered trainers
    check_method_preset(cfg["algo_type"], trainer)
    return cfg


def _read_variant(run_dir: Path) -> dict | None:
    try:
        ran = json.loads((Path(run_dir) / VARIANT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ran if isinstance(ran, dict) else None


def run_settings_drift(run_dir: Path, cfg: Config, state: dict | None = None) -> list[str]:
    """How ``cfg`` differs from the settings the run in ``run_dir`` was made with (rlkit.core.logger.settings_drift).

    The run's settings are its variant.json, else the config its snapshot
    ``state`` carries. Only keys that extend a run (more iterations) and
    run-control keys (folders, device) may differ.
    """
    ran = _read_variant(run_dir)
    if ran is None and state is not None:
        ran = state.get("config")
    if not isinstance(ran, dict):
        return []
    return settings_drift(ran, cfg, resuming=True)


def check_same_settings(run_dir: Path, cfg: Config, state: dict | None = None) -> None:
    """Refuse to resume (or count as done) a run that other settings made: one folder, one experiment."""
    drift = run_settings_drift(run_dir, cfg, state)
    if drift:
        raise SettingsChanged(
            f"{run_dir} was made with other settings ({'; '.join(drift)}); only algo_params.num_iterations may "
            f"grow. Restore those settings to continue it, or {START_OVER}")


# --------------------------------------------------------------------------------------
# memory: absurd sizes are refused up front, a real shortage is one line


def _device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` (physical RAM for the CPU), or None if unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def check_memory(cfg: Config, obs_dim: int, act_dim: int, device: torch.device) -> None:
    """Refuse settings whose networks alone cannot fit in the device's memory (e.g. latent_size=1e8).

    Without it such a run allocates until the operating system kills it, or
    swaps for minutes without a line of output.
    """
    have = _device_memory(device)
    if not have:
        return
    trainer_cls = trainer_of(cfg)
    need = trainer_cls.memory_bound(cfg, obs_dim, act_dim, torch.empty(0).element_size())
    if need and sum(need.values()) > have:
        key = max(need, key=need.get)
        raise NotEnoughMemory(
            f"{key}={_dotted(cfg, key)} needs at least {sum(need.values()) / 2**30:,.0f} GiB for the networks, more "
            f"than the {have / 2**30:,.0f} GiB of {device}; lower {key}{trainer_cls.memory_hint}")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory"))


@contextlib.contextmanager
def memory_errors_named(cfg: Config, device: torch.device):
    """Turn running out of memory into one line naming the settings that size the run."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, NotEnoughMemory) or not _is_out_of_memory(exc):
            raise
        sizes = ", ".join(f"{k}={_dotted(cfg, k)}" for k in trainer_of(cfg).size_settings())
        raise NotEnoughMemory(f"out of memory on {device}; lower the settings that size the run ({sizes})") from None


def _dotted(cfg: Config, path: str):
    node = cfg
    for part in path.split("."):
        node = node[part]
    return node


@dataclass
class ExperimentData:
    train_tasks: list[int]
    test_tasks: list[int]
    train: MultiTaskBuffer
    test: MultiTaskBuffer
    obs_absmax: np.ndarray | None
    fingerprint: dict[str, str]  # {"train": ..., "test": ...} of the loaded selections (rlkit.data.fingerprint)


def load_experiment_data(cfg: Config, seed: int, device: torch.device) -> ExperimentData:
    """The train/test split and both task buffers on ``device`` (docs/method.md §3)."""
    algo = cfg["algo_params"]
    train_tasks, test_tasks = split_tasks_from_variant(cfg, seed)
    env = make_env(cfg["env_name"], **cfg["env_params"])
    common = dict(n_trj=algo["n_trj"], sample=bool(algo["sample"]), env_name=cfg["env_name"],
                  obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0],
                  max_transitions_per_task=algo["replay_buffer_size"], verify=algo["verify_data"])
    train = load_offline_data(algo["data_dir"], train_tasks, algo["train_epoch"], **common)
    test = load_offline_data(algo["data_dir"], test_tasks, algo["eval_epoch"], **common)
    for data in (train, test):
        check_tasks_match(data.metadata, env, data.task_ids, algo["data_dir"])
    return ExperimentData([int(t) for t in train_tasks], [int(t) for t in test_tasks],
                          MultiTaskBuffer(train, device), MultiTaskBuffer(test, device), train.obs_abs_max,
                          {"train": train.fingerprint, "test": test.fingerprint})


def run_data_fingerprint(cfg: Config, seed: int, data_dir=None) -> dict[str, str]:
    """The fingerprints (train, test) the run of ``cfg`` and ``seed`` would record on ``data_dir`` (default
    its algo_params.data_dir), from the dataset's metadata: what the reproduction runner compares before
    it resumes a run, without loading its data. ``cfg`` is resolved (no ``auto`` left), as variant.json is."""
    algo = cfg["algo_params"]
    data_dir = algo["data_dir"] if data_dir is None else data_dir
    train_tasks, test_tasks = split_tasks_from_variant(cfg, seed)
    return {split: selection_fingerprint(data_dir, tasks, algo[key], algo["n_trj"], bool(algo["sample"]))
            for split, tasks, key in (("train", train_tasks, "train_epoch"), ("test", test_tasks, "eval_epoch"))}


def check_same_data(run_dir: Path, state: dict | None, now: dict[str, str], data_dir) -> None:
    """Refuse to resume a run on data other than it was trained on (a regenerated folder, another copy).

    The run's fingerprints are its variant.json's, else its snapshot's. A run made before runs recorded
    them resumes with a one-line note: there is nothing to compare, and its fingerprint is recorded from now on.
    """
    ran = recorded_fingerprint(_read_variant(run_dir), state)
    if ran is None:
        print(f"note: {run_dir} was made before runs recorded their data's fingerprint, so whether {data_dir} holds "
              f"the data it was trained on cannot be checked; continuing on it ({describe(now)}, recorded from now on)",
              file=sys.stderr, flush=True)
        return
    differ = fingerprint_mismatch(ran, now)
    if differ:
        raise DataChanged(
            f"{run_dir} was trained on other data than {data_dir} holds now (data fingerprint {'; '.join(differ)}): "
            f"point algo_params.data_dir at the dataset it was trained on, or {START_OVER}")


class MetaTrainer:
    """Owns the trainer, the data and the logger of one run; knows no method (rlkit.trainers does)."""

    def __init__(self, cfg: Config, seed: int, device: torch.device, logger: RunLogger, data: ExperimentData):
        self.cfg, self.seed, self.device, self.logger, self.data = cfg, seed, device, logger, data
        self.algo = cfg["algo_params"]
        env = make_env(cfg["env_name"], **cfg["env_params"])
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.trainer = trainer_of(cfg).from_config(cfg, data, env, device)
        self.context_reward = run_context_reward(env, self.algo)
        self.agent = as_eval_agent(self.trainer.eval_agent())  # what the protocols roll out
        self.settings = EvalSettings.from_algo_params(self.algo)
        self.start_itr = 0
        # the authors' timing columns: the previous iteration's eval time, wall time summed over resumes
        self.prev_eval_time, self.total_time = 0.0, 0.0
        self.columns = run_columns(self.trainer.progress_columns(), self.agent.z_dim) + list(NORMALIZED.values())
        self.random_return, self.behaviour_return = self._reference_returns()

    def _reference_returns(self) -> tuple[float | None, float | None]:
        """Random-policy and best-behaviour returns on the test tasks, for the normalized-score columns."""
        if not self.algo["allow_eval"]:
            return None, None
        try:
            ref = reference_returns(self.cfg, self.seed)
        except ReferenceUnavailable as exc:
            self.logger.info(f"normalized scores: NaN ({exc})")
            return None, None
        self.logger.info(f"normalized scores: 0 = random policy {ref.random:.2f}, 100 = best behaviour checkpoint "
                         f"{ref.behaviour_best} (step {ref.behaviour_best_step}) on the test tasks")
        return ref.random, ref.behaviour_best

    # ------------------------------------------------------------------ data
    def offline_context(self, generator: torch.Generator):
        """For the offline protocol: the trainer's context rows drawn from the test tasks' data."""
        return self.trainer.offline_context(self.cfg, self.data.test, generator, self.context_reward)

    # ------------------------------------------------------------------ loop
    def resume_from(self, path: Path, state: dict | None = None) -> None:
        if state is None:
            state = load_snapshot(path)  # CPU tensors; load_state_dict moves them to the device
        self.trainer.load_state_dict(state["trainer"])
        self.start_itr = int(state["iteration"]) + 1
        self.prev_eval_time = float(state.get("eval_time", 0.0))
        self.total_time = float(state.get("total_time", 0.0))

    def warm_start(self, state: dict, path: Path) -> list[str]:
        """Initialise the networks from another run's snapshot (optimizers, alpha and counters start fresh).

        Networks the source lacks (CLUB, when it was trained without) keep their
        initialisation; a shape mismatch is a one-line error.
        """
        if (int(state.get("obs_dim", self.obs_dim)), int(state.get("act_dim", self.act_dim))) != (self.obs_dim,
                                                                                                 self.act_dim):
            raise RunDirError(f"path_to_weights: {path} is for observations/actions of size "
                              f"{state.get('obs_dim')}/{state.get('act_dim')}, not {self.obs_dim}/{self.act_dim}")
        return self.trainer.warm_start(state["trainer"], path)

    def run(self) -> None:
        n_itr, n_steps = self.algo["num_iterations"], self.algo["num_train_steps_per_itr"]
        bar = progress(range(self.start_itr, n_itr), desc="meta-train", unit="itr", initial=self.start_itr,
                       total=n_itr)
        for itr in bar:
            s = iteration_seed(self.seed, itr)
            torch.manual_seed(s)
            rng = np.random.default_rng(s)
            gen = torch.Generator(device=self.device).manual_seed(s)
            t0 = time.perf_counter()
            stats = {}
            plan = self.trainer.plan_iteration(rng, n_steps)
            updates = self.trainer.updates_per_step
            for step in range(n_steps):
                for update in range(updates):  # e.g. CSRO's one update per context chunk (the authors' loop)
                    stats = self.trainer.train_step(self.trainer.sample(plan[step], gen),
                                                    with_stats=step == n_steps - 1 and update == updates - 1)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.check_finite(stats, itr)
            train_time = time.perf_counter() - t0
            t1 = time.perf_counter()
            row = {}
            if self.algo["allow_eval"]:
                results = evaluate(self.agent, self.cfg["env_name"], self.cfg["env_params"],
                                   self.data.test_tasks, self.settings, offline_context=self.offline_context(gen),
                                   obs_absmax=self.data.obs_absmax, seed=s, device=self.device)
                row = progress_row(results)
                row.update(normalized_columns(row, self.random_return, self.behaviour_return))
                if self.cfg["util_params"]["debug"]:  # the authors' debug mode prints every task's returns
                    for name, res in results.items():
                        per_task = ", ".join(f"{t}: {r:.2f}" for t, r in zip(res.task_ids, res.final_returns()))
                        self.logger.info(f"iteration {itr} {name} final return per test task: {per_task}")
                last = results["np_online"] if "np_online" in results else next(iter(results.values()))
                if last.z is not None and last.z_var is not None:
                    row.update(eval_z_columns(last.z[-1], last.z_var[-1], int(last.task_of[-1])))
            eval_time = time.perf_counter() - t1
            self.total_time += time.perf_counter() - t0
            times = {"Number of train steps total": self.trainer.steps_done,
                     "Number of env steps total": 0, "Number of rollouts total": 0,  # offline: no collection
                     "Train Time (s)": train_time, "(Previous) Eval Time (s)": self.prev_eval_time,
                     "Epoch Time (s)": train_time + self.prev_eval_time, "Total Train Time (s)": self.total_time,
                     "Eval Time (s)": eval_time, "Epoch": itr}
            self.prev_eval_time = eval_time
            full = with_missing_as_nan({**{k: float(v) for k, v in stats.items()}, **row, **times}, self.columns)
            for key, value in full.items():  # TensorBoard tags and W&B keys: train/, eval/, time/, diagnostics/
                group = ("time" if key in times else "diagnostics" if is_eval_z_column(key)
                         else "eval" if key in row else "train")
                self.logger.record_tabular(key, value, group=group)
            self.logger.dump_tabular(itr)  # the full table goes to debug.log
            summary = ", ".join(f"{k.split('_')[1].replace('Return', '')} {row[k]:.2f}" for k in row
                                if k.startswith("Average_"))
            self.logger.info(f"iteration {itr}: {summary or 'no evaluation'} "
                             f"(train {train_time:.1f} s, eval {eval_time:.1f} s)")
            self.logger.save_iteration_snapshot(self.snapshot(itr), itr)
            if row:
                bar.set_postfix(np_online=f"{row.get('Average_NpOnlineReturn_all_test_tasks', float('nan')):.2f}")

    def check_finite(self, stats: dict, itr: int) -> None:
        """Stop on the first iteration whose losses or weights are no longer finite.

        Checked once per iteration (one host sync): the last step's statistics
        and every parameter. Nothing of this iteration is logged or saved, so
        the newest snapshot is the last good one.
        """
        bad = [k for k, v in stats.items() if not torch.isfinite(torch.as_tensor(v)).all()]
        for name, module in self.trainer.modules().items():
            params = [p for p in module.parameters() if p.numel()]
            if params and not all(torch.isfinite(p).all() for p in params):
                bad.append(f"{name} weights")
        if bad:
            last = latest_snapshot(self.logger.run_dir)
            raise TrainingDiverged(
                f"iteration {itr}: non-finite {', '.join(bad)}; stopped, the last good snapshot is "
                f"{last or 'none (nothing finished)'}. Lower the learning rates or reward_scale, or check the data "
                "(python -m rlkit.data verify)")

    def snapshot(self, itr: int) -> dict:
        return {"iteration": itr, "trainer": self.trainer.state_dict(), "config": self.cfg,
                "eval_time": self.prev_eval_time, "total_time": self.total_time,
                "train_tasks": self.data.train_tasks, "test_tasks": self.data.test_tasks,
                "obs_dim": self.obs_dim, "act_dim": self.act_dim, FINGERPRINT_KEY: dict(self.data.fingerprint),
                # a plain list: the safe loader (weights_only) accepts no numpy arrays
                "obs_absmax": None if self.data.obs_absmax is None else [float(x) for x in self.data.obs_absmax]}


def run_directory(cfg: Config, seed: int) -> Path:
    """``BASE/ENV/EXP_NAME/seedN`` of a run; EXP_NAME is ``debug`` with ``util_params.debug``, as the authors'."""
    util = cfg["util_params"]
    return run_dir_path(util["base_log_dir"], cfg["env_name"], "debug" if util["debug"] else util["exp_name"], seed)


def warm_start_state(cfg: Config, seed: int) -> tuple[Path, dict] | None:
    """The snapshot ``path_to_weights/seedN/agent_itr_K.pth`` (K = ``epoch_to_weights``, else the newest) that
    initialises a new run's networks, as the authors' launcher loads it; None without ``path_to_weights``."""
    if cfg.get("path_to_weights") is None:
        return None
    folder = Path(cfg["path_to_weights"]) / f"seed{seed}"
    if not folder.is_dir():
        raise RunDirError(f"path_to_weights: {folder} does not exist; point path_to_weights at a run's EXP_NAME "
                          "folder (the one holding seedN/)")
    snaps = numbered_snapshots(folder)
    k = cfg.get("epoch_to_weights")
    if k is None and snaps:
        k = max(snaps)
    if k is None or int(k) not in snaps:
        have = ", ".join(str(i) for i in snaps) or "none"
        raise RunDirError(f"path_to_weights: no agent_itr_{k}.pth in {folder} (snapshots there: {have}); "
                          "set epoch_to_weights to one of them")
    return snaps[int(k)], load_snapshot(snaps[int(k)])


def run_experiment(cfg: Config, seed: int, gpu: int | None = None, resume: str | None = None,
                   restart: bool = False) -> Path:
    """Meta-train (or resume) one seed; returns the run directory.

    Everything that can be checked is checked before the run directory is
    touched: the resume target, the snapshot, the settings (a resume continues
    only a run made with the same ones), the dataset. A failed start then
    leaves nothing that blocks the corrected command. ``restart`` moves a run
    already in the folder aside (rlkit.core.logger.move_aside) and starts over.

    The run computes in ``util_params.dtype``: torch's default dtype is set for
    its duration (buffers, networks, optimizers) and restored after, so the runs
    of a sweep in one process each get their own (rlkit.core.precision).
    """
    with computing_in(cfg["util_params"].get("dtype")):
        return _run_experiment(cfg, seed, gpu, resume, restart)


def _run_experiment(cfg: Config, seed: int, gpu: int | None, resume: str | None, restart: bool) -> Path:
    util = cfg["util_params"]
    check_seed(seed)
    if resume and restart:
        raise RunDirError("--resume continues a run and --restart starts it over: give one of them")
    device = run_device(bool(util["use_gpu"]), int(util["gpu_id"]), gpu)
    env = make_env(cfg["env_name"], **cfg["env_params"])
    check_memory(cfg, env.observation_space.shape[0], env.action_space.shape[0], device)
    if util.get("wandb"):
        import_wandb()  # missing: a one-line error before anything is written
    run_dir = run_directory(cfg, seed)
    exp_name = run_dir.parent.name
    snapshot_path, state, itr = None, None, None
    if resume:
        if Path(resume).resolve() != run_dir.resolve():
            raise RunDirError(f"--resume {resume} is not the directory this command writes to ({run_dir}); "
                              "give that run's --exp_name, --seed and util_params.base_log_dir")
        snapshot_path, state, skipped = newest_loadable_snapshot(resume)
        for reason in skipped:
            print(f"warning: skipping a snapshot that does not load: {reason}", file=sys.stderr)
        if snapshot_path is None:
            what = "no snapshot that loads" if skipped else "no snapshot (agent.pth / agent_itr_K.pth)"
            raise RunDirError(f"{what} in {resume}; nothing to resume: {START_OVER}")
        itr = int(state["iteration"])
        ran_in = (state.get("config") or {}).get("util_params", {}).get("dtype", "float32")
        if ran_in != util.get("dtype", "float32"):  # its rows so far and the rest would match no single run
            raise RunDirError(f"{snapshot_path} was computed in {ran_in}; resume it with util_params.dtype={ran_in}")
        check_same_settings(run_dir, cfg, state)  # before variant.json is touched
    # "auto" checkpoints / episode counts: what the dataset holds, resolved before variant.json is written
    train_tasks, test_tasks = split_tasks_from_variant(cfg, seed)
    cfg = {**cfg, "algo_params": resolve_auto(cfg["algo_params"], train_tasks, test_tasks)}
    with memory_errors_named(cfg, device):
        data = load_experiment_data(cfg, seed, device)
    if resume:  # the rest of the run trains on the data its first part was trained on, or not at all
        check_same_data(run_dir, state, data.fingerprint, cfg["algo_params"]["data_dir"])
    warm = None if resume else warm_start_state(cfg, seed)  # path_to_weights: checked before anything is written
    # variant.json: the resolved config as run, with what viskit and readers need at the top level
    variant = {**cfg, "seed": seed, "exp_name": exp_name, "device": str(device), FINGERPRINT_KEY: data.fingerprint,
               "util_params": {**util, "dtype": util.get("dtype", "float32"),
                               "use_gpu": device.type == "cuda",
                               "gpu_id": device.index if device.type == "cuda" else util["gpu_id"]}}
    if restart and run_dir.is_dir() and holds_a_run(run_dir):
        moved = move_aside(run_dir)
        print(f"--restart: the old run {run_dir} is now {moved}", file=sys.stderr, flush=True)
    logger = RunLogger.create(util["base_log_dir"], cfg["env_name"], exp_name, seed, variant,
                              resume=bool(resume), truncate_to_epoch=None if itr is None else itr + 1)
    try:
        with memory_errors_named(cfg, device):
            torch.manual_seed(seed)
            np.random.seed(seed)
            logger.info(f"device {device}; run directory {logger.run_dir}")
            logger.info(f"train tasks {data.train_tasks}; test tasks {data.test_tasks}; "
                        f"{len(data.train)} train / {len(data.test)} test transitions")
            attach_trackers(logger, variant, seed, resume=bool(resume))  # W&B config = variant.json
            job = MetaTrainer(cfg, seed, device, logger, data)
            if snapshot_path is not None:
                job.resume_from(snapshot_path, state)
                logger.info(f"resumed from {snapshot_path} at iteration {job.start_itr}")
            elif warm is not None:
                path, warm_state = warm
                loaded = job.warm_start(warm_state, path)
                logger.info(f"networks {', '.join(loaded)} initialised from {path} (path_to_weights)")
            job.run()
            if job.start_itr < cfg["algo_params"]["num_iterations"]:  # finished here: once per run
                logger.write_hparams(key_hparams(variant, seed, trainer_of(cfg).hparam_keys()),
                                     [k for k in logger.last_row if k.startswith("Average_")])
    finally:
        logger.close()
    return Path(logger.run_dir)
