"""Convert datasets between the native format and the reference layout.

A conversion never deletes what it did not write. It is built in a hidden sibling of DST and
swapped into place once complete; ``overwrite`` lets it replace an existing dataset of the same
layout, and then only that dataset's own files (:func:`own_entries`): a user's notes beside them
stay, and anything else (a folder of other files, the source itself, a Minari store, a dataset of
the other layout) is refused in one line before anything is written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rlkit.data.episodes import Episode
from rlkit.data.errors import DatasetError
from rlkit.data._io import VerifiedStamp, is_temp_name
from rlkit.data.legacy import (
    is_legacy_dataset,
    legacy_columns,
    legacy_filename,
    legacy_task_dirname,
    parse_legacy_filename,
    read_legacy_bytes,
    scan_legacy,
    write_legacy_checkpoint,
)
from rlkit.data.loader import detect_layout
from rlkit.data.minari_format import NAMESPACE_FILE, export_minari, import_minari, is_minari_ref, resolve, store_root
from rlkit.data.native import (
    LOCK_FILE,
    METADATA_FILE,
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
    author_email: str | None = None,
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
    if not is_minari_ref(dst) and _same_folder(src, dst):
        raise DatasetError(f"{src} and {dst} are the same folder: converting a dataset onto itself would replace "
                           "the original; write the conversion to another folder")
    layout = detect_layout(src, env_name)
    if layout == to:
        raise DatasetError(f"{src} is already in the {to} layout")
    if to == "minari":
        if layout != "native":
            raise DatasetError(f"{src} is a {layout} dataset: convert it to native first (--to native), "
                               "then to minari")
        return export_minari(src, str(dst), tasks=tasks, author=author, author_email=author_email,
                             code_permalink=code_permalink)
    if is_minari_ref(dst):
        raise DatasetError(f"{dst} is a Minari name: pass --to minari to write a Minari dataset")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DatasetError(f"{dst} is a file, not a folder: choose a new folder for the converted dataset")
    keep: list[str] = []
    if dst.exists() and any(dst.iterdir()):
        keep = _replaceable(src, dst, to, overwrite)
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
        _put_in_place(stage, dst, keep)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stats


# ---- what --overwrite may replace ---------------------------------------------------

_NATIVE_TOP = {METADATA_FILE, NORMALIZER_FILE, LOCK_FILE, VerifiedStamp.NAME}
_NATIVE_TASK_DIR = re.compile(r"^task_\d{3,}$")
_NATIVE_FILE = re.compile(r"^step_\d+\.npy$")
_LEGACY_TASK_DIR = re.compile(r"^goal_idx\d+$")


def _is_own_top(name: str, to: str) -> bool:
    if to == "native":
        return name in _NATIVE_TOP or bool(_NATIVE_TASK_DIR.match(name))
    return name == NORMALIZER_FILE or bool(_LEGACY_TASK_DIR.match(name))


def _is_own_file(name: str, to: str) -> bool:
    if is_temp_name(name):
        return True
    return bool(_NATIVE_FILE.match(name)) if to == "native" else parse_legacy_filename(name) is not None


def own_entries(dst: Path, to: str) -> tuple[list[str], list[str]]:
    """(the top-level entries of dataset folder ``dst`` that a ``to`` conversion writes, the others).

    Native: ``dataset.json``, ``normalizer.npz``, the writers' lock and verified stamp, the
    ``task_NNN/`` folders; legacy: the ``goal_idxN/`` folders and ``normalizer.npz``. A task folder
    holding anything but its data files is refused: replacing it would lose that file."""
    own, other = [], []
    for p in sorted(dst.iterdir()):
        if not _is_own_top(p.name, to):
            other.append(p.name)
            continue
        folder = to == "native" and bool(_NATIVE_TASK_DIR.match(p.name)) or to == "legacy" and p.name != NORMALIZER_FILE
        if p.is_dir() != folder or p.is_symlink():
            raise DatasetError(f"{p} should be a {'folder' if folder else 'file'} of the {to} dataset in {dst}: "
                               "move it away first")
        if folder:
            for q in sorted(p.iterdir()):
                if not (q.is_file() and not q.is_symlink() and _is_own_file(q.name, to)):
                    raise DatasetError(f"{q} is not a file of the {to} dataset in {dst}, and --overwrite replaces "
                                       f"{p.name}/ whole: move it out of {p.name}/ first")
        own.append(p.name)
    return own, other


def _same_folder(a, b) -> bool:
    try:
        pa = resolve(a)[0] if is_minari_ref(a) else Path(a)
        return pa.exists() and Path(b).exists() and os.path.samefile(pa, b)
    except (OSError, DatasetError):
        return False


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (after resolving links)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _replaceable(src, dst: Path, to: str, overwrite: bool) -> list[str]:
    """Refuse a non-empty ``dst`` in one line unless --overwrite may replace the dataset in it; returns
    the entries of ``dst`` that are not the dataset's (kept as they are)."""
    src_path = resolve(src)[0] if is_minari_ref(src) else Path(src)
    if _inside(src_path, dst):
        raise DatasetError(f"{dst} holds the source {src}: write the conversion to a folder outside it")
    root = store_root()
    if is_minari_ref(dst) or _inside(dst, root) or _inside(root, dst) or (dst / NAMESPACE_FILE).exists():
        raise DatasetError(f"{dst} is (or holds) the Minari store {root}: write the converted dataset to a "
                           "folder of its own outside it")
    how = ("an existing dataset there is replaced only with --overwrite, which replaces its dataset files "
           "and keeps the rest")
    if not overwrite:
        raise DatasetError(f"{dst} is not empty; choose an empty folder, or pass --overwrite ({how})")
    held = "native" if (dst / METADATA_FILE).exists() else "legacy" if is_legacy_dataset(dst) else None
    if held != to:
        what = f"a {held} dataset, not a {to} one" if held else f"no {to} dataset"
        raise DatasetError(f"{dst} holds {what}: --overwrite replaces only a {to} dataset's own files; "
                           "choose an empty or new folder")
    return own_entries(dst, to)[1]


def _put_in_place(stage: Path, dst: Path, keep: Sequence[str] = ()) -> None:
    """Swap the finished ``stage`` in as ``dst``; the entries ``keep`` of an existing ``dst`` (not the
    dataset's) move into the new one.

    The old ``dst`` is renamed aside first, the stage renamed into place second, so a reader sees
    the old dataset whole or the new one whole (for a moment between the renames, none). The kept
    entries then move across and the old dataset's files are deleted; killed before that, the old
    folder is whole at ``.DST.replaced-PID`` beside it."""
    if not dst.exists():
        os.rename(stage, dst)
        return
    old = dst.with_name(f".{dst.name}.replaced-{os.getpid()}")
    os.rename(dst, old)
    try:
        os.rename(stage, dst)
    except BaseException:
        os.rename(old, dst)  # the swap did not happen: the old dataset goes back
        raise
    for name in keep:
        os.rename(old / name, dst / name)
    shutil.rmtree(old, ignore_errors=True)


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
