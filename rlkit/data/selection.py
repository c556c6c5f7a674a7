"""Which behaviour checkpoints and how many episodes a dataset holds, and a selection that fits it.

The paper's configs name their checkpoints (``train_epoch = [start, stop,
step]``) and episodes per checkpoint (``n_trj``) for the paper's generation
schedule; a dataset made on a shorter schedule needs other values. Writing
``auto`` for any of them takes them from the dataset itself (docs/method.md §3):
every checkpoint all selected tasks have except the first (written from a
nearly untrained policy, as the paper's selections skip it), and the largest
episode count every one of those checkpoints holds.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlkit.data.errors import DatasetError
from rlkit.data.native import GROUPS, episode_table

AUTO = "auto"


def checkpoint_plan(num_train_steps: int, num_seed_steps: int, eval_frequency: int,
                    episode_length: int | None = None, delay_first: bool = True) -> dict[int, int]:
    """{env step at which the generator writes a checkpoint: the step S the checkpoint is named after}.

    The reference writes checkpoints only at episode ends: at the first episode
    end after ``num_seed_steps`` whose ``step // eval_frequency`` has moved on,
    named ``(step // eval_frequency) * eval_frequency``. So the checkpoint named
    ``num_seed_steps`` comes one episode later, after that episode's updates
    (point robot: after 20 updates, not from the untrained actor), and when an
    episode is longer than ``eval_frequency`` the names in between do not
    exist (200-step episodes, a checkpoint every 100: 400, 600, ...). Writing
    them mid-episode instead would cut the training episodes short, and
    delaying one onto a later one's step would drop it.

    When ``num_seed_steps`` is not a multiple of ``eval_frequency`` (no preset),
    names still start at the first multiple after it, where the reference would
    name a checkpoint below it.

    ``episode_length`` None (a dataset that did not record it) and
    ``delay_first=False`` (datasets made before the first checkpoint moved)
    write every multiple of ``eval_frequency`` from ``num_seed_steps`` at the
    step it is named after. Fixed-horizon episodes are assumed: every env here
    runs to its time limit in the generator's lockstep vector env.
    """
    ef, seed, total = int(eval_frequency), int(num_seed_steps), int(num_train_steps)
    if ef < 1:
        raise ValueError(f"eval_frequency must be >= 1, got {ef}")
    first = -(-seed // ef) * ef
    if not delay_first or episode_length is None:
        return {s: s for s in range(first, total, ef)}
    length = int(episode_length)
    plan, last = {}, max(first // ef - 1, 0)  # names start at num_seed_steps, as the reference's counter
    for end in range((seed // length + 1) * length, total, length):  # episode ends after num_seed_steps
        if end // ef > last:
            last = end // ef
            plan[end] = last * ef
    return plan


def checkpoint_schedule(num_train_steps: int, num_seed_steps: int, eval_frequency: int,
                        episode_length: int | None = None, delay_first: bool = True) -> list[int]:
    """The checkpoint steps the generator writes, ascending (the names of :func:`checkpoint_plan`)."""
    return sorted(checkpoint_plan(num_train_steps, num_seed_steps, eval_frequency, episode_length,
                                  delay_first).values())


def episode_counts(files: Mapping[str, Any], task_ids: Iterable[int], sample: bool) -> dict[int, dict[int, int]]:
    """{task: {checkpoint step: episodes of the chosen group (sampled or deterministic)}}, from the
    ``files`` table of a native dataset's metadata."""
    counts: dict[int, dict[int, int]] = {int(t): {} for t in task_ids}
    for entry in files.values():
        task = int(entry["task"])
        if task in counts:
            sampled, index, _ = episode_table(entry)
            counts[task][int(entry["step"])] = int(np.unique(index[sampled == sample]).size)
    return counts


def describe_counts(counts: dict[int, dict[int, int]], sample: bool, limit: int = 8) -> str:
    """One line: the checkpoints and episode counts the tasks share (what a selection could use)."""
    steps = sorted(set.intersection(*(set(c) for c in counts.values()))) if counts else []
    if not steps:
        return "no checkpoint is held by every selected task"
    per = {s: min(c[s] for c in counts.values()) for s in steps}
    shown = ", ".join(f"{s} ({n})" for s, n in list(per.items())[:limit]) + (", ..." if len(per) > limit else "")
    return f"every selected task has checkpoints (step ({GROUPS[int(sample)]} episodes)): {shown}"


def range_of(steps: Sequence[int]) -> list[int]:
    """``[start, stop, step]`` with ``range(start, stop, step) == steps`` (evenly spaced steps)."""
    steps = sorted(int(s) for s in steps)
    if len(steps) == 1:
        return [steps[0], steps[0] + 1, 1]
    gaps = set(np.diff(steps).tolist())
    if len(gaps) != 1:
        raise DatasetError(f"checkpoints {steps} are not evenly spaced, so 'auto' cannot name them as "
                           "[start, stop, step]; set train_epoch / eval_epoch by hand")
    gap = gaps.pop()
    return [steps[0], steps[-1] + gap, gap]


def fitting_steps(steps: Sequence[int]) -> list[int]:
    """The checkpoints a selection uses: all but the first when there are more than two."""
    steps = sorted(int(s) for s in steps)
    return steps[1:] if len(steps) > 2 else steps


def auto_selection(root: str | os.PathLike, files: Mapping[str, Any], tasks: Iterable[int],
                   sample: bool) -> tuple[list[int], int]:
    """(``[start, stop, step]``, n_trj) that fit what the dataset at ``root`` (its ``files`` table) holds
    for ``tasks``."""
    counts = episode_counts(files, tasks, sample)
    missing = sorted(t for t, c in counts.items() if not c)
    if missing:
        raise DatasetError(f"{root} has no data for tasks {missing[:6]}; 'auto' cannot choose checkpoints")
    shared = set.intersection(*(set(c) for c in counts.values()))
    if not shared:
        raise DatasetError(f"{root}: no checkpoint is held by every selected task; 'auto' cannot choose one")
    steps = fitting_steps(shared)
    n_trj = min(c[s] for c in counts.values() for s in steps)
    if n_trj < 1:
        raise DatasetError(f"{root} has no {GROUPS[int(sample)]} episodes at checkpoints {steps}; "
                           "set algo_params.sample to the group the dataset holds")
    return range_of(steps), n_trj


def resolve_auto_from(algo: dict, files: Mapping[str, Any], where: str, train_tasks: Sequence[int],
                      test_tasks: Sequence[int]) -> dict:
    """``algo_params`` with every ``auto`` of train_epoch / eval_epoch / n_trj replaced from ``files``, the
    file table of the dataset ``where`` (any layout that records one: the loader's ``resolve_auto``
    reads it from a native folder or a Minari namespace)."""
    sample = bool(algo["sample"])
    out = dict(algo)
    train_sel, train_n = auto_selection(where, files, train_tasks, sample)
    test_sel, test_n = auto_selection(where, files, test_tasks, sample)
    if out["train_epoch"] == AUTO:
        out["train_epoch"] = train_sel
    if out["eval_epoch"] == AUTO:
        out["eval_epoch"] = test_sel
    if out["n_trj"] == AUTO:
        out["n_trj"] = min(train_n, test_n)
    return out


def wants_auto(algo: Mapping[str, Any]) -> bool:
    return any(algo.get(k) == AUTO for k in ("train_epoch", "eval_epoch", "n_trj"))
