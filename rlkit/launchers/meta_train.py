"""CSRO meta-training: the loop behind ``launch_experiment.py``.

One iteration = ``num_train_steps_per_itr`` steps of :class:`CSROTrainer`,
then the three evaluation protocols on the test tasks, one progress.csv row,
and a snapshot. Every iteration reseeds torch and numpy from (seed,
iteration), so a run resumed from the snapshot of iteration k produces the
same rows as one that never stopped.

Each step draws the whole meta batch's data — context, RL batch and the
extra dual-critic batches — with a single buffer call: uniform sampling with
replacement, so one draw of N + B·c_iter transitions split into parts has the
same distribution as separate draws.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
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
from rlkit.envs import ENVS, make_env
from rlkit.errors import UserError
from rlkit.evaluation.protocols import EvalSettings, evaluate, progress_row
from rlkit.evaluation.reference import ReferenceUnavailable, reference_returns
from rlkit.launchers.progress_columns import (NORMALIZED, eval_z_columns, is_eval_z_column, normalized_columns,
                                              objective_statistics, reference_columns,
                                              with_missing_as_nan)
from rlkit.torch import objectives
from rlkit.torch.csro import CSROHyperParams, CSROTrainer, MetaBatch
from rlkit.torch.networks import context_from_sample


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


def check_method_preset(algo_type: str) -> None:
    """A method preset that leaves a method-defining key open is refused (one line, naming the keys).

    The env JSON sits under the preset, so a key the preset does not fix is the env JSON's to set:
    ``use_corro: true`` in an env JSON would have made a "CSRO" run train CORRO's loss.
    """
    path = algo_presets().get(algo_type)
    if path is None:
        return  # load_config has refused an unknown algo_type already
    open_keys = objectives.preset_open_keys(read_json_object(path))
    if open_keys:
        raise ConfigError(f"method preset {str(path)!r} does not fix {', '.join(open_keys)}: a preset defines its "
                          "method, so add them to its algo_params")


def load_run_config(path, overrides=()) -> Config:
    """:func:`rlkit.config.load_config` for a training run: a known env and a closed method preset."""
    cfg = load_config(path, list(overrides), check_env=check_env_name)
    check_method_preset(cfg["algo_type"])
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


def network_memory(cfg: Config, obs_dim: int, act_dim: int, itemsize: int) -> dict[str, int]:
    """A lower bound on the bytes the networks need, by the setting that drives it.

    Counted: the first two layers of the six networks that read z (policy, two
    Q, V, target V, dual critic), each with weights, gradients and Adam's two
    moments. Real use is higher (the encoder, the other layers, activations),
    so a config refused by this bound could never have run.
    """
    latent, net = int(cfg["latent_size"]), int(cfg["net_size"])
    copies = 5 * 4 + 1  # five trained networks x (weights, gradients, 2 Adam moments) + the target network
    return {"latent_size": copies * (obs_dim + act_dim + latent) * net * itemsize,
            "net_size": copies * net * net * itemsize}


def check_memory(cfg: Config, obs_dim: int, act_dim: int, device: torch.device) -> None:
    """Refuse settings whose networks alone cannot fit in the device's memory (e.g. latent_size=1e8).

    Without it such a run allocates until the operating system kills it, or
    swaps for minutes without a line of output.
    """
    have = _device_memory(device)
    if not have:
        return
    need = network_memory(cfg, obs_dim, act_dim, torch.empty(0).element_size())
    if sum(need.values()) > have:
        key = max(need, key=need.get)
        raise NotEnoughMemory(
            f"{key}={cfg[key]} needs at least {sum(need.values()) / 2**30:,.0f} GiB for the networks, more than "
            f"the {have / 2**30:,.0f} GiB of {device}; lower {key} (the paper's configs use latent_size 20, "
            "net_size 256)")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory"))


_SIZE_SETTINGS = ("latent_size", "net_size", "algo_params.meta_batch", "algo_params.batch_size",
                  "algo_params.embedding_batch_size", "algo_params.embedding_mini_batch_size",
                  "algo_params.replay_buffer_size")


@contextlib.contextmanager
def memory_errors_named(cfg: Config, device: torch.device):
    """Turn running out of memory into one line naming the settings that size the run."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, NotEnoughMemory) or not _is_out_of_memory(exc):
            raise
        sizes = ", ".join(f"{k}={_dotted(cfg, k)}" for k in _SIZE_SETTINGS)
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


def relabelled_rows(relabel_outcomes, to_context, train_ids: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor,
                    task: torch.Tensor, row: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """[B, k, D] context rows: the (s, a) of context transition (``task[i]``, ``row[i]``) of ``obs`` /
    ``actions`` [T, N, ...] with its outcome in k of ``train_ids`` drawn uniformly (CORRO's ground-truth
    relabelling: the query's own task may be drawn, as in CORRO), from the env's closed-form step
    (``relabel_outcomes``), as the context would hold it (``to_context``: the sparse reward rule).

    The sampler binds everything but the rows (:attr:`MetaBatch.relabel`), so only the rows an
    objective asks for are relabelled: CORRO's 64 queries, not the 16 x 256 context transitions."""
    s, a = obs[task, row], actions[task, row]                                       # [B, obs], [B, act]
    pick = torch.randint(len(train_ids), (s.shape[0], k), generator=generator, device=generator.device)
    tasks = train_ids.to(obs.device)[pick.to(obs.device)]
    s = s[:, None, :].expand(-1, k, -1)
    a = a[:, None, :].expand(-1, k, -1)
    next_obs, rewards = relabel_outcomes(s, a, tasks)
    return to_context({"obs": s, "actions": a, "rewards": rewards[..., None].to(obs.dtype),
                       "next_obs": next_obs.to(obs.dtype)})


class MetaTrainer:
    """Owns the trainer, the data and the logger of one run."""

    def __init__(self, cfg: Config, seed: int, device: torch.device, logger: RunLogger, data: ExperimentData):
        self.cfg, self.seed, self.device, self.logger, self.data = cfg, seed, device, logger, data
        self.algo = cfg["algo_params"]
        env = make_env(cfg["env_name"], **cfg["env_params"])
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.context_reward = env.context_reward
        self.relabel_outcomes = env.relabel_outcomes
        self.hp = CSROHyperParams.from_config(cfg)
        self.trainer = CSROTrainer(self.obs_dim, self.act_dim, self.hp, device=device)
        if "relabel" in self.trainer.batch_fields:  # refuse before training, not at the first step
            probe = torch.zeros(1, self.obs_dim, device=device)
            self.relabel_outcomes(probe, torch.zeros(1, self.act_dim, device=device), torch.zeros(1, dtype=torch.long))
            if data.obs_absmax is not None:
                raise ConfigError("corro_negatives_from=relabel steps the env from stored states, which this dataset "
                                  "keeps normalized (obs_absmax); use algo_params.corro_negatives_from=cvae")
        self.settings = EvalSettings.from_algo_params(self.algo)
        self.start_itr = 0
        self._train_ids = np.asarray(data.train_tasks)
        # the authors' timing columns: the previous iteration's eval time, wall time summed over resumes
        self.prev_eval_time, self.total_time = 0.0, 0.0
        self.columns = (reference_columns(int(cfg["latent_size"]), self.algo, objective_statistics(self.hp))
                        + list(NORMALIZED.values()))
        self.random_return, self.behaviour_return = self._reference_returns()
        # embedding_mini_batch_size < embedding_batch_size: each step is batch // mini updates, one per context
        # chunk of mini transitions, each with its own RL batch (the authors' loop); a mini size at or above
        # the batch size is one chunk of embedding_batch_size
        self.context_size = min(self.algo["embedding_mini_batch_size"], self.algo["embedding_batch_size"])
        self.context_chunks = self.algo["embedding_batch_size"] // self.context_size

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
    def _context(self, part: dict) -> torch.Tensor:
        return context_from_sample(part, self.hp.use_next_obs_in_context,
                                   self.context_reward if self.algo["sparse_rewards"] else None)

    def draw_tasks(self, rng: np.random.Generator, n_steps: int) -> torch.Tensor:
        """[n_steps, meta_batch] task ids of an iteration's steps, uploaded to the device at once.

        One host-to-device copy per iteration instead of one per step (which
        would block the host on a GPU); the draws are the same as drawing
        before each step, since nothing else reads ``rng`` in between.
        """
        choices = [rng.choice(self._train_ids, self.algo["meta_batch"], replace=self.algo["mb_replace"])
                   for _ in range(n_steps)]
        return torch.as_tensor(np.asarray(choices, dtype=np.int64).reshape(n_steps, self.algo["meta_batch"]), device=self.device)

    def sample_meta_batch(self, task_ids: torch.Tensor, generator: torch.Generator) -> MetaBatch:
        """The step's context, RL batch and extra dual-critic batches for ``task_ids`` [meta_batch]."""
        n, b, c = self.context_size, self.algo["batch_size"], self.hp.c_iter
        extra = (c - 1) if self.trainer.trains_dual_critic else 0
        sample = self.data.train.sample(task_ids, n + b * (1 + extra), generator=generator)
        split = lambda key, lo, hi: sample[key][:, lo:hi]  # noqa: E731
        ctx = self._context({k: split(k, 0, n) for k in ("obs", "actions", "rewards", "next_obs")})
        rl = {k: split(k, n, n + b) for k in ("obs", "actions", "rewards", "next_obs", "terminals")}
        batch = MetaBatch(task_ids=task_ids, context=ctx, **rl)
        if "relabel" in self.trainer.batch_fields:
            batch.relabel = functools.partial(
                relabelled_rows, self.relabel_outcomes, self._context, torch.as_tensor(self._train_ids),
                split("obs", 0, n), split("actions", 0, n), generator=generator)
        if extra:
            t = task_ids.shape[0]
            batch.extra_obs = split("obs", n + b, None).reshape(t, extra, b, -1).transpose(0, 1)
            batch.extra_actions = split("actions", n + b, None).reshape(t, extra, b, -1).transpose(0, 1)
        return batch

    def offline_context(self, generator: torch.Generator):
        """For the offline protocol: ``n`` uniform transitions of each test task's data."""

        def fn(task_ids: torch.Tensor, n: int) -> torch.Tensor:
            return self._context(self.data.test.sample(task_ids, n, generator=generator))

        return fn

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
        nets = state["trainer"]["networks"]
        loaded = []
        for name, module in self.trainer.modules().items():
            if name in nets:
                try:
                    module.load_state_dict(nets[name])
                except RuntimeError as exc:
                    raise RunDirError(f"path_to_weights: {name} in {path} does not fit this config "
                                      f"({str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc}); "
                                      "use the same latent_size, net_size and encoder settings") from None
                loaded.append(name)
        return loaded

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
            task_table = self.draw_tasks(rng, n_steps)
            chunks = self.context_chunks
            for step in range(n_steps):
                for chunk in range(chunks):  # the authors' embedding_mini_batch_size: one update per context chunk
                    stats = self.trainer.train_step(self.sample_meta_batch(task_table[step], gen),
                                                    with_stats=step == n_steps - 1 and chunk == chunks - 1)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.check_finite(stats, itr)
            train_time = time.perf_counter() - t0
            t1 = time.perf_counter()
            row = {}
            if self.algo["allow_eval"]:
                results = evaluate(self.trainer.agent, self.cfg["env_name"], self.cfg["env_params"],
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
            times = {"Number of train steps total": self.trainer.num_steps // self.context_chunks,
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
                logger.write_hparams(key_hparams(variant, seed, objectives.method_keys()), [k for k in logger.last_row if k.startswith("Average_")])
    finally:
        logger.close()
    return Path(logger.run_dir)
