"""``normalizer.npz``: per-dimension ``abs_max`` that observations are divided by.

When a dataset folder holds ``normalizer.npz`` the reference divides the env's
observations by its ``abs_max``; docs/method.md §2 asks for the same in the data,
so the loader divides ``obs`` and ``next_obs`` too (``normalize`` option of
:func:`rlkit.data.load_offline_data`). Division is exact (``obs / abs_max``),
matching ``rlkit.envs.wrappers.NormalizedActionEnv``; ``abs_max`` must be
positive everywhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from rlkit.data._io import atomic_write_bytes
from rlkit.data.errors import DatasetError
from rlkit.data.native import NORMALIZER_FILE


def normalizer_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / NORMALIZER_FILE


def load_normalizer(data_dir: str | os.PathLike, obs_dim: int | None = None) -> np.ndarray | None:
    """``abs_max`` from ``DATA_DIR/normalizer.npz`` (float64), or None if there is no such file."""
    path = normalizer_path(data_dir)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "abs_max" not in z.files:
                raise DatasetError(
                    f"{path} has no 'abs_max' array (it has {z.files}); "
                    f"recompute it with `python -m rlkit.data normalizer {data_dir} --force`"
                )
            abs_max = np.asarray(z["abs_max"], dtype=np.float64).reshape(-1)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(
            f"{path} is unreadable ({type(e).__name__}: {e}); "
            f"recompute it with `python -m rlkit.data normalizer {data_dir} --force`"
        ) from None
    if obs_dim is not None and abs_max.shape != (int(obs_dim),):
        raise DatasetError(
            f"{path} has abs_max of size {abs_max.size} but observations have {obs_dim} dims; "
            f"recompute it with `python -m rlkit.data normalizer {data_dir} --force`"
        )
    if not np.all(np.isfinite(abs_max)) or not np.all(abs_max > 0):
        raise DatasetError(f"{path}: abs_max must be finite and positive everywhere; recompute it")
    return abs_max


def save_normalizer(data_dir: str | os.PathLike, abs_max: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write ``DATA_DIR/normalizer.npz`` atomically."""
    path = normalizer_path(data_dir)
    if path.exists() and not overwrite:
        raise DatasetError(f"{path} already exists; pass --force (overwrite=True) to replace it")
    abs_max = np.asarray(abs_max, dtype=np.float64).reshape(-1)
    if not np.all(abs_max > 0):
        raise DatasetError("abs_max must be positive everywhere")
    f = io.BytesIO()
    np.savez(f, abs_max=abs_max)
    atomic_write_bytes(path, f.getvalue())
    return path


def _raw_abs_max(arrays) -> np.ndarray | None:
    out = None
    for a in arrays:
        a = np.abs(np.asarray(a, dtype=np.float64))
        a = np.where(np.isfinite(a), a, 0.0)
        m = a.max(axis=0) if len(a) else np.zeros(a.shape[1:])
        out = m if out is None else np.maximum(out, m)
    return out


def _finish(raw: np.ndarray | None) -> np.ndarray:
    if raw is None:
        raise DatasetError("no observations to compute abs_max from")
    out = np.array(raw, dtype=np.float64)
    out[out == 0] = 1.0
    return out


def abs_max_of(transitions: Iterable[tuple[np.ndarray, np.ndarray]], what: str = "the data") -> np.ndarray:
    """``abs_max`` over the observations and next observations of ``(obs, next_obs)`` chunks
    (:func:`rlkit.data.loader.compute_abs_max` feeds it every file of a dataset)."""
    running = None
    for obs, next_obs in transitions:
        m = _raw_abs_max((obs, next_obs))
        running = m if running is None else np.maximum(running, m)
    if running is None:
        raise DatasetError(f"{what} holds no transitions to compute abs_max from")
    return _finish(running)
