"""The reference's dataset layout: one pickled ``.npy`` file per episode.

``offline_dataset/ENV/goal_idx{i}/trj_eval{k}_step{S}.npy`` holds deterministic
episode k of task i at behaviour checkpoint S, ``trj_evalsample{k}_step{S}.npy``
a sampled one. Each file is a NumPy object array of shape [T, 4] whose rows are
(obs, action, reward, next_obs); nothing marks terminals (the reference's loader
marks the last row of every file terminal).

Reading uses a restricted unpickler that accepts only what these files contain
(NumPy arrays, dtypes and scalars), so a planted pickle cannot run code.
Writing produces files the reference's own environment (Python 3.7, NumPy 1.20)
reads: pickle protocol 3, NumPy classes named under ``numpy.core``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from rlkit.data._io import atomic_write_bytes, is_temp_name, parse_npy_header
from rlkit.data.episodes import Episode, as_episode
from rlkit.data.errors import DatasetError

_FILE_RE = re.compile(r"^trj_eval(sample)?(\d+)_step(\d+)\.npy$")
_DIR_RE = re.compile(r"^goal_idx(\d+)$")


def legacy_task_dirname(task: int) -> str:
    return f"goal_idx{int(task)}"


def legacy_filename(k: int, step: int, sampled: bool) -> str:
    return f"trj_eval{'sample' if sampled else ''}{int(k)}_step{int(step)}.npy"


def parse_legacy_filename(name: str) -> tuple[bool, int, int] | None:
    """(sampled, k, step) of a legacy file name, or None for any other name."""
    m = _FILE_RE.match(name)
    if m is None:
        return None
    return m.group(1) is not None, int(m.group(2)), int(m.group(3))


def is_legacy_dataset(root: str | os.PathLike) -> bool:
    try:
        return any(_DIR_RE.match(n) for n in os.listdir(root))
    except OSError:
        return False


def legacy_task_dirs(root: str | os.PathLike) -> dict[int, Path]:
    out = {}
    for name in os.listdir(root):
        m = _DIR_RE.match(name)
        if m and (Path(root) / name).is_dir():
            out[int(m.group(1))] = Path(root) / name
    return dict(sorted(out.items()))


def scan_legacy(root: str | os.PathLike) -> dict[int, dict[tuple[bool, int], list[int]]]:
    """task -> {(sampled, step): sorted episode indices k} from the file names alone."""
    out: dict[int, dict[tuple[bool, int], list[int]]] = {}
    for task, folder in legacy_task_dirs(root).items():
        groups: dict[tuple[bool, int], list[int]] = {}
        for name in os.listdir(folder):
            if is_temp_name(name):
                continue
            parsed = parse_legacy_filename(name)
            if parsed is not None:
                sampled, k, step = parsed
                groups.setdefault((sampled, step), []).append(k)
        out[task] = {key: sorted(ks) for key, ks in sorted(groups.items())}
    return out


# ---- writing ------------------------------------------------------------------------

# Pickles made by NumPy >= 2 name ``numpy._core``, which NumPy < 1.26 cannot
# import. Protocol 3 writes globals as newline-terminated text (no length
# prefix, no framing), so renaming the module in the bytes is safe.
_NEW_CORE, _OLD_CORE = b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"


def legacy_episode_bytes(observations, actions, rewards, next_observations) -> bytes:
    """The bytes of one reference-format trajectory file."""
    obs = np.asarray(observations)
    act = np.asarray(actions)
    rew = np.asarray(rewards).reshape(-1)
    nxt = np.asarray(next_observations)
    t = len(obs)
    if not (len(act) == len(rew) == len(nxt) == t) or t == 0:
        raise DatasetError(
            f"legacy episode arrays disagree in length: obs {len(obs)}, actions {len(act)}, "
            f"rewards {len(rew)}, next_obs {len(nxt)}"
        )
    arr = np.empty((t, 4), dtype=object)
    for i in range(t):
        # Rows exactly as the reference's generator made them: arrays for obs,
        # action and next_obs, a Python float for the reward.
        arr[i, 0] = np.array(obs[i])
        arr[i, 1] = np.array(act[i])
        arr[i, 2] = float(rew[i])
        arr[i, 3] = np.array(nxt[i])
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
    pickle.dump(arr, f, protocol=3)
    return f.getvalue().replace(_NEW_CORE, _OLD_CORE)


def write_legacy_episode(
    root: str | os.PathLike, task: int, step: int, episode: Episode | Mapping, *, fsync: bool = False
) -> Path:
    """Write one episode as ``goal_idx{task}/trj_eval[sample]{k}_step{step}.npy`` (atomic).

    Only obs, action, reward and next_obs are kept: the layout has no place for
    terminals. ``fsync`` is off by default (tens of thousands of small files).
    """
    e = as_episode(episode)
    folder = Path(root) / legacy_task_dirname(task)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / legacy_filename(e.index, step, e.sampled)
    data = legacy_episode_bytes(e.observations, e.actions, e.rewards, e.next_observations)
    atomic_write_bytes(path, data, fsync=fsync)
    return path


def write_legacy_checkpoint(
    root: str | os.PathLike, task: int, step: int, episodes: Iterable[Episode | Mapping], *, fsync: bool = False
) -> list[Path]:
    """Write every episode of (task, step) in the reference layout (what ``--legacy-layout`` calls)."""
    return [write_legacy_episode(root, task, step, e, fsync=fsync) for e in episodes]


def legacy_has_checkpoint(
    root: str | os.PathLike, task: int, step: int, n_deterministic: int = 0, n_sampled: int = 0
) -> bool:
    """True if episodes ``0 .. n-1`` of both groups of (task, step) exist (resuming ``--legacy-layout``).

    Files appear only complete (atomic rename), so existing means written.
    """
    folder = Path(root) / legacy_task_dirname(task)
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        return False
    return all(legacy_filename(k, step, False) in names for k in range(n_deterministic)) and all(
        legacy_filename(k, step, True) in names for k in range(n_sampled)
    )


# ---- reading ------------------------------------------------------------------------

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_SCALAR = np.float64(0.0).__reduce__()[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _TrajectoryUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles
                import codecs

                return codecs.encode
            raise pickle.UnpicklingError(f"unexpected pickled object {module}.{name}")
        return obj


def read_legacy_bytes(buf: bytes, where: str) -> np.ndarray:
    """The [T, 4] object array of one legacy trajectory file's bytes."""
    descr, fortran, shape, offset = parse_npy_header(buf, where)
    if descr != "'|O'":
        raise DatasetError(
            f"{where} is not a reference trajectory file (dtype {descr}, expected pickled objects '|O')"
        )
    if len(shape) != 2 or shape[1] != 4 or shape[0] < 1:
        raise DatasetError(f"{where} has shape {shape}; a reference trajectory file is [T, 4] with T >= 1")
    try:
        # BufferedReader gives the C unpickler `peek`, so it prefetches instead of
        # calling read() per opcode: 2.3x faster on the reference's protocol-3 files.
        arr = _TrajectoryUnpickler(io.BufferedReader(io.BytesIO(memoryview(buf)[offset:]))).load()
    except Exception as e:  # EOFError, UnpicklingError, ValueError ... from a damaged file
        raise DatasetError(
            f"{where} is truncated or corrupted ({type(e).__name__}: {e}); delete it and regenerate it"
        ) from None
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != object:
        raise DatasetError(f"{where} does not hold the [T, 4] object array its header announces; regenerate it")
    if fortran:
        arr = np.ascontiguousarray(arr)
    return arr


def read_legacy_file(path: str | os.PathLike) -> np.ndarray:
    """The [T, 4] object array of one legacy trajectory file (rows obs, action, reward, next_obs)."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return read_legacy_bytes(buf, str(path))


def legacy_columns(arrays: list[np.ndarray], paths: list[str]) -> tuple[np.ndarray, ...]:
    """(obs, actions, rewards, next_obs) float32 arrays from many [T, 4] object arrays.

    One vectorised conversion for all files; if it fails (a row with the wrong
    shape) the files are checked one by one so that the error names the culprit.
    """
    big = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    n = len(big)
    try:
        obs = _stack(big[:, 0], n)
        act = _stack(big[:, 1], n)
        nxt = _stack(big[:, 3], n)
        rew = big[:, 2].astype(np.float64).astype(np.float32)
        if obs.shape != nxt.shape:
            raise ValueError("obs and next_obs differ in shape")
        return obs, act, rew, nxt
    except (ValueError, TypeError):
        pass
    dims = None
    for arr, path in zip(arrays, paths):
        try:
            cols = (_stack(arr[:, 0], len(arr)), _stack(arr[:, 1], len(arr)), _stack(arr[:, 3], len(arr)))
            arr[:, 2].astype(np.float64)
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path} has malformed rows ({e}); delete it and regenerate it") from None
        d = tuple(c.shape[1] for c in cols)
        if dims is None:
            dims = d
        elif d != dims:
            raise DatasetError(
                f"{path} has (obs, action, next_obs) dims {d} but earlier files have {dims}; "
                "the folder mixes datasets: regenerate it"
            )
    raise DatasetError(f"legacy files {paths[0]} ... could not be combined; regenerate the dataset")


def _stack(col: np.ndarray, n: int) -> np.ndarray:
    # np.array over the list raises on ragged rows, so misaligned data cannot slip through.
    out = np.array(list(col), dtype=np.float32)
    if out.ndim != 2:  # scalars per row -> [n, 1]; [1, d] rows (the reference's buffer accepts them) -> [n, d]
        out = out.reshape(n, -1)
    if out.shape[1] == 0:
        raise ValueError("rows are empty")
    return out
