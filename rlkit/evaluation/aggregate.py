"""Aggregate final returns over seeds: rliable's interquartile mean with a stratified bootstrap CI.

A mean ± std over three seeds hides how little three seeds say; the
interquartile mean (IQM: the mean of the middle 50 % of runs, robust to one
outlier seed) with a 95 % stratified bootstrap confidence interval says it
honestly (Agarwal et al. 2021, the rliable library). Scores are a
(runs x tasks) matrix per method; here a "task" is one evaluation setting
(one env), so one method on one env is an (n_seeds x 1) matrix.

The IQM is ``rliable.metrics.aggregate_iqm``. The bootstrap is rliable's
stratified percentile bootstrap (runs resampled with replacement within each
task) written out here with a seeded NumPy generator, because
``rliable.library`` cannot be used as is: it imports ``arch``, whose 7.x
releases (the ones rliable 1.2 allows) fail to import under pandas 3, and it
draws its resamples from NumPy's global generator whatever ``random_state`` it
is given. rliable is the optional ``stats`` extra (``pip install -e '.[stats]'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlkit.errors import UserError

DEFAULT_REPS = 2000
CI_SIZE = 0.95


class AggregateUnavailable(UserError):
    """rliable is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Aggregate:
    """IQM of the scores, its ``CI_SIZE`` stratified bootstrap interval (low, high), the plain mean."""

    iqm: float
    low: float
    high: float
    mean: float
    n_runs: int


def _aggregate_iqm():
    try:
        from rliable.metrics import aggregate_iqm
    except ImportError:
        raise AggregateUnavailable("multi-seed aggregates need rliable: pip install 'rliable>=1.2' "
                                   "(or the project's [stats] extra)") from None
    return aggregate_iqm


def stratified_bootstrap(scores: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """``reps`` resampled copies [reps, runs, tasks]: each task's runs drawn with replacement, independently."""
    x = np.asarray(scores, dtype=np.float64)
    n, m = x.shape
    idx = np.random.default_rng(seed).integers(0, n, size=(reps, n, m))
    return x[idx, np.arange(m)]


def iqm_with_ci(scores, reps: int = DEFAULT_REPS, seed: int = 0, ci: float = CI_SIZE) -> Aggregate:
    """IQM of ``scores`` ([runs] or [runs, tasks]) and its percentile CI; the same seed gives the same CI."""
    aggregate_iqm = _aggregate_iqm()
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.isfinite(x).all():
        raise ValueError(f"scores must be a finite, non-empty [runs, tasks] matrix, got shape {np.shape(scores)}")
    if not 0 < ci < 1 or reps < 1:
        raise ValueError(f"need 0 < ci < 1 and reps >= 1, got ci={ci}, reps={reps}")
    boot = np.array([aggregate_iqm(b) for b in stratified_bootstrap(x, reps, seed)])
    low, high = np.percentile(boot, [50 * (1 - ci), 50 * (1 + ci)])
    return Aggregate(iqm=float(aggregate_iqm(x)), low=float(low), high=float(high), mean=float(x.mean()),
                     n_runs=int(x.shape[0]))
