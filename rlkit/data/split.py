"""Which tasks train and which test: the one split function (docs/method.md §3).

Reproduces the reference's ``launch_experiment.py`` exactly, including the
order of the returned lists (the order in which the reference fills its
buffers and iterates evaluation tasks):

* ``interpolation`` and not ``randomize_tasks``: ``gap = n_train // n_eval + 1``,
  test = ``arange(0, n_train + n_eval, gap) + gap // 2``, train = the rest in
  increasing order (30/10: test 2, 6, ..., 38).
* ``interpolation`` and ``randomize_tasks``: train =
  ``np.random.choice(n_tasks, n_train, replace=False)`` drawn from NumPy's global
  generator right after ``np.random.seed(seed)`` (nothing in between draws
  from it in the reference), kept in draw order; test = the rest, increasing.
* otherwise: train = the first ``n_train`` tasks, test = the last ``n_eval``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def split_tasks(
    n_tasks: int,
    n_train: int,
    n_eval: int,
    *,
    interpolation: bool = False,
    randomize: bool = False,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(train task ids, test task ids) as int64 arrays, as the reference computes them.

    ``seed`` is the experiment seed (``--seed``); it matters only with
    ``interpolation`` and ``randomize``. ``randomize`` without ``interpolation``
    is ignored, as in the reference.
    """
    n_tasks, n_train, n_eval = int(n_tasks), int(n_train), int(n_eval)
    if n_tasks < 1 or n_train < 0 or n_eval < 0:
        raise ValueError(f"bad split sizes: n_tasks={n_tasks} n_train={n_train} n_eval={n_eval}")
    if n_train > n_tasks or n_eval > n_tasks:
        raise ValueError(f"n_train_tasks ({n_train}) and n_eval_tasks ({n_eval}) must not exceed n_tasks ({n_tasks})")
    if interpolation:
        if randomize:
            # RandomState(seed).choice draws exactly what np.random.seed(seed);
            # np.random.choice(...) draws (same legacy Mersenne-Twister stream).
            train = np.random.RandomState(seed).choice(n_tasks, size=n_train, replace=False).astype(np.int64)
            test = np.setdiff1d(np.arange(n_tasks), train).astype(np.int64)
            return train, test
        if n_eval == 0:
            raise ValueError("interpolation needs n_eval_tasks >= 1")
        gap = n_train // n_eval + 1
        test = np.arange(0, n_train + n_eval, gap, dtype=np.int64) + gap // 2
        if test.size and test.max() >= n_tasks:
            raise ValueError(
                f"the interpolation split of {n_train}/{n_eval} picks test task {int(test.max())}, beyond "
                f"n_tasks={n_tasks}; make n_train_tasks + n_eval_tasks equal env_params.n_tasks"
            )
        train = np.setdiff1d(np.arange(n_tasks), test).astype(np.int64)
        return train, test
    tasks = np.arange(n_tasks, dtype=np.int64)
    # tasks[-0:] would be every task; the reference never uses n_eval=0, keep it empty.
    return tasks[:n_train].copy(), (tasks[n_tasks - n_eval:].copy() if n_eval else tasks[:0].copy())


def split_tasks_from_variant(variant: Mapping[str, Any], seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_tasks` with the reference config's keys.

    Reads ``env_params.n_tasks``, ``n_train_tasks``, ``n_eval_tasks`` and the
    top-level ``interpolation`` / ``randomize_tasks`` (not
    ``env_params.randomize_tasks``, which shuffles the task parameters
    themselves); missing keys count as false, as in the reference.
    """
    return split_tasks(
        variant["env_params"]["n_tasks"],
        variant["n_train_tasks"],
        variant["n_eval_tasks"],
        interpolation=bool(variant.get("interpolation", False)),
        randomize=bool(variant.get("randomize_tasks", False)),
        seed=seed,
    )


def generation_tasks(n_tasks: int, n_splits: int = 1, split_idx: int = 0) -> range:
    """Tasks one data-generation job covers (``policy_train.py --split K --split_idx j``)."""
    n_tasks, n_splits, split_idx = int(n_tasks), int(n_splits), int(split_idx)
    if n_splits < 1 or n_tasks % n_splits:
        raise ValueError(f"--split {n_splits} does not divide n_tasks={n_tasks}; pick a divisor of {n_tasks}")
    if not 0 <= split_idx < n_splits:
        raise ValueError(f"--split_idx must be in 0..{n_splits - 1}, got {split_idx}")
    per = n_tasks // n_splits
    return range(per * split_idx, per * (split_idx + 1))
