"""Minari interchange: a native dataset as one Minari dataset per task, grouped in a namespace.

Layout (``docs/minari.md``), for namespace ``NS`` under ``MINARI_DATASETS_PATH``::

    NS/namespace_metadata.json     {"csro_dataset": the dataset.json header, "csro_task_datasets": ...,
                                    "csro_obs_abs_max": normalizer or null, "description": ...}
    NS/task-000-v0/data/...        Minari dataset "NS/task-000-v0": every episode of task 0
    NS/task-001-v0/data/...

Each task's dataset has the env spec ``csro/<Env>-v0`` with the config's
env_params and ``task=i``, so ``dataset.recover_environment()`` builds that task's
env; its metadata repeats the header and adds ``csro_task``, ``csro_task_params``
and ``csro_files`` (the native ``dataset.json`` entries of its checkpoints, with
their SHA-256). Episodes are in native file order (checkpoint, then
deterministic before sampled, then index k); each carries the episode metadata
``behaviour_checkpoint``, ``action_mode`` ("deterministic" / "sampled") and
``episode_index``. Observations are Minari's T+1 array (``obs`` then the last
``next_obs``); an episode whose ``next_obs`` is not the following ``obs`` keeps
it in ``infos["next_observations"]``. Terminations and truncations are Minari's
per-step flags, set only on the last step, as in the native records.

The namespace metadata is written last, so a conversion that did not finish is
refused on reading. ``minari`` is an optional dependency, imported here only.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from rlkit.data._io import VerifiedStamp, atomic_write_bytes, npy_bytes, sha256_hex
from rlkit.data.episodes import Episode
from rlkit.data.errors import DatasetError
from rlkit.data.native import (
    checkpoint_relpath,
    episode_table,
    episodes_from_records,
    episodes_to_records,
    read_checkpoint_episodes,
    read_metadata,
    record_dtype,
    recorded_checkpoints,
)

PREFIX = "minari:"
NAMESPACE_FILE = "namespace_metadata.json"
NATIVE_CACHE = "_csro_native"  # in a namespace: the native files, seeded by the conversion or rebuilt on first load (MinariSource.records)
KEY = "csro_dataset"
ACTION_MODES = ("deterministic", "sampled")
NEXT_OBS_INFO = "next_observations"


class MinariUnavailable(DatasetError):
    """The optional ``minari`` package is not installed."""


def _minari():
    try:
        import minari
    except ImportError:
        raise MinariUnavailable(
            "Minari datasets need the optional package minari: pip install 'csro[minari]' "
            "(or pip install 'minari[hdf5]>=0.5,<0.6')"
        ) from None
    return minari


def is_minari_ref(data_dir: str | os.PathLike) -> bool:
    """``minari:NAMESPACE``, or a folder holding a Minari namespace (``namespace_metadata.json``)."""
    return str(data_dir).startswith(PREFIX) or (Path(data_dir) / NAMESPACE_FILE).is_file()


def task_dataset_name(task: int) -> str:
    return f"task-{int(task):03d}-v0"


_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _namespace_of(ref: str) -> str:
    ns = ref[len(PREFIX):] if ref.startswith(PREFIX) else ref
    ns = ns.strip("/")
    if not ns:
        raise DatasetError(f"{ref!r} names no Minari namespace: write minari:NAMESPACE, e.g. minari:csro/point-robot")
    bad = [part for part in ns.split("/") if not _SAFE_PART.fullmatch(part)]
    if bad:  # '..' would write outside MINARI_DATASETS_PATH; other characters break Minari's dataset ids
        raise DatasetError(f"{ref!r}: Minari namespace parts are letters, digits, '_' and '-' (no '..', '.', empty "
                           f"parts or spaces), got {bad[0]!r}; e.g. minari:csro/point-robot")
    return ns


def store_root() -> Path:
    """Where Minari keeps its datasets (``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``), as Minari
    finds it, without importing minari or creating the folder (a conversion checks it is not writing there)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def _datasets_root() -> Path:
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path(""))


def resolve(data_dir: str | os.PathLike) -> tuple[Path, str]:
    """(namespace folder, name for messages) of ``minari:NS`` or of a namespace folder."""
    text = str(data_dir)
    if not text.startswith(PREFIX):
        return Path(data_dir), text
    _minari()
    ns = _namespace_of(text)
    return _datasets_root() / ns, f"{text} ({_datasets_root() / ns})"


# ---- writing ------------------------------------------------------------------------


def _env_spec(env_name: str, env_params: Mapping[str, Any], task: int):
    """The gymnasium spec of one task's env: the registered id, env_params and ``task``."""
    import dataclasses

    import gymnasium

    from rlkit.envs import ENVS, gym_id

    if env_name not in ENVS:
        raise DatasetError(
            f"the dataset's env {env_name!r} is not a registered env, so its Minari copy could not rebuild it "
            "(a dataset converted from the reference layout: convert that again --to native with --env-name NAME "
            "--config configs/ENV.json); registered envs: " + ", ".join(sorted(ENVS))
        )
    base = gymnasium.spec(gym_id(env_name))
    return dataclasses.replace(base, kwargs={**base.kwargs, **dict(env_params), "task": int(task)})


def _buffer(e: Episode):
    from minari.data_collector import EpisodeBuffer

    obs = np.concatenate([e.observations, e.next_observations[-1:]])
    infos = None
    if not np.array_equal(e.next_observations[:-1], e.observations[1:]):
        infos = {NEXT_OBS_INFO: e.next_observations}
    term = np.zeros(len(e), bool)
    trunc = np.zeros(len(e), bool)
    term[-1], trunc[-1] = e.terminated, e.truncated
    return EpisodeBuffer(observations=obs, actions=e.actions, rewards=e.rewards, terminations=term,
                         truncations=trunc, infos=infos)


RANDOM_EPISODES = 100  # episodes per task behind ref_min_score (Minari's own default count)


def reference_scores(env_name: str, env_params: Mapping[str, Any], task: int, horizon: int,
                     checkpoint_returns: Mapping[int, float]) -> tuple[float, float]:
    """(ref_min_score, ref_max_score) of one task: the mean return of a uniform-random policy over
    :data:`RANDOM_EPISODES` episodes, and the best behaviour checkpoint's mean deterministic return (the
    same two references as the project's normalized scores, so ``minari.get_normalized_score`` gives
    score / 100 of what rlkit.plot --normalized shows for that task); ``horizon``: the env's episode length."""
    from rlkit.envs.random_policy import random_policy_return

    low = random_policy_return(env_name, dict(env_params), [int(task)], int(horizon), episodes=RANDOM_EPISODES)
    return float(low), float(max(checkpoint_returns.values()))


def export_minari(src: str | os.PathLike, dst: str, *, tasks: Sequence[int] | None = None,
                  author: str | None = None, author_email: str | None = None,
                  code_permalink: str | None = None) -> dict:
    """Write the native dataset ``src`` as Minari namespace ``dst`` (``minari:NS`` or ``NS``).

    Each task's dataset carries a card (:func:`rlkit.data.card.dataset_card`: author, e-mail and
    code permalink from the arguments or pyproject, requirements that PyPI serves),
    ``eval_env_spec`` (the task's env) and ``ref_min_score`` / ``ref_max_score``
    (:func:`reference_scores`), so ``minari.get_normalized_score`` works on it."""
    from rlkit.data.card import dataset_card
    from rlkit.data.normalizer import load_normalizer
    from rlkit.envs import make_env

    minari = _minari()
    from minari.namespace import update_namespace_metadata

    src = Path(src)
    card, unnamed = dataset_card(author, author_email, code_permalink)  # a bad one is refused before any write
    meta = read_metadata(src)
    ns = _namespace_of(str(dst))
    folder = _datasets_root() / ns
    if folder.exists() and any(folder.iterdir()):
        raise DatasetError(
            f"Minari namespace {ns} already exists at {folder}: choose another name or delete it "
            f"(`minari delete` for its datasets, then the folder)"
        )
    header = {k: v for k, v in meta.items() if k != "files"}
    env_name, env_params = str(meta["env_name"]), dict(meta.get("env_params") or {})
    obs_dim, act_dim = int(meta["obs_dim"]), int(meta["act_dim"])
    ckpts = recorded_checkpoints(meta)
    if tasks is not None:
        missing = sorted({int(t) for t in tasks} - set(ckpts))
        if missing:
            raise DatasetError(f"{src} has no data for tasks {missing}")
        ckpts = {t: s for t, s in ckpts.items() if t in {int(x) for x in tasks}}
    if not ckpts:
        raise DatasetError(f"{src} holds no recorded checkpoints to convert")
    _env_spec(env_name, env_params, 0)  # an unregistered env is refused before anything is written
    for task, steps in ckpts.items():  # and so is a damaged source file: no half-written namespace
        for step in steps:
            _checked_source(src, checkpoint_relpath(task, step), meta["files"][checkpoint_relpath(task, step)])
    env = make_env(env_name, **env_params)
    if env.observation_space.shape != (obs_dim,) or env.action_space.shape != (act_dim,):
        raise DatasetError(
            f"{src} has obs/act dims {obs_dim}/{act_dim} but env {env_name!r} with its env_params has "
            f"{env.observation_space.shape}/{env.action_space.shape}: the metadata names the wrong env"
        )
    abs_max = load_normalizer(src, obs_dim)
    abs_max_json = None if abs_max is None else [float(x) for x in abs_max]
    recorded_tasks = meta.get("tasks") or []
    if unnamed:
        flags = " ".join(f"--{k.replace('_', '-')}" for k in unnamed)
        print(f"warning: the dataset card leaves out {', '.join(unnamed)} (pyproject.toml names none): "
              f"pass {flags} to give them", file=sys.stderr)
    where = card.get("code_permalink") or "this project's code (rlkit.envs)"
    names, n_eps, n_steps = {}, 0, 0
    created = _absent_folders(folder)  # what a failed write removes again: the namespace and new parents
    try:
        stamp = VerifiedStamp(folder / NATIVE_CACHE)
        for task, steps in ckpts.items():
            dataset_id = f"{ns}/{task_dataset_name(task)}"
            dataset, ep_meta, files = None, [], {}
            # the references need every checkpoint's deterministic return before the dataset is created
            per_step = {step: read_checkpoint_episodes(src, task, step) for step in steps}
            det = {step: float(np.mean([e.rewards.sum() for e in eps if not e.sampled]))
                   for step, eps in per_step.items() if any(not e.sampled for e in eps)}
            low, high = reference_scores(env_name, env_params, task, env.max_episode_steps, det) if det else (None, None)
            for step in steps:
                eps = per_step.pop(step)
                rel = checkpoint_relpath(task, step)
                files[rel] = meta["files"][rel]
                buffers = [_buffer(e) for e in eps]
                if dataset is None:
                    spec = _env_spec(env_name, env_params, task)
                    with warnings.catch_warnings():
                        for key in unnamed:  # said above, in one line
                            warnings.filterwarnings("ignore", message=f"`{key}` is set to None", category=UserWarning)
                        dataset = minari.create_dataset_from_buffers(
                            dataset_id, buffers, env=spec, eval_env=spec,
                            observation_space=env.observation_space, action_space=env.action_space,
                            ref_min_score=low, ref_max_score=high, num_episodes_average_score=RANDOM_EPISODES,
                            data_format="hdf5",
                            description=f"CSRO offline data of {env_name}, task {task}: every episode of every "
                                        "behaviour checkpoint (see episode metadata behaviour_checkpoint, action_mode). "
                                        "ref_min_score: uniform-random policy; ref_max_score: the best checkpoint's "
                                        "deterministic return. recover_environment() needs the package that registers "
                                        f"the csro/ env ids installed (not on PyPI): {where}.", **card,
                        )
                else:
                    dataset.update_dataset_from_buffer(buffers)
                ep_meta += [{"behaviour_checkpoint": int(step), "action_mode": ACTION_MODES[int(e.sampled)],
                             "episode_index": int(e.index)} for e in eps]
                n_steps += sum(len(e) for e in eps)
                _prefill_native_cache(folder, src, rel, files[rel], stamp)
            dataset.storage.update_episode_metadata(ep_meta, range(len(ep_meta)))
            dataset.storage.update_metadata({
                KEY: header, "csro_task": int(task),
                "csro_task_params": recorded_tasks[task] if task < len(recorded_tasks) else None,
                "csro_files": files, "csro_obs_abs_max": abs_max_json,
            })
            names[str(task)] = task_dataset_name(task)
            n_eps += len(ep_meta)
        stamp.save()
        update_namespace_metadata(
            ns, f"CSRO offline multi-task dataset of {env_name}: one Minari dataset per task (read with "
                f"`python -m rlkit.data convert minari:{ns} DIR --to native`, or train on algo_params.data_dir=minari:{ns})",
            **{KEY: header, "csro_task_datasets": names, "csro_obs_abs_max": abs_max_json},
        )
    except BaseException as exc:
        _remove_created(folder, created)
        full = _disk_full(exc)
        if isinstance(exc, (OSError, RuntimeError)) and (full or isinstance(exc, OSError)):
            raise DatasetError(_write_failure(exc, ns, folder, full)) from None
        raise
    return {"namespace": ns, "path": str(folder), "datasets": len(names), "episodes": n_eps, "transitions": n_steps}


def _absent_folders(folder: Path) -> list[Path]:
    """``folder`` and each of its parents below the Minari store that do not exist yet (outermost last)."""
    root, out = _datasets_root().resolve(), []
    for p in (folder, *folder.parents):
        if p.resolve() == root or p.exists():
            break
        out.append(p)
    return out


def _remove_created(folder: Path, created: list[Path]) -> None:
    """Undo a namespace write that did not finish: nothing half-written stays in the store.

    The outermost folder this export created goes (Minari writes a ``namespace_metadata.json`` into
    every parent namespace too); a namespace folder that existed, empty, before is emptied again."""
    import shutil

    if created:
        shutil.rmtree(created[-1], ignore_errors=True)
    elif folder.is_dir():
        for p in folder.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk or quota, as Python or HDF5 (its errno in the text) says it."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "errno = 28" in text or "Disk quota exceeded" in text


def _write_failure(exc: BaseException, ns: str, folder: Path, full: bool) -> str:
    """The one line of a namespace write that failed (HDF5's messages run over several lines)."""
    if isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    hint = "free some disk space and convert again" if full else "fix that and convert again"
    return (f"writing the Minari namespace {ns} at {folder} failed: {what}; the half-written namespace was removed, "
            f"{hint}")


def _checked_source(src: Path, rel: str, entry: Mapping[str, Any]) -> bytes:
    """A native checkpoint file's bytes, refused in one line unless they match their recorded checksum."""
    try:
        raw = (src / rel).read_bytes()
    except OSError as exc:
        raise DatasetError(f"{src / rel} cannot be read ({exc.strerror}): regenerate that checkpoint") from exc
    if len(raw) != int(entry["bytes"]) or sha256_hex(raw) != entry["sha256"]:
        raise DatasetError(f"{src / rel} fails its SHA-256 check (changed since it was written): "
                           "regenerate that checkpoint before converting")
    return raw


def _prefill_native_cache(folder: Path, src: Path, rel: str, entry: Mapping[str, Any],
                          stamp: VerifiedStamp) -> None:
    """Seed the namespace's native cache (:meth:`MinariSource.records`) with the checked source file,
    stamped as checked (its bytes matched the recorded SHA-256 as they were written).

    A rebuild from the Minari episodes gives these bytes exactly (the tests check it), so the first
    load after a conversion is as fast as every later one; a copy of the namespace without
    ``_csro_native/`` (or a dataset from elsewhere) rebuilds on its first load instead."""
    raw = _checked_source(src, rel, entry)
    (folder / NATIVE_CACHE / rel).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / NATIVE_CACHE / rel, raw, fsync=False)
    stamp.add(rel, entry)


# ---- reading ------------------------------------------------------------------------


@dataclass
class _Task:
    name: str  # the task's dataset folder in the namespace, e.g. task-000-v0
    checkpoint_episodes: dict[int, range]  # step -> its Minari episode ids (export order: by step, file order)
    dataset: Any = None  # minari.MinariDataset, opened on first read


class MinariSource:
    """A Minari namespace written by :func:`export_minari`, read as a native dataset.

    ``metadata`` is the native ``dataset.json`` contents (header and file
    entries, from the JSON metadata alone); :meth:`records` rebuilds one (task,
    checkpoint) file's records from its Minari episodes, checked against its
    entry (and its SHA-256 with ``verify``). Episodes are found by position
    (the export writes them in file order), so reading needs no per-episode
    HDF5 attributes, which cost about as much as the data.
    """

    layout = "minari"

    def __init__(self, data_dir: str | os.PathLike):
        _minari()
        self.root, self.label = resolve(data_dir)
        ns_meta = self._namespace_metadata()
        self.abs_max = None if ns_meta.get("csro_obs_abs_max") is None else \
            np.asarray(ns_meta["csro_obs_abs_max"], np.float64)
        names = ns_meta.get("csro_task_datasets")
        if not isinstance(names, dict) or not names:
            raise DatasetError(f"{self.label}: namespace metadata lists no task datasets (csro_task_datasets); "
                               "convert the native dataset again")
        header = ns_meta[KEY]
        self._tasks: dict[int, _Task] = {}
        files: dict[str, dict] = {}
        for task_text, name in sorted(names.items(), key=lambda kv: int(kv[0])):
            task, name = int(task_text), str(name)
            ds_meta = self._task_metadata(task, name)
            if ds_meta.get(KEY) != header or ds_meta.get("csro_task") != task:
                raise DatasetError(f"{self.label}: dataset {name} belongs to another CSRO dataset or task "
                                   "(its csro metadata differs from the namespace's); convert again")
            entries = ds_meta.get("csro_files")
            if not isinstance(entries, dict) or not entries:
                raise DatasetError(f"{self.label}: dataset {name} has no csro_files metadata; convert again")
            ids, first = {}, 0
            for entry in sorted(entries.values(), key=lambda e: int(e["step"])):
                n = len(entry["episodes"]["deterministic"]["index"]) + len(entry["episodes"]["sampled"]["index"])
                ids[int(entry["step"])] = range(first, first + n)
                first += n
            if first != ds_meta.get("total_episodes"):
                raise DatasetError(f"{self.label}: {name} holds {ds_meta.get('total_episodes')} episodes but its "
                                   f"csro_files metadata lists {first} (edited or filtered with other tools?); "
                                   "convert again")
            self._tasks[task] = _Task(name, ids)
            files.update(entries)
        self.metadata = {**header, "files": files}
        self._stamp = VerifiedStamp(self.root / NATIVE_CACHE)  # the cache files already checked (records)

    def _task_metadata(self, task: int, name: str) -> dict:
        path = self.root / name / "data" / "metadata.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{self.label}: the Minari dataset of task {task} ({name}) is missing; "
                               "download it or convert again") from None
        except ValueError as e:
            raise DatasetError(f"{path} is not valid JSON ({e}); download it or convert again") from None

    def _namespace_metadata(self) -> dict:
        path = self.root / NAMESPACE_FILE
        if (self.root / "data" / "metadata.json").is_file():
            hint = ""
            try:
                if KEY in json.loads((self.root / "data" / "metadata.json").read_text()):
                    hint = f": it is one task of a CSRO dataset; name its namespace, minari:{self.root.parent.name}"
            except (OSError, ValueError):
                pass
            raise DatasetError(f"{self.label} is a single Minari dataset, not a CSRO multi-task namespace{hint}"
                               if hint else f"{self.label} is a Minari dataset that was not written by "
                               "`python -m rlkit.data convert ... --to minari` (no csro metadata)")
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise DatasetError(
                f"no Minari namespace at {self.label}: check the name and MINARI_DATASETS_PATH "
                f"(now {os.environ.get('MINARI_DATASETS_PATH', 'unset: ~/.minari/datasets')}), or download it"
            ) from None
        except ValueError as e:
            raise DatasetError(f"{path} is not valid JSON ({e}); restore or convert the dataset again") from None
        if not isinstance(meta, dict) or not isinstance(meta.get(KEY), dict):
            raise DatasetError(
                f"{self.label} is not a CSRO multi-task Minari dataset (no {KEY} in its namespace metadata: "
                "written by another tool, or a conversion that did not finish); convert a native dataset "
                "with `python -m rlkit.data convert DIR minari:NS --to minari`"
            )
        return meta

    def records(self, rel: str, entry: Mapping[str, Any], dtype: np.dtype | None = None,
                verify: bool = False, cache: bool = True) -> np.ndarray:
        """The native records of one (task, checkpoint): from the namespace's native cache when it holds
        them, else rebuilt from the Minari episodes (and cached).

        Minari keeps one HDF5 group per episode; rebuilding a point-robot selection reads ~30,000 of
        them, 150x the native load. The conversion seeds ``NAMESPACE/_csro_native/`` with the native
        files; a namespace without them (copied without that folder, or from elsewhere) writes each
        rebuilt file, byte for byte the native one, there on its first load.

        The cache is never trusted by its size: it is derived data beside the dataset, which anyone
        can copy, swap or edit without touching what Minari holds. Every cache file is checked against
        the SHA-256 that the namespace's metadata records for it (``csro_files``), whatever ``verify``
        says, once: a stamp (``_csro_native/.verified.json``, :class:`VerifiedStamp`: size, times,
        inode and checksum) then stands for the check, so later loads cost one stat per file. A file
        swapped in by a rename has another inode at that path, one overwritten in place another
        change time, so either is hashed again, found different, and rebuilt from the Minari episodes
        with a warning; it is never used. A rebuild is checked against the same SHA-256 (its cost is
        the HDF5 reads). A read-only store just rebuilds every time. ``cache=False`` reads the Minari
        episodes themselves (``python -m rlkit.data verify`` checks what Minari holds, and the cache
        with :meth:`cache_problem`)."""
        if not cache:
            return self._rebuilt_records(rel, entry, dtype, verify)
        cached = self._cached_records(rel, entry, dtype)
        if cached is not None:
            return cached
        rec = self._rebuilt_records(rel, entry, dtype, verify)
        try:
            (self.root / NATIVE_CACHE / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.root / NATIVE_CACHE / rel, npy_bytes(rec), fsync=False)
            self._stamp.add(rel, entry)
        except OSError:
            pass  # a read-only store: the cache is an optimisation
        return rec

    def save_stamp(self) -> None:
        """Keep which cache files passed their check (a load calls it once, after its last file)."""
        self._stamp.save()

    def _cached_records(self, rel: str, entry: Mapping[str, Any], dtype) -> np.ndarray | None:
        import io

        path = self.root / NATIVE_CACHE / rel
        stamped = self._stamp.covers(rel, entry)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        if not stamped:
            if len(raw) != int(entry["bytes"]) or sha256_hex(raw) != entry["sha256"]:
                print(f"warning: {path} does not match the SHA-256 that {self.label} records for {rel} (changed or "
                      "swapped since it was cached): rebuilt from the Minari episodes instead", file=sys.stderr)
                return None
            self._stamp.add(rel, entry)
        dt = dtype if dtype is not None else record_dtype(self.metadata["obs_dim"], self.metadata["act_dim"])
        try:
            rec = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError:
            return None
        return rec if rec.dtype == dt and rec.ndim == 1 else None

    def cache_problem(self, rel: str, entry: Mapping[str, Any]) -> str | None:
        """What is wrong with the cached native file of ``rel`` (always hashed, no stamp), or None when it
        matches its recorded SHA-256 or is not cached."""
        path = self.root / NATIVE_CACHE / rel
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror}): delete it (the next load rebuilds it)"
        if len(raw) != int(entry["bytes"]) or sha256_hex(raw) != entry["sha256"]:
            return (f"{path} does not match the SHA-256 recorded for {rel} (changed or swapped since it was "
                    f"cached): delete it, or all of {NATIVE_CACHE}/ (the next load rebuilds it from the Minari episodes)")
        return None

    def _rebuilt_records(self, rel: str, entry: Mapping[str, Any], dtype: np.dtype | None = None,
                         verify: bool = False) -> np.ndarray:
        """The native records of one (task, checkpoint), rebuilt from its Minari episodes and checked
        against the recorded SHA-256 (``verify`` or not: the HDF5 reads cost far more than the hash)."""
        from minari import MinariDataset

        task, step = int(entry["task"]), int(entry["step"])
        t = self._tasks[task]
        if t.dataset is None:
            t.dataset = MinariDataset(self.root / t.name / "data")
        sampled, index, length = episode_table(entry)
        dt = dtype if dtype is not None else record_dtype(self.metadata["obs_dim"], self.metadata["act_dim"])
        where = f"{self.label} task {task} checkpoint {step}"
        eps = [self._episode(ep, bool(s), int(k), where)
               for ep, s, k in zip(t.dataset.storage.get_episodes(t.checkpoint_episodes[step]), sampled, index)]
        if [len(e) for e in eps] != length.tolist():
            raise DatasetError(f"{where}: the episodes of {t.name} do not match its csro_files metadata "
                               "(edited or filtered with other tools?); convert again")
        rec = episodes_to_records(eps, dt)
        if sha256_hex(npy_bytes(rec)) != entry["sha256"]:
            raise DatasetError(f"{where}: the data fails its SHA-256 check (changed since conversion); "
                               "convert the native dataset again")
        return rec

    @staticmethod
    def _episode(ep: Mapping[str, Any], sampled: bool, k: int, where: str) -> Episode:
        obs = np.asarray(ep["observations"])
        term, trunc = np.asarray(ep["terminations"], bool), np.asarray(ep["truncations"], bool)
        t = len(term)
        if obs.ndim != 2 or len(obs) != t + 1 or np.any(term[:-1]) or np.any(trunc[:-1]):
            raise DatasetError(f"{where} episode {k}: not a CSRO episode (observations {obs.shape}, "
                               f"{t} steps, or a termination before the last step); convert again")
        infos = ep.get("infos") or {}
        nxt = infos[NEXT_OBS_INFO] if NEXT_OBS_INFO in infos else obs[1:]
        return Episode(obs[:-1], ep["actions"], ep["rewards"], nxt, sampled=sampled, index=k,
                       terminated=bool(term[-1]), truncated=bool(trunc[-1]))

    def checkpoint_episodes(self, task: int, step: int) -> list[Episode]:
        rel = checkpoint_relpath(task, step)
        entry = self.metadata["files"][rel]
        return episodes_from_records(self.records(rel, entry, verify=True), entry, where=f"{self.label} {rel}")

    def checkpoints(self) -> Iterator[tuple[int, int]]:
        for task, steps in recorded_checkpoints(self.metadata).items():
            for step in steps:
                yield task, step


def import_minari(src: str | os.PathLike, dst: str | os.PathLike, *, to: str = "native",
                  tasks: Sequence[int] | None = None, fsync: bool = True) -> dict:
    """Write Minari namespace ``src`` as a native (or legacy) dataset at ``dst``: the original, bit for bit."""
    from rlkit.data.legacy import write_legacy_checkpoint
    from rlkit.data.native import DatasetWriter
    from rlkit.data.normalizer import save_normalizer

    source = MinariSource(src)
    meta = source.metadata
    wanted = None if tasks is None else {int(t) for t in tasks}
    writer = None
    if to == "native":
        writer = DatasetWriter(dst, meta["env_name"], meta.get("env_params"), meta.get("tasks"), meta["obs_dim"],
                               meta["act_dim"], meta.get("generator_config"), fsync=fsync)
        writer.carry_over(meta)
    n_files = n_trans = 0
    for task, step in source.checkpoints():
        if wanted is not None and task not in wanted:
            continue
        eps = source.checkpoint_episodes(task, step)
        if writer is not None:
            writer.write_checkpoint(task, step, eps)
        else:
            write_legacy_checkpoint(dst, task, step, eps, fsync=fsync)
        n_files += 1
        n_trans += sum(len(e) for e in eps)
    source.save_stamp()
    if source.abs_max is not None:
        save_normalizer(dst, source.abs_max, overwrite=True)
    return {"files": n_files, "transitions": n_trans}
