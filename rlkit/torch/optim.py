"""The step's optimizer, in one place: Adam, fused into one kernel per step when asked.

``fused_adam`` trades the per-parameter loop of ``torch.optim.Adam`` for one
fused kernel (CPU and CUDA). The update is the same formula; its rounding
differs in the last bits, so runs with and without it are not bit-identical.
Off by default, which keeps the golden regression tables exact;
``benchmarks/bench_fused_adam.py`` measures whether it pays.
"""

from __future__ import annotations

import functools

import torch


def make_adam(hp) -> functools.partial:
    """``Adam(params, lr=...)`` with the fused kernel when ``hp.fused_adam`` is set."""
    return functools.partial(torch.optim.Adam, fused=True) if hp.fused_adam else torch.optim.Adam
