"""Sample and apply randomized physics parameters on a compiled MuJoCo model.

Each element is scaled independently by ``base ** U(-log_scale_limit, log_scale_limit)``
with base 1.5 for body_mass, body_inertia and geom_friction and 1.3 for
dof_damping (docs/method.md §2). Tasks are drawn from one ``RandomState(seed)`` stream in
the order mass, inertia, damping, friction per task — the reference's order, so
the same model shapes give the same multipliers as the reference.
"""

from __future__ import annotations

from typing import Iterable

import mujoco
import numpy as np

RAND_PARAMS = ("body_mass", "body_inertia", "dof_damping", "geom_friction")
_LOG_BASE = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}


def sample_param_sets(
    base: dict[str, np.ndarray],
    n_tasks: int,
    seed: int = 1234,
    log_scale_limit: float = 3.0,
    rand_params: Iterable[str] = RAND_PARAMS,
) -> list[dict[str, np.ndarray]]:
    """``n_tasks`` parameter dicts, each a multiplied copy of ``base``."""
    rand_params = tuple(rand_params)
    unknown = set(rand_params) - set(RAND_PARAMS)
    if unknown:
        raise ValueError(f"unknown rand_params {sorted(unknown)}; choose from {list(RAND_PARAMS)}")
    rng = np.random.RandomState(seed)
    tasks = []
    for _ in range(int(n_tasks)):
        params = {}
        for name in RAND_PARAMS:  # fixed order: it decides which random numbers go where
            if name in rand_params:
                mult = _LOG_BASE[name] ** rng.uniform(-log_scale_limit, log_scale_limit, size=base[name].shape)
                params[name] = base[name] * mult
        tasks.append(params)
    return tasks


class PhysicsRandomizer:
    """Owns the base values of a model's randomizable arrays and applies task values.

    ``apply`` first restores every base value and then writes the task's arrays, so
    switching tasks any number of times never drifts. ``mj_setConst`` then
    recomputes the constants MuJoCo derives from masses and inertias
    (subtree masses, inverse weights), keeping the model self-consistent.
    """

    def __init__(self, model: mujoco.MjModel, rand_params: Iterable[str] = RAND_PARAMS):
        self.model = model
        self.rand_params = tuple(rand_params)
        self.base = {name: getattr(model, name).copy() for name in self.rand_params}

    def apply(self, params: dict[str, np.ndarray] | None, data: mujoco.MjData | None = None) -> None:
        for name, value in self.base.items():
            getattr(self.model, name)[:] = value
        for name, value in (params or {}).items():
            target = getattr(self.model, name)
            value = np.asarray(value, dtype=target.dtype)
            if value.shape != target.shape:
                raise ValueError(f"{name}: task value shape {value.shape} != model shape {target.shape}")
            target[:] = value
        if data is not None:
            mujoco.mj_setConst(self.model, data)
