"""The native dataset format (version 1): writer and file reader.

Layout under a dataset folder, e.g. ``offline_dataset/point-robot/``::

    dataset.json                      metadata + one entry per data file (atomic)
    task_000/step_00002200.npy        every episode of task 0 at checkpoint 2200
    task_000/step_00002400.npy
    ...
    normalizer.npz                    optional, ``abs_max`` of the observations
    .dataset.lock                     writers' lock file (empty)

Each data file is a NumPy structured array, one record per transition, with the
fields of :func:`record_dtype` (``obs``, ``action``, ``reward``, ``next_obs``,
``terminal``, ``timeout``, ``sampled``, ``episode``). Episodes are stored back to
back, deterministic ones first, then sampled ones, each group by increasing
episode index; an episode's rows are in time order. ``np.load`` reads a file
with no help from this package.

A data file counts as written only once ``dataset.json`` lists it with its size
and SHA-256: files are renamed into place first and recorded second, so a
writer killed in between leaves an unrecorded file that readers ignore and
:meth:`DatasetWriter.has_checkpoint` reports as missing (the generator then
rewrites it). See ``docs/dataset_format.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlkit.data._io import (
    atomic_write_bytes,
    canonical,
    dtype_from_descr,
    file_lock,
    jsonable,
    npy_bytes,
    parse_npy_header,
    sha256_hex,
)
from rlkit.data.episodes import Episode, as_episode
from rlkit.data.errors import DatasetError
from rlkit.fileio import remove_stale_temps

FORMAT_NAME = "csro-offline-dataset"
FORMAT_VERSION = 1
METADATA_FILE = "dataset.json"
LOCK_FILE = ".dataset.lock"
# where the behaviour-policy generator (rlkit.behavior.generate) keeps its resume state and, while it
# runs, its lock per job: a dataset with a held lock there is still being written
GENERATOR_STATE_DIR = "_generator"
NORMALIZER_FILE = "normalizer.npz"
GROUPS = ("deterministic", "sampled")


def task_dirname(task: int) -> str:
    return f"task_{int(task):03d}"


def checkpoint_relpath(task: int, step: int) -> str:
    """Path of the (task, checkpoint) file relative to the dataset folder (``/`` separated)."""
    return f"{task_dirname(task)}/step_{int(step):08d}.npy"


def record_dtype(obs_dim: int, act_dim: int) -> np.dtype:
    """One transition of a native data file (packed, little-endian)."""
    return np.dtype(
        [
            ("obs", "<f4", (int(obs_dim),)),
            ("action", "<f4", (int(act_dim),)),
            ("reward", "<f4"),
            ("next_obs", "<f4", (int(obs_dim),)),
            ("terminal", "|b1"),  # true terminal (a fall): do not bootstrap past it
            ("timeout", "|b1"),  # the time limit ended the episode here
            ("sampled", "|b1"),  # action sampled from the policy (vs its mean)
            ("episode", "<i4"),  # episode index k within its (sampled) group
        ]
    )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- metadata -----------------------------------------------------------------------


def read_metadata(root: str | os.PathLike) -> dict:
    """``dataset.json`` of a native dataset, checked for format and version."""
    path = Path(root) / METADATA_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist: this folder holds no native dataset") from None
    return _parse_metadata(raw, path)


def _parse_metadata(raw: bytes, path: Path) -> dict:
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise DatasetError(
            f"{path} is not valid JSON ({e}); it is written atomically, so the file was edited or damaged: "
            "restore it from a backup or regenerate the dataset"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise DatasetError(f"{path} is not a {FORMAT_NAME} metadata file (format={fmt!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(
            f"{path} has format_version {version!r} but this code reads up to {FORMAT_VERSION}: update the code"
        )
    meta.setdefault("files", {})
    problem = _structure_problem(meta)
    if problem:
        raise DatasetError(f"{path}: {problem}; it is written atomically, so the file was edited or damaged: "
                           "restore it from a backup or regenerate the dataset")
    return meta


def _whole(x, least: int = 0) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _structure_problem(meta: dict) -> str | None:
    """What a reader would trip over in a parsed ``dataset.json`` (a key renamed by a flipped bit,
    a wrong type), as one phrase, or None. Checked once per read, so every reader can index freely."""
    for key in ("obs_dim", "act_dim"):
        if not _whole(meta.get(key), 1):
            return f"{key} is {meta.get(key)!r}, not a positive whole number"
    if "env_name" in meta and not isinstance(meta["env_name"], str):
        return f"env_name is {meta['env_name']!r}, not a name"
    files = meta["files"]
    if not isinstance(files, dict):
        return "its file table is not a mapping"
    for rel, entry in files.items():
        if not isinstance(entry, dict) or not all(_whole(entry.get(k)) for k in ("task", "step", "bytes", "rows")):
            return f"the entry of {rel!r} lacks its task, step, bytes or rows"
        if not isinstance(entry.get("sha256"), str):
            return f"the entry of {rel!r} lacks its checksum"
        episodes = entry.get("episodes")
        for group in ("deterministic", "sampled"):
            table = episodes.get(group) if isinstance(episodes, dict) else None
            if not (isinstance(table, dict) and isinstance(table.get("index"), list)
                    and isinstance(table.get("length"), list) and len(table["index"]) == len(table["length"])
                    and all(_whole(v) for v in table["index"]) and all(_whole(v, 1) for v in table["length"])):
                return f"the {group} episode table of {rel!r} is damaged"
    return None


class _MetadataStore:
    """Read-modify-write of ``dataset.json`` for one writer, without re-parsing unchanged files.

    The parsed dict is reused while the file's bytes equal what this store last
    wrote or read (another process's update changes the bytes). Each file
    entry's JSON line is cached too, so writing checkpoint n costs O(n) string
    joins, not O(n) JSON encodings.
    """

    def __init__(self, root: Path, fsync: bool):
        self.path = root / METADATA_FILE
        self.fsync = fsync
        self._raw: bytes | None = None
        self._meta: dict | None = None
        self._lines: dict[str, tuple[dict, str]] = {}

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise DatasetError(f"{self.path} does not exist: this folder holds no native dataset") from None
        if self._meta is None or raw != self._raw:
            self._meta, self._raw = _parse_metadata(raw, self.path), raw
        return self._meta

    def save(self, meta: dict) -> None:
        meta["updated"] = _now()
        self._meta = self._raw = None  # stays invalid if the write fails
        raw = _metadata_bytes(meta, self._lines)
        atomic_write_bytes(self.path, raw, fsync=self.fsync)
        self._meta, self._raw = meta, raw


def _metadata_bytes(meta: dict, line_cache: dict | None = None) -> bytes:
    """Readable JSON: header fields indented, one compact line per task and per data file."""
    compact = lambda x: json.dumps(x, separators=(",", ":"))  # noqa: E731
    parts = []
    for k, v in meta.items():
        if k in ("tasks", "files"):
            continue
        text = compact(v) if isinstance(v, list) else json.dumps(v, indent=1).replace("\n", "\n ")
        parts.append(f" {json.dumps(k)}: {text}")
    tasks = meta.get("tasks", [])
    parts.append(' "tasks": [' + ",".join(f"\n  {compact(t)}" for t in tasks) + ("\n ]" if tasks else "]"))
    lines = []
    new_cache = {}
    for rel, entry in sorted(meta.get("files", {}).items()):
        hit = line_cache.get(rel) if line_cache is not None else None
        line = hit[1] if hit is not None and hit[0] is entry else f"\n  {json.dumps(rel)}: {compact(entry)}"
        new_cache[rel] = (entry, line)
        lines.append(line)
    if line_cache is not None:
        line_cache.clear()
        line_cache.update(new_cache)
    parts.append(' "files": {' + ",".join(lines) + ("\n }" if lines else "}"))
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode()


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None  # strict JSON has no NaN / Infinity


def _episode_summary(episodes: Sequence[Episode]) -> dict:
    out = {}
    for group, flag in zip(GROUPS, (False, True)):
        eps = [e for e in episodes if e.sampled == flag]
        out[group] = {
            "index": [e.index for e in eps],
            "length": [len(e) for e in eps],
            "n_terminated": sum(e.terminated for e in eps),
            "mean_return": _finite_or_none(np.mean([e.rewards.sum(dtype=np.float64) for e in eps])) if eps else None,
        }
    return out


# ---- writer -------------------------------------------------------------------------


# What makes two generators' episodes different policies: the seed, the SAC agent and the
# schedule. Keys absent on one side (options added later) and run-control keys (device,
# logging, how many stochastic episodes an --eval top-up adds) are not compared.
_GENERATOR_IDENTITY = ("seed", "sac.agent", "sac.num_train_steps", "sac.num_seed_steps", "sac.eval_frequency",
                       "sac.delay_first_checkpoint", "sac.same_init", "sac.dtype")
# Keys whose absence means a known value: datasets written before an option existed were made the
# old way (each task's initial weights drawn independently; every checkpoint written at its own
# step; SAC computed in float32). The dtype is identity because float32 and float64 policies drift
# apart within a few hundred updates: a float64 dataset extended by a float32 run would hold
# episodes no single run makes.
_GENERATOR_ABSENT_MEANS = {"sac.same_init": False, "sac.delay_first_checkpoint": False, "sac.dtype": "float32"}


def generator_clash(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """'' when ``new`` may add checkpoints to a dataset made with ``old``; else the first differences."""
    if not old or not new:
        return ""

    def get(cfg, path):
        node = cfg
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _MISSING
            node = node[part]
        return node

    diffs = []
    for path in _GENERATOR_IDENTITY:
        a, b = get(old, path), get(new, path)
        if path in _GENERATOR_ABSENT_MEANS:
            a = _GENERATOR_ABSENT_MEANS[path] if a is _MISSING else a
            b = _GENERATOR_ABSENT_MEANS[path] if b is _MISSING else b
        if a is _MISSING or b is _MISSING:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += [f"{path}.{k}: {a[k]!r} there, {b[k]!r} now" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
        elif a != b:
            diffs.append(f"{path}: {a!r} there, {b!r} now")
    return "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")


_MISSING = object()


def _continue_with(made: Mapping[str, Any] | None) -> str:
    """'to continue it, give the settings it was made with: ...; ' when the dataset records them."""
    if not isinstance(made, Mapping) or not isinstance(made.get("preset"), str) or not isinstance(
            made.get("overrides"), list):
        return ""
    args = ["--preset", made["preset"], "--seed", str(made.get("seed", 0)), *map(str, made["overrides"])]
    return f"to continue it, give the settings it was made with ({' '.join(args)}); or "


class DatasetWriter:
    """Writes a native dataset one (task, checkpoint) at a time; safe to resume after a kill.

    Several writer processes (one per task, as the reference's generator runs)
    may share a folder: ``dataset.json`` updates are serialised by a lock file.
    Opening a folder that already holds a dataset checks that it was made for
    the same env, env_params, task parameters and dims, so one dataset never
    mixes two configurations.

    Args:
        root: the dataset folder, e.g. ``offline_dataset/point-robot``.
        env_name, env_params: as in the config (``env_params`` as a dict).
        task_params: one dict per task (goal, velocity, direction or the
            randomized physics values), index = task id. May be empty.
        obs_dim, act_dim: transition dims.
        generator_config: the data generator's settings (SAC hyper-parameters,
            checkpoint frequency, episode counts, seed, code version ...). Kept
            from the first writer; later writers with a different value are
            recorded under ``generator_config_history``.
        fsync: flush each file to disk before renaming it (survives machine
            crashes, not only process kills). Tests and benchmarks turn it off.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        env_name: str,
        env_params: Mapping[str, Any] | None,
        task_params: Sequence[Mapping[str, Any]] | None,
        obs_dim: int,
        act_dim: int,
        generator_config: Mapping[str, Any] | None = None,
        *,
        fsync: bool = True,
    ):
        self.root = Path(root)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.env_name = str(env_name)
        self.fsync = fsync
        self._dtype = record_dtype(self.obs_dim, self.act_dim)
        self.root.mkdir(parents=True, exist_ok=True)
        self._store = _MetadataStore(self.root, fsync)
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "env_name": self.env_name,
            "env_params": canonical(dict(env_params or {})),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_tasks": len(task_params) if task_params else (env_params or {}).get("n_tasks"),
            "tasks": canonical(list(task_params or [])),
            "generator_config": canonical(dict(generator_config or {})),
            "record_dtype": jsonable(np.lib.format.dtype_to_descr(self._dtype)),
        }
        with file_lock(self.root / LOCK_FILE):
            remove_stale_temps(self.root, recursive=True)  # what killed writers left behind
            if self._store.exists():
                meta = self._store.load()
                changed = self._check_compatible(meta, header)
            else:
                meta = {**header, "created": _now(), "files": {}}
                changed = True
            if changed:
                self._store.save(meta)

    def _check_compatible(self, meta: dict, header: dict) -> bool:
        where = self.root / METADATA_FILE
        for key in ("env_name", "obs_dim", "act_dim", "env_params"):
            if meta.get(key) != header[key]:
                raise DatasetError(
                    f"{where} was written for {key}={meta.get(key)!r}, not {header[key]!r}: "
                    "write to another folder or delete this dataset"
                )
        changed = False
        if header["tasks"]:
            if not meta.get("tasks"):
                meta["tasks"], meta["n_tasks"], changed = header["tasks"], header["n_tasks"], True
            elif meta["tasks"] != header["tasks"]:
                raise DatasetError(
                    f"{where} records different task parameters than this writer's env: "
                    "check env_params (randomize_tasks, n_tasks) or write to another folder"
                )
        clash = generator_clash(meta.get("generator_config"), header["generator_config"])
        if clash:
            raise DatasetError(
                f"{self.root} was generated with other behaviour-policy settings ({clash}); new checkpoints would "
                f"mix two generators: {_continue_with(meta.get('generator_config'))}write to another --data_dir, "
                "or delete this dataset to start over"
            )
        if header["generator_config"] and meta.get("generator_config") != header["generator_config"]:
            if not meta.get("generator_config"):
                meta["generator_config"] = header["generator_config"]
            else:
                hist = meta.setdefault("generator_config_history", [])
                if header["generator_config"] not in hist:
                    hist.append(header["generator_config"])
            changed = True
        return changed

    # -- queries --------------------------------------------------------------------
    def metadata(self) -> dict:
        """A copy of the current ``dataset.json`` contents."""
        return json.loads(json.dumps(self._store.load()))

    def has_checkpoint(
        self, task: int, step: int, *, n_deterministic: int | None = None, n_sampled: int | None = None
    ) -> bool:
        """True if (task, step) is recorded and its file is present with the recorded size.

        With ``n_deterministic`` / ``n_sampled``, also require episodes
        ``0 .. n-1`` of that group (for resuming a partly regenerated checkpoint).
        """
        entry = self._store.load()["files"].get(checkpoint_relpath(task, step))
        if entry is None:
            return False
        try:
            if os.path.getsize(self.root / checkpoint_relpath(task, step)) != entry["bytes"]:
                return False
        except OSError:
            return False
        for group, n in zip(GROUPS, (n_deterministic, n_sampled)):
            if n is not None and not set(range(n)) <= set(entry["episodes"][group]["index"]):
                return False
        return True

    # -- writing --------------------------------------------------------------------
    def write_checkpoint(
        self,
        task: int,
        step: int,
        episodes: Iterable[Episode | Mapping[str, Any]],
        *,
        merge: bool = False,
    ) -> Path:
        """Write every episode of ``task`` at checkpoint ``step`` in one file.

        ``merge=True`` keeps the episodes already stored for this checkpoint and
        replaces only those with the same (sampled, index) — the reference's
        ``--eval`` mode, which regenerates sampled episodes of saved checkpoints.
        Returns the file's path.
        """
        task, step = int(task), int(step)
        if task < 0 or step < 0:
            raise DatasetError(f"task and step must be >= 0, got task={task} step={step}")
        eps = [as_episode(e) for e in episodes]
        for e in eps:
            if e.obs_dim != self.obs_dim or e.act_dim != self.act_dim:
                raise DatasetError(
                    f"task {task} step {step} episode {e.index}: dims (obs {e.obs_dim}, act {e.act_dim}) "
                    f"differ from the dataset's (obs {self.obs_dim}, act {self.act_dim})"
                )
        rel = checkpoint_relpath(task, step)
        path = self.root / rel
        if merge and rel in self._store.load()["files"]:
            old = read_checkpoint_episodes(self.root, task, step)
            new_keys = {(e.sampled, e.index) for e in eps}
            eps = [e for e in old if (e.sampled, e.index) not in new_keys] + eps
        keys = [(e.sampled, e.index) for e in eps]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise DatasetError(f"task {task} step {step}: duplicate (sampled, index) episodes {dup}")
        if not eps:
            raise DatasetError(f"task {task} step {step}: no episodes to write")
        eps.sort(key=lambda e: (e.sampled, e.index))

        data = npy_bytes(self._records(eps))
        entry = {
            "task": task,
            "step": step,
            "bytes": len(data),
            "sha256": sha256_hex(data),
            "rows": int(sum(len(e) for e in eps)),
            "episodes": _episode_summary(eps),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.root / LOCK_FILE
        with file_lock(lock):
            meta = self._store.load()
            if rel in meta["files"]:
                # Un-record first: a kill between the rename and the re-recording
                # must leave the checkpoint "missing", never "recorded with stale facts".
                del meta["files"][rel]
                self._store.save(meta)
        atomic_write_bytes(path, data, fsync=self.fsync)
        with file_lock(lock):
            meta = self._store.load()
            meta["files"][rel] = entry
            self._store.save(meta)
        return path

    def set_aside_tasks(self, tasks: Iterable[int], dest: str | os.PathLike) -> list[str]:
        """Move every recorded checkpoint file of ``tasks`` into ``dest`` and drop their entries.

        What ``policy_train.py --restart`` does before generating these tasks again:
        nothing is deleted. The files keep their relative paths under ``dest``, and
        their manifest entries go to ``dest/dataset_entries.json``, so the old
        checkpoints can be put back by hand. Entries are dropped before the files
        move (under the writer lock), so a kill in between leaves them unrecorded,
        never recorded and missing. Returns the moved relative paths.
        """
        wanted = {int(t) for t in tasks}
        dest = Path(dest)
        with file_lock(self.root / LOCK_FILE):
            meta = self._store.load()
            moved = {rel: e for rel, e in meta["files"].items() if int(e["task"]) in wanted}
            if not moved:
                return []
            dest.mkdir(parents=True, exist_ok=True)
            listing = dest / "dataset_entries.json"
            old = json.loads(listing.read_text()) if listing.exists() else {}
            atomic_write_bytes(listing, json.dumps({**old, **moved}, indent=1, sort_keys=True).encode(),
                               fsync=self.fsync)
            for rel in moved:
                del meta["files"][rel]
            self._store.save(meta)
        for rel in moved:
            src = self.root / rel
            if src.exists():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest / rel)
        return sorted(moved)

    def _records(self, eps: Sequence[Episode]) -> np.ndarray:
        return episodes_to_records(eps, self._dtype)

    # Header fields a converter may carry over from another copy of the same dataset; the
    # fields that define what the data is (env, dims, tasks, files) are set by the constructor.
    CARRIED_FIELDS = ("created", "generator_config_history")

    def carry_over(self, fields: Mapping[str, Any]) -> None:
        """Set :attr:`CARRIED_FIELDS` of ``dataset.json`` from ``fields`` (e.g. a converted copy's header)."""
        keep = {k: canonical(fields[k]) for k in self.CARRIED_FIELDS if k in fields}
        if not keep:
            return
        with file_lock(self.root / LOCK_FILE):
            meta = self._store.load()
            meta.update(keep)
            self._store.save(meta)


def episodes_to_records(eps: Sequence[Episode], dtype: np.dtype) -> np.ndarray:
    """Episodes back to back as native records; terminal/timeout flags only on each last row."""
    n = sum(len(e) for e in eps)
    rec = np.zeros(n, dtype=dtype)
    pos = 0
    for e in eps:
        t = len(e)
        sl = slice(pos, pos + t)
        rec["obs"][sl] = e.observations
        rec["action"][sl] = e.actions
        rec["reward"][sl] = e.rewards
        rec["next_obs"][sl] = e.next_observations
        rec["sampled"][sl] = e.sampled
        rec["episode"][sl] = e.index
        rec["terminal"][pos + t - 1] = e.terminated
        rec["timeout"][pos + t - 1] = e.truncated
        pos += t
    return rec


# ---- reading ------------------------------------------------------------------------


def read_checkpoint_file(
    root: str | os.PathLike,
    entry: Mapping[str, Any],
    rel: str,
    expected_dtype: np.dtype | None = None,
    verify: bool = False,
) -> np.ndarray:
    """The records of one data file, checked against its ``dataset.json`` entry.

    The size is always checked (a truncated file is named); the SHA-256 only
    with ``verify``. The returned array is a read-only view of the file's bytes.
    """
    path = Path(root) / rel
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise DatasetError(
            f"{path} is listed in dataset.json but missing: regenerate that checkpoint (the generator resumes)"
        ) from None
    if len(buf) != entry["bytes"]:
        raise DatasetError(
            f"{path} has {len(buf)} bytes but dataset.json records {entry['bytes']}: the file is truncated "
            "or was replaced; delete it and regenerate that checkpoint"
        )
    if verify and sha256_hex(buf) != entry["sha256"]:
        raise DatasetError(f"{path} fails its SHA-256 check: the file is corrupted; delete it and regenerate it")
    descr, fortran, shape, offset = parse_npy_header(buf, str(path))
    dt = dtype_from_descr(descr, str(path))
    if expected_dtype is not None and dt != expected_dtype:
        raise DatasetError(
            f"{path} holds records {dt} but the dataset declares {expected_dtype}: delete it and regenerate it"
        )
    if fortran or len(shape) != 1 or shape[0] != entry["rows"]:
        raise DatasetError(f"{path} has shape {shape} but dataset.json records {entry['rows']} rows: regenerate it")
    if offset + dt.itemsize * shape[0] != len(buf):
        raise DatasetError(f"{path} is truncated or padded (size does not match its header): regenerate it")
    return np.frombuffer(buf, dtype=dt, count=shape[0], offset=offset)


def read_checkpoint_episodes(root: str | os.PathLike, task: int, step: int, verify: bool = False) -> list[Episode]:
    """All episodes of one (task, checkpoint) of a native dataset, as :class:`Episode` objects."""
    meta = read_metadata(root)
    rel = checkpoint_relpath(task, step)
    entry = meta["files"].get(rel)
    if entry is None:
        raise DatasetError(f"{Path(root) / rel} is not recorded in dataset.json (missing or unfinished)")
    rec = read_checkpoint_file(root, entry, rel, verify=verify)
    return episodes_from_records(rec, entry, where=str(Path(root) / rel))


def episode_table(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sampled flag, index, length) per episode of a file, in file order."""
    det, smp = entry["episodes"]["deterministic"], entry["episodes"]["sampled"]
    sampled = np.concatenate([np.zeros(len(det["index"]), bool), np.ones(len(smp["index"]), bool)])
    index = np.asarray(det["index"] + smp["index"], dtype=np.int64)
    length = np.asarray(det["length"] + smp["length"], dtype=np.int64)
    return sampled, index, length


def episodes_from_records(rec: np.ndarray, entry: Mapping[str, Any], where: str) -> list[Episode]:
    sampled, index, length = episode_table(entry)
    bounds = np.concatenate([[0], np.cumsum(length)])
    if bounds[-1] != len(rec):
        raise DatasetError(f"{where}: episode lengths in dataset.json do not add up to the file's rows; regenerate it")
    out = []
    for s, k, a, b in zip(sampled, index, bounds[:-1], bounds[1:]):
        r = rec[a:b]
        if r["sampled"][0] != s or r["episode"][0] != k:
            raise DatasetError(f"{where}: rows do not match the episode table in dataset.json; regenerate it")
        out.append(
            Episode(
                r["obs"], r["action"], r["reward"], r["next_obs"], sampled=bool(s), index=int(k),
                terminated=bool(r["terminal"][-1]), truncated=bool(r["timeout"][-1]),
            )
        )
    return out


def recorded_checkpoints(meta: Mapping[str, Any]) -> dict[int, list[int]]:
    """task -> sorted checkpoint steps recorded in ``dataset.json``."""
    out: dict[int, list[int]] = {}
    for entry in meta["files"].values():
        out.setdefault(int(entry["task"]), []).append(int(entry["step"]))
    return {t: sorted(s) for t, s in sorted(out.items())}
