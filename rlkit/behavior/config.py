"""Compose the behaviour-SAC hydra configs in ``configs/sac`` (presets: train, train_point, train_quick).

The reference composes ``train.yaml`` / ``train_point.yaml`` with hydra's compose
API; we do the same, from an absolute path so the working directory does not
matter, and without disturbing any hydra instance the caller already set up.
"""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from rlkit.config import COMPUTE_DTYPES, REPO_CONFIG_DIR

#: configs/sac at the repository root.
CONFIG_DIR = REPO_CONFIG_DIR / "sac"


def available_presets() -> list[str]:
    """Names accepted by :func:`compose_sac_config` (the top-level yaml files)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def compose_sac_config(preset: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config of ``preset`` (``"train"``, ``"train_point"``, ``"train_quick"``;
    a ``.yaml`` suffix is accepted) with hydra-syntax ``overrides`` such as
    ``["agent.batch_size=256", "num_train_steps=100"]``.

    Raises ValueError with a one-line message for an unknown preset or a bad override.
    The result is in struct mode: reading or setting an unknown key is an error.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    name = preset[:-5] if preset.endswith(".yaml") else preset
    presets = available_presets()
    if name not in presets:
        raise ValueError(f"unknown SAC preset {preset!r}; available: {', '.join(presets)}")

    try:
        cfg = _compose(name, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        hint = _closest_key_hint(name, overrides)
        raise ValueError(f"bad override for SAC preset {name!r} {list(overrides)}: {_one_line(exc)}{hint}") from None
    if overrides:
        _check_types(name, cfg)
    _check_values(name, cfg)
    return cfg


# (key, lowest allowed, lowest is allowed?) for the numbers a run cannot work without
_SAC_RANGES = (
    ("num_train_steps", 1, True), ("num_seed_steps", 0, True), ("eval_frequency", 1, True),
    ("num_eval_episodes", 0, True), ("num_eval_sample_episodes", 0, True), ("replay_buffer_capacity", 1, True),
    ("agent.batch_size", 1, True), ("agent.hidden_dim", 1, True), ("agent.hidden_depth", 0, True),
    ("agent.actor_lr", 0.0, False), ("agent.critic_lr", 0.0, False), ("agent.alpha_lr", 0.0, True),
    ("agent.init_temperature", 0.0, False), ("agent.discount", 0.0, True), ("agent.critic_tau", 0.0, False),
    ("agent.actor_update_frequency", 1, True), ("agent.critic_target_update_frequency", 1, True),
)


def _check_values(name: str, cfg: DictConfig) -> None:
    """Values that cannot be right (a zero frequency, a negative step count, a NaN rate) fail here, in one line."""
    import math

    for key, low, inclusive in _SAC_RANGES:
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ValueError(f"SAC preset {name!r}: {key} must be a finite number {bound}, got {value!r}")
    for key in ("agent.discount", "agent.critic_tau"):
        if OmegaConf.select(cfg, key) > 1:
            raise ValueError(f"SAC preset {name!r}: {key} must be at most 1, got {OmegaConf.select(cfg, key)}")
    dtype = OmegaConf.select(cfg, "dtype")
    if dtype is not None and dtype not in COMPUTE_DTYPES:
        raise ValueError(f"SAC preset {name!r}: dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")


def _compose(name: str, overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    # hydra keeps one global instance; park the caller's, compose, then put it back.
    saved = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=name, overrides=list(overrides))
    finally:
        restore_gh_from_backup(saved)


def _type_ok(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, str):  # names: hydra reads `experiment=2024` as an int
        return isinstance(value, (str, int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, list):
        return isinstance(value, list) and len(value) == len(default) and all(map(_type_ok, default, value))
    return True


def _check_types(name: str, cfg: DictConfig) -> None:
    """An override must keep the preset's type (an int where an int is, a number where a float is)."""
    from omegaconf import OmegaConf

    base = OmegaConf.to_container(_compose(name, ()), resolve=True)
    try:
        new = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # e.g. an interpolation to a missing key
        raise ValueError(f"bad override for SAC preset {name!r}: {_one_line(exc)}") from None

    def walk(b, n, prefix):
        for k, dv in b.items():
            if k not in n:
                continue
            if isinstance(dv, dict):
                walk(dv, n[k], f"{prefix}{k}.")
            elif not _type_ok(dv, n[k]):
                raise ValueError(f"bad override for SAC preset {name!r}: {prefix}{k}={n[k]!r} "
                                 f"should be like the default {dv!r} ({type(dv).__name__})")

    walk(base, new, "")


def _dotted_keys(node, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        out.append(prefix + str(k))
        if isinstance(v, dict):
            out += _dotted_keys(v, f"{prefix}{k}.")
    return out


def _closest_key_hint(name: str, overrides: Sequence[str]) -> str:
    """" (did you mean 'agent.batch_size'?)" for the first override key that does not exist."""
    import difflib

    from omegaconf import OmegaConf

    try:
        base = OmegaConf.to_container(_compose(name, ()), resolve=False)
    except Exception:  # the hint is best effort
        return ""
    known = _dotted_keys(base)
    for ov in overrides:
        key = ov.split("=", 1)[0].lstrip("+~")
        if "=" in ov and key not in known and not ov.startswith("+"):
            close = difflib.get_close_matches(key, known, n=1)
            if close:
                return f" (did you mean {close[0]!r}?)"
    return ""
