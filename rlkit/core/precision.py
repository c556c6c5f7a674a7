"""The floating-point type a run computes in: float32 (the default) or float64.

Why a switch at all: float32 results depend on the machine. The CPU's vector
width (torch's ATEN_CPU_CAPABILITY kernels) and the BLAS kernel MKL picks change
how sums are rounded, and Adam amplifies those last-bit differences over a few
steps to ~1e-3 relative in logged statistics. In float64 the same differences
stay near 1e-12, so numbers committed on one machine (the golden regression
tables, tests/golden/) hold on every other one. float32 stays the default: it
is what the paper's runs use and twice as fast on large networks.

How it is applied, in one place per program:

* meta-training (``util_params.dtype``) sets torch's default dtype for the
  run's duration (:func:`computing_in`), so every network, optimizer state and
  tensor created without an explicit dtype follows it;
* the behaviour-policy generator (``dtype`` of the SAC preset) passes
  :func:`torch_dtype` to its ensemble and replay buffer, which take a dtype;
* code that turns host arrays into tensors (float32 observations, dataset rows)
  asks :func:`compute_dtype`, or :func:`dtype_of` the module the tensor feeds,
  instead of writing ``torch.float32``.

Files keep their own types: datasets store float32 (a file format) and are
cast to the compute dtype when loaded; actions sent to an env are float32, the
type of its action space.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from rlkit.config import COMPUTE_DTYPES

DEFAULT = "float32"
_TORCH = {name: getattr(torch, name) for name in COMPUTE_DTYPES}


def torch_dtype(name: str | None) -> torch.dtype:
    """The torch dtype of a config value (None: the default, float32); ValueError for anything else."""
    name = DEFAULT if name is None else name
    if name not in _TORCH:
        raise ValueError(f"dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
    return _TORCH[name]


def compute_dtype() -> torch.dtype:
    """The dtype tensors are computed in here: torch's default, which :func:`computing_in` sets."""
    return torch.get_default_dtype()


def dtype_of(module: torch.nn.Module | object) -> torch.dtype:
    """The dtype of ``module``'s floating parameters (inputs must match it), else :func:`compute_dtype`.

    Tools that load a finished run build its networks in the run's dtype, which
    need not be this process's default.
    """
    for p in getattr(module, "parameters", lambda: ())():  # an agent need not be a module (tests' stubs)
        if p.is_floating_point():
            return p.dtype
    return compute_dtype()


@contextmanager
def computing_in(name: str | None) -> Iterator[torch.dtype]:
    """Make ``name`` torch's default dtype inside the block, and restore the previous one after.

    Restoring matters where one process runs several things: a sweep's runs
    (each with its own config), or tests.
    """
    dtype = torch_dtype(name)
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield dtype
    finally:
        torch.set_default_dtype(before)
