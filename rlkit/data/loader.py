"""Select and load offline data (native or reference layout) into flat NumPy arrays.

The selection is the reference's (``OfflineMetaRLAlgorithm.init_buffer``): for
every requested task, the behaviour checkpoints ``range(e0, e1, e2)``
(``train_epoch`` / ``eval_epoch``), and in each the episodes ``k < n_trj``,
sampled ones when ``sample`` is 1, deterministic ones otherwise. Transitions are
concatenated in the reference's order: task, then checkpoint, then k, then time.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import os
import shlex
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rlkit.core.logger import json_roundtrip
from rlkit.data._io import VerifiedStamp  # noqa: F401 (its home before the Minari cache used it too)
from rlkit.data.errors import DatasetError
from rlkit.data.fingerprint import data_fingerprint
from rlkit.errors import config_argument, ignore_interrupts, tool_command
from rlkit.fileio import lock_holder
from rlkit.data.selection import describe_counts, episode_counts, resolve_auto_from, wants_auto
from rlkit.data.legacy import (
    is_legacy_dataset,
    legacy_columns,
    legacy_filename,
    legacy_task_dirname,
    legacy_task_dirs,
    parse_legacy_filename,
    read_legacy_bytes,
)
from rlkit.data.minari_format import MinariSource, is_minari_ref
from rlkit.data.normalizer import abs_max_of, load_normalizer, normalizer_path
from rlkit.data.native import (
    GENERATOR_STATE_DIR,
    GROUPS,
    METADATA_FILE,
    checkpoint_relpath,
    episode_table,
    read_checkpoint_file,
    read_metadata,
    record_dtype,
)


@dataclass(repr=False)
class OfflineData:
    """The selected transitions of several tasks, back to back in flat arrays.

    Task ``task_ids[j]`` owns rows ``task_offsets[j]:task_offsets[j+1]``;
    episode ``e`` owns rows ``episode_offsets[e]:episode_offsets[e+1]``.

    Flags (all [N] bool):

    * ``terminals``: true terminals (a fall). For the reference layout, which
      stores none, this equals ``episode_ends`` (what the reference's loader
      marks) and ``terminals_known`` is False.
    * ``timeouts``: the time limit ended the episode here (native only).
    * ``episode_ends``: last row of each episode — the reference treats every
      one of them as terminal in its Q target (a quirk; see
      :class:`rlkit.data.MultiTaskBuffer` ``terminal_mode``).
    """

    task_ids: np.ndarray  # [K] int64, global task ids in load order
    obs: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, act_dim] float32
    rewards: np.ndarray  # [N] float32
    next_obs: np.ndarray  # [N, obs_dim] float32
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool
    episode_ends: np.ndarray  # [N] bool
    task_offsets: np.ndarray  # [K+1] int64
    episode_offsets: np.ndarray  # [E+1] int64
    episode_task: np.ndarray  # [E] int64 (global task id)
    episode_step: np.ndarray  # [E] int64 (behaviour checkpoint)
    episode_sampled: np.ndarray  # [E] bool
    episode_index: np.ndarray  # [E] int64 (k)
    layout: str = "native"  # "native", "legacy" or "minari"
    terminals_known: bool = True
    obs_abs_max: np.ndarray | None = None  # set when obs / next_obs were divided by it
    data_dir: str = ""
    metadata: dict = field(default_factory=dict)
    # what the selection is made of (rlkit.data.fingerprint): one identity per file read, in load order,
    # and their fingerprint with the generator settings and the normalizer (set by load_offline_data)
    sources: list = field(default_factory=list)
    fingerprint: str = ""

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_tasks(self) -> int:
        return len(self.task_ids)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_task)

    def __len__(self) -> int:
        return len(self.obs)

    def __repr__(self) -> str:
        return (f"OfflineData({self.layout}, {self.num_tasks} tasks, {len(self)} transitions, "
                f"{self.num_episodes} episodes, obs {self.obs_dim}, act {self.act_dim}, from {self.data_dir!r})")

    def position(self, task_id: int) -> int:
        hit = np.flatnonzero(self.task_ids == int(task_id))
        if hit.size == 0:
            raise DatasetError(f"task {task_id} is not in this data (loaded tasks: {self.task_ids.tolist()})")
        return int(hit[0])

    def task_slice(self, task_id: int) -> slice:
        j = self.position(task_id)
        return slice(int(self.task_offsets[j]), int(self.task_offsets[j + 1]))

    def num_transitions(self, task_id: int) -> int:
        s = self.task_slice(task_id)
        return s.stop - s.start

    def transitions(self, task_id: int) -> dict[str, np.ndarray]:
        """Views of one task's rows."""
        s = self.task_slice(task_id)
        return {k: getattr(self, k)[s] for k in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts",
                                                  "episode_ends")}

    def episode_bounds(self, task_id: int) -> np.ndarray:
        """[n_episodes, 2] (start, stop) global rows of one task's episodes."""
        sel = np.flatnonzero(self.episode_task == int(task_id))
        return np.stack([self.episode_offsets[sel], self.episode_offsets[sel + 1]], axis=1)

    def with_capacity(self, capacity: int) -> "OfflineData":
        """What the reference's per-task ring buffer of ``capacity`` (``replay_buffer_size``) keeps.

        Tasks with more rows keep only their last ``capacity`` (the buffer wraps
        and overwrites the oldest); an episode cut in two keeps its tail.
        """
        capacity = int(capacity)
        sizes = np.diff(self.task_offsets)
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if np.all(sizes <= capacity):
            return self
        keep = np.ones(len(self), bool)
        for j, n in enumerate(sizes):
            if n > capacity:
                keep[self.task_offsets[j]: self.task_offsets[j + 1] - capacity] = False
        new_index = np.cumsum(keep) - 1
        starts, stops = self.episode_offsets[:-1], self.episode_offsets[1:]
        kept_rows = np.add.reduceat(keep.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
        # reduceat over empty episodes never happens (episodes have >= 1 row)
        ep_keep = kept_rows > 0
        new_stops = new_index[stops[ep_keep] - 1] + 1
        new_starts = new_stops - kept_rows[ep_keep]
        new_sizes = np.minimum(sizes, capacity)
        return replace(
            self,
            obs=self.obs[keep], actions=self.actions[keep], rewards=self.rewards[keep],
            next_obs=self.next_obs[keep], terminals=self.terminals[keep], timeouts=self.timeouts[keep],
            episode_ends=self.episode_ends[keep],
            task_offsets=np.concatenate([[0], np.cumsum(new_sizes)]).astype(np.int64),
            episode_offsets=np.concatenate([new_starts[:1], new_stops]).astype(np.int64)
            if ep_keep.any() else np.zeros(1, np.int64),
            episode_task=self.episode_task[ep_keep], episode_step=self.episode_step[ep_keep],
            episode_sampled=self.episode_sampled[ep_keep], episode_index=self.episode_index[ep_keep],
        )


# ---- selection ----------------------------------------------------------------------


def checkpoint_steps(spec: Any) -> list[int]:
    """Checkpoint steps selected by a ``train_epoch`` / ``eval_epoch`` value.

    ``[e0, e1, e2]`` means ``range(e0, e1, e2)`` (the reference); a single number
    means that one checkpoint; a ``range`` is taken as is.
    """
    if isinstance(spec, range):
        steps = list(spec)
    elif isinstance(spec, (list, tuple, np.ndarray)):
        if len(spec) != 3:
            raise DatasetError(f"epoch selection must be [start, stop, step], got {list(spec)}")
        e0, e1, e2 = (_as_int(x, "epoch selection") for x in spec)
        if e2 <= 0:
            raise DatasetError(f"epoch selection step must be positive, got {list(spec)}")
        steps = list(range(e0, e1, e2))
    else:
        steps = [_as_int(spec, "epoch selection")]
    if not steps:
        raise DatasetError(f"epoch selection {spec!r} selects no checkpoint")
    if min(steps) < 0:
        raise DatasetError(f"epoch selection {spec!r} selects a negative checkpoint")
    return steps


def _as_int(x: Any, what: str) -> int:
    if isinstance(x, (bool, np.bool_)):
        raise DatasetError(f"{what}: expected an integer, got {x!r}")
    if isinstance(x, (float, np.floating)):
        if not float(x).is_integer():
            raise DatasetError(f"{what}: expected an integer, got {x!r}")
        return int(x)
    try:
        return int(x)
    except (TypeError, ValueError):
        raise DatasetError(f"{what}: expected an integer, got {x!r}") from None


def detect_layout(data_dir: str | os.PathLike, env_name: str | None = None) -> str:
    """"native" (``dataset.json`` present), "legacy" (``goal_idx*`` folders) or "minari"
    (``minari:NAMESPACE`` or a Minari namespace folder); else a clear error."""
    if is_minari_ref(data_dir):
        return "minari"
    root = Path(data_dir)
    if root.exists() and not root.is_dir():  # "does not exist" would send the user looking for a typo
        raise DatasetError(f"{root} is a file, not a dataset folder: point algo_params.data_dir at the folder that "
                           f"holds {METADATA_FILE} (or the reference's goal_idx* folders)")
    if not root.is_dir():
        raise DatasetError(
            f"offline dataset folder {root} does not exist: generate it with {_generate_cmd(root, env_name)} "
            "or point algo_params.data_dir at an existing dataset"
        )
    if (root / METADATA_FILE).exists():
        return "native"
    if is_legacy_dataset(root):
        return "legacy"
    raise DatasetError(
        f"{root} holds no offline dataset (neither {METADATA_FILE} nor goal_idx* folders): "
        f"generate it with {_generate_cmd(root, env_name)}"
    )


def dataset_metadata(data_dir: str | os.PathLike) -> dict:
    """The ``dataset.json`` contents (header and file table) that a native dataset or a Minari namespace
    records; the reference layout records none, which is said in one line."""
    layout = detect_layout(data_dir)
    if layout == "minari":
        return MinariSource(data_dir).metadata
    if layout == "native":
        return read_metadata(data_dir)
    raise DatasetError(f"{data_dir} is in the reference layout, which records no checkpoints or episode counts: "
                       "give train_epoch / eval_epoch / n_trj explicitly, or convert it once with "
                       f"python -m rlkit.data convert {data_dir} DIR --to native and train on DIR")


def resolve_auto(algo: dict, train_tasks: Sequence[int], test_tasks: Sequence[int]) -> dict:
    """``algo_params`` with every ``auto`` of train_epoch / eval_epoch / n_trj replaced from what the
    dataset at ``algo["data_dir"]`` records (rlkit.data.selection), native or Minari alike."""
    if not wants_auto(algo):
        return algo
    meta = dataset_metadata(algo["data_dir"])
    return resolve_auto_from(algo, meta["files"], str(algo["data_dir"]), train_tasks, test_tasks)


def _generate_cmd(root: Path, env_name: str | None, meta: dict | None = None, tasks: Sequence[int] = ()) -> str:
    """The command that writes a dataset at ``root`` (the env's config when the env is known).

    For a dataset that exists, the command that *continues* it: the generator refuses to add
    checkpoints made under other settings, so a hint without the preset, seed and overrides the
    dataset was made with would end in that refusal (whose only other ways out are another folder
    or deleting the data). Datasets record them in ``generator_config`` (``overrides`` since
    2026-12); for older ones the hint says where the settings are."""
    gen = (meta or {}).get("generator_config") or {}
    made_with: list[str] = []
    if isinstance(gen.get("preset"), str):
        made_with = ["--preset", gen["preset"], "--seed", str(gen.get("seed", 0))]
    tail = [str(o) for o in gen.get("overrides", [])] if isinstance(gen.get("overrides"), list) else []
    only = ["--tasks", ",".join(str(int(t)) for t in tasks)] if len(tasks) else []  # a job never rewrites others'
    cmd = [*tool_command("generate"), "--config", config_argument(env_name), *made_with, *only, "--data_dir", str(root),
           *tail]
    note = "" if not gen or "overrides" in gen else (
        f" (with the settings it was made with: generator_config in {root / METADATA_FILE})")
    return f"`{shlex.join(cmd)}`{note}"


def _preview(items: Sequence[Any], n: int = 6) -> str:
    items = list(items)
    head = ", ".join(str(x) for x in items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _norm_tasks(tasks: Any) -> np.ndarray:
    t = np.asarray(list(tasks) if not isinstance(tasks, np.ndarray) else tasks).reshape(-1)
    if t.size == 0:
        raise DatasetError("no tasks selected")
    if not np.issubdtype(t.dtype, np.integer):
        if np.all(np.mod(t, 1) == 0):
            t = t.astype(np.int64)
        else:
            raise DatasetError(f"task ids must be integers, got {t.tolist()}")
    t = t.astype(np.int64)
    if len(np.unique(t)) != len(t):
        raise DatasetError(f"task ids repeat: {t.tolist()}")
    if t.min() < 0:
        raise DatasetError(f"task ids must be >= 0, got {t.tolist()}")
    return t


# ---- loading ------------------------------------------------------------------------


def load_offline_data(
    data_dir: str | os.PathLike,
    tasks: Sequence[int] | np.ndarray,
    epochs: Any,
    n_trj: int,
    sample: bool | int = True,
    *,
    obs_dim: int | None = None,
    act_dim: int | None = None,
    env_name: str | None = None,
    normalize: bool | None = None,
    verify: bool = False,
    max_transitions_per_task: int | None = None,
    workers: int | None = None,
) -> OfflineData:
    """Load the reference's selection of a dataset, native or reference layout (auto-detected).

    Args:
        data_dir: the dataset folder (``algo_params.data_dir``), or a Minari
            namespace: ``minari:NAMESPACE`` (under ``MINARI_DATASETS_PATH``) or
            its folder, read as the native dataset it was converted from.
        tasks: global task ids, e.g. the train tasks from :func:`rlkit.data.split_tasks`.
        epochs: ``train_epoch`` / ``eval_epoch``: ``[e0, e1, e2]`` → checkpoints ``range(e0, e1, e2)``.
        n_trj: episodes ``k < n_trj`` per checkpoint.
        sample: sampled (stochastic) episodes if true, deterministic ones otherwise.
        obs_dim, act_dim: the env's dims; a mismatch with the data is an error.
        env_name: the config's env name; checked against a native dataset and
            used in error messages.
        normalize: divide obs and next_obs by ``normalizer.npz``'s ``abs_max``.
            None: if the file exists; True: require it; False: never.
        verify: check SHA-256 checksums (native; sizes are always checked).
        max_transitions_per_task: the reference's per-task buffer capacity
            (``replay_buffer_size``); a task with more keeps its last ones,
            with a warning. None keeps everything.
        workers: processes that read a reference-layout dataset (unpickling
            is CPU-bound and holds the GIL). None: half the available CPUs, at
            most 4, for selections of 4,000 files or more, else 1.
    """
    layout = detect_layout(data_dir, env_name)
    source = MinariSource(data_dir) if layout == "minari" else None
    root = Path(data_dir) if source is None else source.root
    task_ids = _norm_tasks(tasks)
    steps = checkpoint_steps(epochs)
    n_trj = int(n_trj)
    if n_trj < 1:
        raise DatasetError(f"n_trj must be >= 1, got {n_trj}")
    if layout == "legacy":
        data = _load_legacy(root, task_ids, steps, n_trj, bool(sample), env_name, workers)
    else:
        data = _load_native(root, task_ids, steps, n_trj, bool(sample), env_name, verify, source)
    _check_dims(data, root, obs_dim, act_dim)
    check_finite(data, root)
    data = _apply_normalizer(data, root, normalize, source)
    data.fingerprint = data_fingerprint(data.sources, data.metadata.get("generator_config"), data.obs_abs_max)
    if max_transitions_per_task is not None:
        sizes = np.diff(data.task_offsets)
        if np.any(sizes > max_transitions_per_task):
            over = [int(t) for t, n in zip(data.task_ids, sizes) if n > max_transitions_per_task]
            warnings.warn(
                f"tasks {_preview(over)} have more than replay_buffer_size={max_transitions_per_task} transitions; "
                "keeping the last ones as the reference's ring buffer does",
                stacklevel=2,
            )
            data = data.with_capacity(max_transitions_per_task)
    return data


def selection_fingerprint(data_dir: str | os.PathLike, tasks: Sequence[int] | np.ndarray, epochs: Any, n_trj: int,
                          sample: bool | int = True) -> str:
    """The fingerprint :func:`load_offline_data` gives this selection (rlkit.data.fingerprint), without loading it.

    Native and Minari data: from the metadata alone (no data file is read). The reference layout:
    each selected file is read and hashed. A selected file that is missing counts as ``None``, so the
    fingerprint differs from any that was loaded.
    """
    layout = detect_layout(data_dir)
    source = MinariSource(data_dir) if layout == "minari" else None
    root = Path(data_dir) if source is None else source.root
    task_ids, steps = _norm_tasks(tasks), checkpoint_steps(epochs)
    if layout == "legacy":
        files, generator_config = [], None
        for task in task_ids:
            folder = root / legacy_task_dirname(int(task))
            for step in steps:
                for k in range(int(n_trj)):
                    name = legacy_filename(k, step, bool(sample))
                    try:
                        files.append(_legacy_identity(folder, name, (folder / name).read_bytes()))
                    except FileNotFoundError:
                        files.append([f"{folder.name}/{name}", None, None])
    else:
        meta = read_metadata(root) if source is None else source.metadata
        entries = meta["files"]
        files = [[rel, (entries.get(rel) or {}).get("sha256")]
                 for rel in (checkpoint_relpath(int(t), s) for t in task_ids for s in steps)]
        generator_config = meta.get("generator_config")
    abs_max = source.abs_max if source is not None else load_normalizer(root)
    return data_fingerprint(files, generator_config, abs_max)


def check_finite(data: OfflineData, root: Path) -> None:
    """Refuse NaN or infinite observations, actions or rewards, naming where the first one is.

    Training on such data runs to the end with every loss NaN; one vectorised
    pass over the loaded arrays costs a few milliseconds.
    """
    for name, arr in (("observation", data.obs), ("action", data.actions), ("reward", data.rewards),
                      ("next observation", data.next_obs)):
        bad = ~np.isfinite(arr)
        if bad.ndim > 1:
            bad = bad.any(axis=tuple(range(1, bad.ndim)))
        if bad.any():
            row = int(np.argmax(bad))
            e = int(np.searchsorted(data.episode_offsets, row, side="right") - 1)
            where = (f"task {int(data.episode_task[e])}, checkpoint {int(data.episode_step[e])}, "
                     f"{'sampled' if data.episode_sampled[e] else 'deterministic'} episode "
                     f"{int(data.episode_index[e])}, step {row - int(data.episode_offsets[e])}")
            raise DatasetError(f"{root}: non-finite {name} ({arr[row].tolist()}) in {where}; "
                               f"{int(bad.sum())} row(s) affected: regenerate that checkpoint")


def _check_dims(data: OfflineData, root: Path, obs_dim: int | None, act_dim: int | None) -> None:
    for what, want, got in (("observation", obs_dim, data.obs_dim), ("action", act_dim, data.act_dim)):
        if want is not None and int(want) != got:
            raise DatasetError(
                f"{root} has {what} dim {got} but the env has {int(want)}: the data was made for another env "
                "or env_params; point data_dir at the right dataset or regenerate it"
            )


def _apply_normalizer(data: OfflineData, root: Path, normalize: bool | None,
                      source: MinariSource | None = None) -> OfflineData:
    if normalize is False:
        return data
    if source is not None:  # the normalizer of the native dataset it was converted from
        abs_max = source.abs_max
        if abs_max is not None and abs_max.shape != (data.obs_dim,):
            raise DatasetError(f"{source.label}: csro_obs_abs_max has {abs_max.size} values for "
                               f"{data.obs_dim} observation dims; convert the dataset again")
    else:
        abs_max = load_normalizer(root, data.obs_dim)
    if abs_max is None:
        if normalize:
            raise DatasetError(
                f"normalize=True but {normalizer_path(root)} does not exist: "
                f"create it with `python -m rlkit.data normalizer {root}`"
                + (" and convert that dataset to Minari again" if source is not None else "")
            )
        return data
    scale = abs_max.astype(np.float32)
    np.divide(data.obs, scale, out=data.obs)
    np.divide(data.next_obs, scale, out=data.next_obs)
    data.obs_abs_max = abs_max
    return data


def _generators_at_work(root: Path) -> list[str]:
    """The processes generating into ``root`` now (their locks in the generator's state folder)."""
    return sorted({h for lock in sorted((Path(root) / GENERATOR_STATE_DIR).glob("state_*.lock"))
                   if (h := lock_holder(lock)) is not None})


def _missing_error(root: Path, env_name: str | None, missing_tasks, missing_ckpts, short, n_trj, group,
                   cmd: str | None = None, available: str = "", meta: dict | None = None) -> None:
    there = f"; {available}" if available else ""
    busy = _generators_at_work(root) if (missing_tasks or missing_ckpts) else []
    if busy:  # not a broken dataset: one still being written, which a run must not start on
        unfinished = sorted({int(t) for t in missing_tasks} | {int(t) for t, _ in missing_ckpts})
        raise DatasetError(
            f"{root} is still being generated (process {', '.join(busy)}): tasks {_preview(unfinished)} do not "
            "have every selected checkpoint yet; train once the generator has finished, or on another dataset")
    if missing_tasks:
        raise DatasetError(
            f"{root} has no data for tasks {_preview(missing_tasks)}: generate them with "
            f"{cmd or _generate_cmd(root, env_name, meta, missing_tasks)}"
        )
    cmd = cmd or _generate_cmd(root, env_name, meta)
    if missing_ckpts:
        raise DatasetError(
            f"{root} lacks {len(missing_ckpts)} selected checkpoints (task, step): {_preview(missing_ckpts)}; "
            f"finish generating them with {cmd} (with the tasks of the job that made them: it resumes) or narrow "
            f"train_epoch/eval_epoch (or set them to auto){there}"
        )
    if short:
        raise DatasetError(
            f"{root} has fewer than n_trj={n_trj} {group} episodes at {len(short)} checkpoints "
            f"(task, step, have): {_preview(short)}; lower n_trj (or set it to auto) or regenerate them with {cmd}{there}"
        )


class _Builder:
    """Collects selected episodes and assembles an :class:`OfflineData`."""

    def __init__(self):
        self.ep_task, self.ep_step, self.ep_sampled, self.ep_index, self.ep_len = [], [], [], [], []
        self.task_sizes = []

    def episodes(self, task, step, sampled, index, lengths):
        n = len(lengths)
        self.ep_task.append(np.full(n, task, np.int64))
        self.ep_step.append(np.full(n, step, np.int64))
        self.ep_sampled.append(np.full(n, sampled, bool))
        self.ep_index.append(np.asarray(index, np.int64))
        self.ep_len.append(np.asarray(lengths, np.int64))

    def tables(self):
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        lengths = cat(self.ep_len, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return (cat(self.ep_task, np.int64), cat(self.ep_step, np.int64), cat(self.ep_sampled, bool),
                cat(self.ep_index, np.int64), offsets)


def _episode_ends(offsets: np.ndarray, n: int) -> np.ndarray:
    ends = np.zeros(n, bool)
    ends[offsets[1:] - 1] = True
    return ends


def _data_env(env_name: str) -> str | None:
    """The env whose datasets ``env_name`` may train on (rlkit.envs.offline_data_env); None if unknown."""
    from rlkit.envs import UnknownEnvError, offline_data_env

    try:
        return offline_data_env(env_name)
    except UnknownEnvError:
        return None


def _load_native(root, task_ids, steps, n_trj, sample, env_name, verify, source=None) -> OfflineData:
    """A native dataset's selection; with ``source`` (a :class:`MinariSource`), the same from its Minari copy."""
    meta = read_metadata(root) if source is None else source.metadata
    if env_name is not None and meta.get("env_name") not in (None, env_name, _data_env(env_name)):
        raise DatasetError(
            f"{root} holds a {meta.get('env_name')!r} dataset, not {env_name!r}: point data_dir at the right folder "
            "(for a converted dataset with the wrong name, convert again with --env-name)"
        )
    files = meta["files"]
    have_tasks = {int(e["task"]) for e in files.values()}
    group = GROUPS[int(sample)]
    missing_tasks = [int(t) for t in task_ids if int(t) not in have_tasks]
    missing_ckpts, short, plan = [], [], []
    build = _Builder()
    want = np.arange(n_trj)
    for task in task_ids:
        task = int(task)
        if task not in have_tasks:
            continue
        size = 0
        for step in steps:
            rel = checkpoint_relpath(task, step)
            entry = files.get(rel)
            if entry is None:
                missing_ckpts.append((task, step))
                continue
            sampled, index, length = episode_table(entry)
            starts = np.concatenate([[0], np.cumsum(length)[:-1]])
            sel = np.flatnonzero((sampled == sample) & (index < n_trj))
            sel = sel[np.argsort(index[sel], kind="stable")]
            if not np.array_equal(index[sel], want):
                short.append((task, step, len(np.unique(index[sel]))))
                continue
            plan.append((rel, entry, starts[sel], length[sel]))
            build.episodes(task, step, sample, index[sel], length[sel])
            size += int(length[sel].sum())
        build.task_sizes.append(size)
    cmd = None if source is None else ("a native dataset that has them, converted with "
                                       "`python -m rlkit.data convert DIR minari:NS --to minari`")
    available = ""
    if (missing_ckpts or short) and source is None:
        available = describe_counts(episode_counts(files, [t for t in task_ids if int(t) in have_tasks], sample),
                                    sample)
    _missing_error(root, env_name, missing_tasks, missing_ckpts, short, n_trj, group, cmd, available, meta)

    ep_task, ep_step, ep_sampled, ep_index, ep_offsets = build.tables()
    n = int(ep_offsets[-1])
    od, ad = int(meta["obs_dim"]), int(meta["act_dim"])
    dtype = record_dtype(od, ad)
    out = {
        "obs": np.empty((n, od), np.float32), "action": np.empty((n, ad), np.float32),
        "reward": np.empty(n, np.float32), "next_obs": np.empty((n, od), np.float32),
        "terminal": np.empty(n, bool), "timeout": np.empty(n, bool),
    }
    pos = 0
    stamp = VerifiedStamp(root) if verify and source is None else None
    for rel, entry, starts, lengths in plan:
        if source is not None:
            rec = source.records(rel, entry, dtype, verify=verify)
        else:
            need_hash = stamp is not None and not stamp.covers(rel, entry)
            rec = read_checkpoint_file(root, entry, rel, expected_dtype=dtype, verify=need_hash)
            if need_hash:
                stamp.add(rel, entry)
        # Copy runs of adjacent episodes at once (normally the whole group is one run).
        run_breaks = np.flatnonzero(starts[1:] != starts[:-1] + lengths[:-1]) + 1
        for a_i, b_i in zip(np.concatenate([[0], run_breaks]), np.concatenate([run_breaks, [len(starts)]])):
            a = int(starts[a_i])
            b = int(starts[b_i - 1] + lengths[b_i - 1])
            chunk = rec[a:b]
            expect_k = np.repeat(np.arange(a_i, b_i), lengths[a_i:b_i])  # k == position in sel (0..n_trj-1)
            if not (np.all(chunk["sampled"] == sample) and np.array_equal(chunk["episode"], expect_k)):
                raise DatasetError(
                    f"{root / rel}: rows do not match dataset.json's episode table; delete it and regenerate it"
                )
            m = b - a
            for name in out:
                out[name][pos:pos + m] = chunk[name]
            pos += m
    if stamp is not None:
        stamp.save()
    if source is not None:
        source.save_stamp()
    terminals = out["terminal"]
    return OfflineData(
        task_ids=task_ids, obs=out["obs"], actions=out["action"], rewards=out["reward"], next_obs=out["next_obs"],
        terminals=terminals, timeouts=out["timeout"], episode_ends=_episode_ends(ep_offsets, n),
        task_offsets=np.concatenate([[0], np.cumsum(build.task_sizes)]).astype(np.int64),
        episode_offsets=ep_offsets, episode_task=ep_task, episode_step=ep_step, episode_sampled=ep_sampled,
        episode_index=ep_index, layout="native" if source is None else source.layout, terminals_known=True,
        data_dir=str(root) if source is None else source.label,
        metadata={k: v for k, v in meta.items() if k != "files"},
        sources=[[rel, entry["sha256"]] for rel, entry, _, _ in plan],
    )


def _read_legacy_task(folder: str, steps, n_trj: int, sample: bool):
    """(episode lengths, (obs, actions, rewards, next_obs), identities) of one task's selected legacy files.

    The identities (name, size, SHA-256 of the bytes just read) make the fingerprint; hashing here
    costs no second read of the data."""
    arrays, paths, ids = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # NumPy 1.x pickles name numpy.core
        for step in steps:
            for k in range(n_trj):
                path = os.path.join(folder, legacy_filename(k, step, sample))
                try:
                    with open(path, "rb") as f:
                        buf = f.read()
                except FileNotFoundError:
                    raise DatasetError(f"{path} disappeared while loading; rerun") from None
                arrays.append(read_legacy_bytes(buf, path))
                paths.append(path)
                ids.append(_legacy_identity(folder, os.path.basename(path), buf))
    # Converting per task keeps the Python objects of only one task alive at a time.
    return [len(a) for a in arrays], legacy_columns(arrays, paths), ids


def _legacy_identity(folder: str | os.PathLike, name: str, buf: bytes) -> list:
    """``[goal_idxI/NAME, size, sha256]`` of one reference-layout file (rlkit.data.fingerprint)."""
    return [f"{os.path.basename(os.fspath(folder))}/{name}", len(buf), hashlib.sha256(buf).hexdigest()]


def _map_tasks(fn, jobs: list, workers: int | None):
    """``map(fn, jobs)``, in worker processes when that pays off (unpickling holds the GIL)."""
    n_files = sum(len(j[1]) * j[2] for j in jobs)
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Half the CPUs, at most 4: on a 2-core machine shared with training the
        # pool measured no faster than one process; on bigger machines it is.
        workers = min(cpus // 2, 4) if n_files >= 4000 else 1
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1 or not sys.platform.startswith("linux") or mp.current_process().daemon:
        return map(fn, *zip(*jobs)) if jobs else iter(())
    # fork (Linux only): workers start in milliseconds and need nothing
    # re-imported; they run only NumPy and pickle code, as torch's own
    # DataLoader workers do after a fork.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a multi-threaded process
        # initializer: Ctrl-C reaches the workers too (the terminal signals the whole group); the command
        # alone handles it, else an idle worker prints a KeyboardInterrupt traceback of its own
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=ignore_interrupts) as ex:
            return list(ex.map(fn, *zip(*jobs)))


def _load_legacy(root, task_ids, steps, n_trj, sample, env_name, workers=None) -> OfflineData:
    dirs = legacy_task_dirs(root)
    missing_tasks = [int(t) for t in task_ids if int(t) not in dirs]
    missing_ckpts, short = [], []
    for task in task_ids:
        task = int(task)
        if task not in dirs:
            continue
        names = set(os.listdir(dirs[task]))
        for step in steps:
            have = sum(legacy_filename(k, step, sample) in names for k in range(n_trj))
            if have == 0:
                missing_ckpts.append((task, step))
            elif have < n_trj:
                short.append((task, step, have))
    _missing_error(root, env_name, missing_tasks, missing_ckpts, short, n_trj, GROUPS[int(sample)])

    build = _Builder()
    cols: list[list[np.ndarray]] = [[], [], [], []]
    sources: list = []
    jobs = [(os.path.join(root, legacy_task_dirname(int(t))), steps, n_trj, sample) for t in task_ids]
    for task, (lengths, columns, ids) in zip(task_ids, _map_tasks(_read_legacy_task, jobs, workers)):
        sources += ids
        for step_i, step in enumerate(steps):
            build.episodes(int(task), step, sample, np.arange(n_trj), lengths[step_i * n_trj:(step_i + 1) * n_trj])
        for c, col in zip(cols, columns):
            c.append(col)
        build.task_sizes.append(int(sum(lengths)))
    for name, c in zip(("observation", "action", "reward", "next observation"), cols):
        dims = sorted({x.shape[1:] for x in c})
        if len(dims) > 1:
            raise DatasetError(f"{root}: tasks disagree on {name} dims {dims}; the folder mixes datasets: regenerate it")
    obs, act, rew, nxt = (np.concatenate(c) for c in cols)
    ep_task, ep_step, ep_sampled, ep_index, ep_offsets = build.tables()
    n = len(obs)
    ends = _episode_ends(ep_offsets, n)
    return OfflineData(
        task_ids=task_ids, obs=obs, actions=act, rewards=rew, next_obs=nxt,
        terminals=ends.copy(), timeouts=np.zeros(n, bool), episode_ends=ends,
        task_offsets=np.concatenate([[0], np.cumsum(build.task_sizes)]).astype(np.int64),
        episode_offsets=ep_offsets, episode_task=ep_task, episode_step=ep_step, episode_sampled=ep_sampled,
        episode_index=ep_index, layout="legacy", terminals_known=False, data_dir=str(root),
        metadata={"env_name": env_name}, sources=sources,
    )


# ---- whole-dataset iteration (normalizer, info, conversion) ---------------------------


def iter_all_transitions(data_dir: str | os.PathLike) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(obs, next_obs) of every file of a dataset (all tasks, checkpoints, episodes), file by file."""
    root = Path(data_dir)
    layout = detect_layout(data_dir)
    if layout == "minari":
        source = MinariSource(data_dir)
        for rel, entry in sorted(source.metadata["files"].items()):
            rec = source.records(rel, entry)
            yield rec["obs"], rec["next_obs"]
        source.save_stamp()
    elif layout == "native":
        meta = read_metadata(root)
        for rel, entry in sorted(meta["files"].items()):
            rec = read_checkpoint_file(root, entry, rel)
            yield rec["obs"], rec["next_obs"]
    else:
        for task, folder in legacy_task_dirs(root).items():
            names = sorted(n for n in os.listdir(folder) if parse_legacy_filename(n) is not None)
            if not names:
                continue
            arrays, paths = [], []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                for name in names:
                    path = folder / name
                    arrays.append(read_legacy_bytes(path.read_bytes(), str(path)))
                    paths.append(str(path))
            obs, _, _, nxt = legacy_columns(arrays, paths)
            yield obs, nxt


def compute_abs_max(data_dir: str | os.PathLike) -> np.ndarray:
    """``abs_max`` over every observation and next observation of every file of a dataset.

    All tasks, checkpoints and episodes (deterministic and sampled) count, so
    one normalizer serves whatever selection training uses.
    """
    return abs_max_of(iter_all_transitions(data_dir), what=str(data_dir))


# ---- the data fits the config ------------------------------------------------------------------


def check_tasks_match(metadata: dict, env, tasks, data_dir) -> None:
    """Refuse a dataset made for other tasks than the config's env defines (native datasets record them).

    A 20-task config on a 40-task dataset would otherwise train task 5's policy
    on data whose goal is not the env's task 5.
    """
    recorded = (metadata or {}).get("tasks")
    if not recorded:
        return  # the reference's layout records no task parameters
    for t in tasks:
        t = int(t)
        ours = json_roundtrip(env.task_params(t))
        theirs = recorded[t] if t < len(recorded) else None
        if theirs is None or not same_params(ours, theirs):
            raise DatasetError(
                f"{data_dir} was made for other tasks: task {t} there is {theirs}, but this config's env makes it "
                f"{ours} (env_params {metadata.get('env_params')} there); use the env_params the data was made "
                "with or point data_dir at a matching dataset")


def same_params(a, b, rel: float = 1e-9) -> bool:
    """Equal task parameters: same structure, numbers equal to ``rel``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_params(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_params(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
    return a == b
