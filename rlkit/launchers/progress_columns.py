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

STAT_BLOCKS = ("Q Predictions", "V Predictions", "Log Pis", "Policy mu", "Policy log std", "alpha", "div_estimate")
# the protocols run in training, from the registry: each one's average return column
AVERAGE_RETURNS = tuple(PROGRESS_KEYS[p] for p in PROTOCOLS)
COUNTERS = ("Number of train steps total", "Number of env steps total", "Number of rollouts total")
TIMES = ("Train Time (s)", "(Previous) Eval Time (s)", "Epoch Time (s)", "Total Train Time (s)")


def reference_columns(latent_size: int, algo: Mapping, objective_statistics: Sequence[str] = ()) -> list[str]:
    """The header the authors' code writes for these settings, in its order.

    Their trainer statistics (per-dimension z of the meta batch's first task, the
    representation objectives' statistics: ``objective_statistics``, each enabled
    objective's declared ``statistics`` in registry order, as
    :func:`objective_statistics` gives them; then the losses of the parts that
    are on, Mean/Std/Max/Min blocks), then the evaluation's (z of the last
    evaluated context, the three average returns), then counters, times and the epoch.
    """
    cols = [f"Z mean train{i}" for i in range(latent_size)] + ["Z variance train", "task idx"]
    cols += list(objective_statistics)
    cols += ["QF Loss", "VF Loss", "Policy Loss"]
    if algo.get("use_brac"):
        cols += ["Dual Critic Loss"]
    cols += [f"{name} {s}" for name in STAT_BLOCKS for s in ("Mean", "Std", "Max", "Min")]
    cols += [f"Z mean eval{i}" for i in range(latent_size)] + ["Z variance eval", "task_idx"]
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


def objective_statistics(hp) -> list[str]:
    """The columns of the objectives ``hp`` switches on, from the registry (rlkit.torch.objectives)."""
    from rlkit.torch import objectives

    return [col for cls in objectives.OBJECTIVES if cls.enabled(hp) for col in cls.columns(hp)]
