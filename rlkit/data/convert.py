"""Convert datasets between the native format and the reference layout."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rlkit.data.episodes import Episode
from rlkit.data.errors import DatasetError
from rlkit.data.legacy import (
    legacy_columns,
    legacy_filename,
    legacy_task_dirname,
    read_legacy_bytes,
    scan_legacy,
    write_legacy_checkpoint,
)
from rlkit.data.loader import detect_layout
from rlkit.data.minari_format import export_minari, import_minari, is_minari_ref
from rlkit.data.native import (
    NORMALIZER_FILE,
    DatasetWriter,
    read_checkpoint_episodes,
    read_metadata,
    recorded_checkpoints,
)


def convert_dataset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    to: str,
    *,
    env_name: str | None = None,
    env_params: Mapping[str, Any] | None = None,
    task_params: Sequence[Mapping[str, Any]] | None = None,
    max_episode_steps: int | None = None,
    tasks: Sequence[int] | None = None,
    overwrite: bool = False,
    fsync: bool = True,
    author: str | None = None,
    code_permalink: str | None = None,
) -> dict:
    """Copy every episode of ``src`` into ``dst`` in layout ``to`` ("native", "legacy" or "minari").

    Minari (``docs/minari.md``): native → minari writes the Minari namespace
    ``dst`` (``minari:NS``) under ``MINARI_DATASETS_PATH``; a Minari source
    (``minari:NS`` or a namespace folder) is written back as native (the
    original files, bit for bit) or legacy.

    Legacy → native: the reference layout stores no terminals, so each
    episode's end is classified by its length: shorter than
    ``max_episode_steps`` → a true terminal (the agent fell), otherwise a
    time-limit end. ``max_episode_steps`` defaults to ``env_params`` or, failing
    that, the longest episode in the data. ``env_name`` defaults to the source
    folder's name. Native → legacy drops terminal/timeout flags (no place for them).
    ``normalizer.npz`` is copied as is. Returns counts of what was written.
    """
    if to not in ("native", "legacy", "minari"):
        raise DatasetError(f"--to must be 'native', 'legacy' or 'minari', got {to!r}")
    layout = detect_layout(src, env_name)
    if layout == to:
        raise DatasetError(f"{src} is already in the {to} layout")
    if to == "minari":
        if layout != "native":
            raise DatasetError(f"{src} is a {layout} dataset: convert it to native first (--to native), "
                               "then to minari")
        return export_minari(src, str(dst), tasks=tasks, author=author, code_permalink=code_permalink)
    if is_minari_ref(dst):
        raise DatasetError(f"{dst} is a Minari name: pass --to minari to write a Minari dataset")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DatasetError(f"{dst} is a file, not a folder: choose a new folder for the converted dataset")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise DatasetError(f"{dst} is not empty; choose an empty folder or pass --overwrite")
    # written into a hidden sibling and renamed into place once complete: a conversion that fails
    # (bad source file, disk full, Ctrl-C) leaves no partial DST to block the corrected rerun
    dst.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dst.name}.converting-", dir=dst.parent))
    try:
        if layout == "minari":
            stats = import_minari(src, stage, to=to, tasks=tasks, fsync=fsync)
        else:
            src_path, wanted = Path(src), None if tasks is None else {int(t) for t in tasks}
            if to == "legacy":
                stats = _native_to_legacy(src_path, stage, wanted, fsync)
            else:
                stats = _legacy_to_native(src_path, stage, wanted, env_name, env_params, task_params,
                                          max_episode_steps, fsync)
            norm = src_path / NORMALIZER_FILE
            if norm.exists():
                (stage / NORMALIZER_FILE).write_bytes(norm.read_bytes())
        _put_in_place(stage, dst)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stats


def _put_in_place(stage: Path, dst: Path) -> None:
    """Rename the finished ``stage`` to ``dst``; an existing ``dst`` (empty, or --overwrite) goes first."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.replaced-{os.getpid()}")
        os.rename(dst, old)
        os.rename(stage, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(stage, dst)


def _native_to_legacy(src: Path, dst: Path, wanted, fsync) -> dict:
    meta = read_metadata(src)
    n_files = n_trans = 0
    for task, steps in recorded_checkpoints(meta).items():
        if wanted is not None and task not in wanted:
            continue
        for step in steps:
            eps = read_checkpoint_episodes(src, task, step)
            write_legacy_checkpoint(dst, task, step, eps, fsync=fsync)
            n_files += len(eps)
            n_trans += sum(len(e) for e in eps)
    return {"files": n_files, "transitions": n_trans}


def _legacy_to_native(src, dst, wanted, env_name, env_params, task_params, max_episode_steps, fsync) -> dict:
    listing = scan_legacy(src)
    if wanted is not None:
        missing = sorted(wanted - set(listing))
        if missing:
            raise DatasetError(f"{src} has no goal_idx folders for tasks {missing}")
        listing = {t: g for t, g in listing.items() if t in wanted}
    # (task, step) -> [(sampled, k), ...]: one native file per behaviour checkpoint.
    ckpts: dict[tuple[int, int], list[tuple[bool, int]]] = {}
    for task, groups in listing.items():
        for (sampled, step), ks in groups.items():
            ckpts.setdefault((task, step), []).extend((sampled, k) for k in ks)
    if not ckpts:
        raise DatasetError(f"{src} holds no trajectory files to convert")
    env_params = dict(env_params or {})
    limit = max_episode_steps or env_params.get("max_episode_steps")
    if not limit:  # the longest episode, from the .npy headers alone
        limit = max(
            _legacy_length(src / legacy_task_dirname(t) / legacy_filename(k, step, sampled))
            for (t, step), eps in ckpts.items() for sampled, k in eps
        )
    limit = int(limit)
    writer = None
    n_files = n_trans = 0
    for (task, step), keys in sorted(ckpts.items()):
        folder = src / legacy_task_dirname(task)
        paths = [folder / legacy_filename(k, step, sampled) for sampled, k in keys]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            arrays = [read_legacy_bytes(p.read_bytes(), str(p)) for p in paths]
        obs, act, rew, nxt = legacy_columns(arrays, [str(p) for p in paths])
        bounds = np.concatenate([[0], np.cumsum([len(a) for a in arrays])])
        eps = []
        for (sampled, k), a, b in zip(keys, bounds[:-1], bounds[1:]):
            short = (b - a) < limit
            eps.append(Episode(obs[a:b], act[a:b], rew[a:b], nxt[a:b], sampled=sampled, index=k,
                               terminated=short, truncated=not short))
        if writer is None:
            writer = DatasetWriter(
                dst, env_name or src.name, env_params, task_params or [], obs.shape[1], act.shape[1],
                generator_config={"converted_from": str(src), "layout": "legacy", "max_episode_steps": limit},
                fsync=fsync,
            )
        writer.write_checkpoint(task, step, eps)
        n_files += 1
        n_trans += len(obs)
    return {"files": n_files, "transitions": n_trans, "max_episode_steps": limit}


def _legacy_length(path: Path) -> int:
    from rlkit.data._io import parse_npy_header

    with open(path, "rb") as f:
        head = f.read(4096)
    _, _, shape, _ = parse_npy_header(head, str(path))
    return int(shape[0])
