"""Dataset summaries and integrity checks (``info`` and ``verify`` of ``python -m rlkit.data``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rlkit.data._io import is_temp_name
from rlkit.data.errors import DatasetError
from rlkit.data.legacy import (
    legacy_columns,
    legacy_task_dirs,
    parse_legacy_filename,
    read_legacy_file,
    scan_legacy,
)
from rlkit.data.loader import detect_layout
from rlkit.data.minari_format import MinariSource
from rlkit.data.native import (
    GROUPS,
    NORMALIZER_FILE,
    read_checkpoint_file,
    read_metadata,
    record_dtype,
)


def dataset_info(data_dir: str | os.PathLike) -> dict:
    """A summary of a dataset from its metadata / file names (no data files are read)."""
    layout = detect_layout(data_dir)
    source = MinariSource(data_dir) if layout == "minari" else None
    root = Path(data_dir) if source is None else source.root
    info: dict = {"path": str(root) if source is None else source.label, "layout": layout,
                  "normalizer": (root / NORMALIZER_FILE).exists() if source is None else source.abs_max is not None}
    if layout in ("native", "minari"):
        meta = read_metadata(root) if source is None else source.metadata
        files = meta["files"]
        per_task: dict[int, list[int]] = {}
        counts = {g: [] for g in GROUPS}
        lengths, n_term, nbytes, rows = [], 0, 0, 0
        for entry in files.values():
            per_task.setdefault(int(entry["task"]), []).append(int(entry["step"]))
            for g in GROUPS:
                counts[g].append(len(entry["episodes"][g]["index"]))
                lengths += entry["episodes"][g]["length"]
                n_term += int(entry["episodes"][g].get("n_terminated", 0))
            nbytes += int(entry["bytes"])
            rows += int(entry["rows"])
        recorded = set(files)
        unrecorded, temps = [], 0
        for folder in sorted(root.glob("task_*")) if source is None else []:
            for p in folder.iterdir():
                if is_temp_name(p.name):
                    temps += 1
                elif p.suffix == ".npy" and f"{folder.name}/{p.name}" not in recorded:
                    unrecorded.append(f"{folder.name}/{p.name}")
        info.update(
            env_name=meta.get("env_name"), env_params=meta.get("env_params"), format_version=meta["format_version"],
            obs_dim=meta["obs_dim"], act_dim=meta["act_dim"], n_tasks_declared=meta.get("n_tasks"),
            tasks_with_data=sorted(per_task), files=len(files), bytes=nbytes, transitions=rows,
            checkpoints=_steps_summary(per_task),
            episodes_per_checkpoint={g: _range(counts[g]) for g in GROUPS},
            episode_length=_stats(lengths), episodes_terminated=n_term,
            unrecorded_files=unrecorded, temp_files=temps,
        )
    else:
        listing = scan_legacy(root)
        per_task: dict[int, list[int]] = {}
        counts = {g: [] for g in GROUPS}
        n_files = 0
        for task, groups in listing.items():
            steps = set()
            for (sampled, step), ks in groups.items():
                steps.add(step)
                counts[GROUPS[int(sampled)]].append(len(ks))
                n_files += len(ks)
            per_task[task] = sorted(steps)
        info.update(
            tasks_with_data=sorted(per_task), files=n_files, checkpoints=_steps_summary(per_task),
            episodes_per_checkpoint={g: _range(counts[g]) for g in GROUPS},
        )
    return info


def _steps_summary(per_task: dict[int, list[int]]) -> dict:
    all_steps = sorted({s for steps in per_task.values() for s in steps})
    incomplete = {t: sorted(set(all_steps) - set(s)) for t, s in per_task.items() if set(s) != set(all_steps)}
    return {"steps": all_steps, "tasks_missing_steps": {str(t): v for t, v in incomplete.items()}}


def _range(xs) -> list | None:
    return [int(min(xs)), int(max(xs))] if xs else None


def _stats(xs) -> dict | None:
    if not xs:
        return None
    a = np.asarray(xs)
    return {"min": int(a.min()), "mean": float(a.mean()), "max": int(a.max()), "episodes": int(a.size)}


def verify_dataset(data_dir: str | os.PathLike) -> list[str]:
    """Problems found by reading every file (checksums for native; for Minari, every task's episodes
    rebuilt and hashed, and every file of the namespace's native cache hashed); empty when all is well."""
    problems = []
    layout = detect_layout(data_dir)
    if layout in ("native", "minari"):
        source = MinariSource(data_dir) if layout == "minari" else None
        root = Path(data_dir) if source is None else source.root
        meta = read_metadata(root) if source is None else source.metadata
        dt = record_dtype(meta["obs_dim"], meta["act_dim"])
        for rel, entry in sorted(meta["files"].items()):
            try:
                rec = (read_checkpoint_file(root, entry, rel, expected_dtype=dt, verify=True) if source is None
                       else source.records(rel, entry, dt, verify=True, cache=False))
            except DatasetError as e:
                problems.append(str(e))
                continue
            if source is not None:  # the native cache beside the Minari datasets, which loads read
                cached = source.cache_problem(rel, entry)
                if cached:
                    problems.append(cached)
            for field in ("obs", "action", "reward", "next_obs"):
                bad = ~np.isfinite(rec[field])
                if bad.ndim > 1:
                    bad = bad.any(axis=1)
                if bad.any():
                    problems.append(f"{root / rel}: non-finite {field} in {int(bad.sum())} row(s), first at row "
                                    f"{int(np.argmax(bad))}: regenerate that checkpoint")
    else:
        root = Path(data_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for task, folder in legacy_task_dirs(root).items():
                for name in sorted(os.listdir(folder)):
                    if parse_legacy_filename(name) is None:
                        continue
                    path = folder / name
                    try:  # the rows too: shapes consistent within the file, every value finite
                        cols = legacy_columns([read_legacy_file(path)], [str(path)])
                    except DatasetError as e:
                        problems.append(str(e))
                        continue
                    for field, col in zip(("obs", "action", "reward", "next_obs"), cols):
                        bad = ~np.isfinite(col.reshape(len(col), -1)).all(axis=1)
                        if bad.any():
                            problems.append(f"{path}: non-finite {field} in {int(bad.sum())} row(s), first at row "
                                            f"{int(np.argmax(bad))}: regenerate that checkpoint")
    return problems
