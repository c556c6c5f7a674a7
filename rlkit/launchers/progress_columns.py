"""The authors' progress.csv columns, so their curves and ours overlay by key in viskit.

Our progress.csv keeps its own columns and adds every column the authors'
logger writes, with the same meaning (docs/method.md §9 lists them). A column
the authors fill from a quantity this run does not compute (the dual critic's
divergence when BRAC and the dual critic are off) is written as NaN rather
than left out, so the header is the same for every method.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from rlkit.evaluation.protocols import PROGRESS_KEYS, PROTOCOLS
from rlkit.evaluation.reference import normalized_score

# the protocols run in training, from the registry: each one's average return column
AVERAGE_RETURNS = tuple(PROGRESS_KEYS[p] for p in PROTOCOLS)
COUNTERS = ("Number of train steps total", "Number of env steps total", "Number of rollouts total")
TIMES = ("Train Time (s)", "(Previous) Eval Time (s)", "Epoch Time (s)", "Total Train Time (s)")


def run_columns(training_columns: Sequence[str], z_dim: int | None) -> list[str]:
    """The header of a run, in the authors' order: the trainer's columns
    (:meth:`rlkit.trainers.base.Trainer.progress_columns`), then the evaluation's (z of the last
    evaluated context, for an agent with a ``z_dim``-dimensional z; none without one), the average
    returns, the counters, the times and the epoch."""
    cols = list(training_columns)
    if z_dim is not None:
        cols += [f"Z mean eval{i}" for i in range(z_dim)] + ["Z variance eval", "task_idx"]
    cols += list(AVERAGE_RETURNS) + list(COUNTERS) + list(TIMES) + ["Epoch"]
    return cols


def eval_z_columns(z_mean: np.ndarray, z_var: np.ndarray, task: int) -> dict[str, float]:
    """The authors' evaluation z columns: the posterior of the last context the evaluation inferred
    (their agent still holds it when statistics are logged: the last test task's last np_online
    repeat), per dimension, its mean variance, and that task's id."""
    row = {f"Z mean eval{i}": float(v) for i, v in enumerate(np.asarray(z_mean).reshape(-1))}
    row["Z variance eval"] = float(np.mean(z_var))
    row["task_idx"] = float(task)
    return row


def is_eval_z_column(key: str) -> bool:
    """A column of :func:`eval_z_columns`: a diagnostic of the inferred z, not a return or a loss."""
    return key in ("Z variance eval", "task_idx") or (key.startswith("Z mean eval") and key[11:].isdigit())


def with_missing_as_nan(row: Mapping[str, float], columns: list[str]) -> dict[str, float]:
    """``row`` plus NaN for every column in ``columns`` it lacks (the header must not depend on the values)."""
    out = dict(row)
    for c in columns:
        out.setdefault(c, math.nan)
    return out


# ours: D4RL-style normalized scores of the three average returns (0 = random policy, 100 = the best
# behaviour checkpoint on the test tasks; rlkit.evaluation.reference)
NORMALIZED = {key: key.replace("Return_all", "NormalizedScore_all") for key in AVERAGE_RETURNS}


def normalized_columns(row: Mapping[str, float], random_return: float | None,
                       behaviour_return: float | None) -> dict[str, float]:
    """The normalized score of every average return in ``row`` (NaN without both references)."""
    out = {}
    for key, name in NORMALIZED.items():
        if key not in row:
            continue
        try:
            out[name] = normalized_score(row[key], random_return, behaviour_return)
        except (TypeError, ValueError):  # a reference missing (None) or no span between the two
            out[name] = math.nan
    return out
