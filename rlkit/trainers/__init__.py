"""The trainer registry: ``algo_params.trainer`` names one of these (docs/method.md §8).

The registry is the single source of truth of which methods can train: the
launcher, the config check, the run readers (rlkit.evaluation.run_loader) and
the benchmarks all ask it. A new trainer is one module beside these (a
:class:`~rlkit.trainers.base.Trainer` subclass) and one
:func:`register_trainer` line below, or a :func:`register_trainer` call in the
user's own code before the run starts: nothing else in the package changes.
"""

from __future__ import annotations

from typing import Mapping

from rlkit.config import ConfigError, register_config_section, unregister_config_section
from rlkit.trainers.base import Trainer

DEFAULT_TRAINER = "csro"  # what algo_params.trainer was before the key existed: every older run is CSRO's

_TRAINERS: dict[str, type[Trainer]] = {}


def register_trainer(cls: type[Trainer], name: str | None = None, *, replace: bool = False) -> type[Trainer]:
    """Register ``cls`` under ``name`` (default ``cls.name``) and return it (usable as a decorator).

    Registering another class under a taken name is refused, so a plug-in cannot silently shadow a
    shipped method; ``replace=True`` says it is meant.
    """
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise TypeError(f"register_trainer: {cls!r} is not a rlkit.trainers.base.Trainer subclass")
    name = str(name or getattr(cls, "name", "") or "")
    if not name:
        raise TypeError(f"register_trainer: {cls.__name__} has no name; set its class attribute name or pass one")
    if name in _TRAINERS and _TRAINERS[name] is not cls and not replace:
        raise ValueError(f"register_trainer: {name!r} is already {_TRAINERS[name].__qualname__}; "
                         "choose another name or pass replace=True")
    if cls.config_section:  # its settings become valid config keys (rlkit.config.register_config_section)
        register_config_section(cls.config_section, cls.config_defaults(), replace=replace)
    _TRAINERS[name] = cls
    return cls


def unregister_trainer(name: str) -> None:
    """Remove a registered trainer (for tests and plug-ins that registered one for a while), with its
    config section."""
    cls = _TRAINERS.pop(name, None)
    if cls is not None and cls.config_section and not any(
            other.config_section == cls.config_section for other in _TRAINERS.values()):
        unregister_config_section(cls.config_section)


def trainer_names() -> tuple[str, ...]:
    """The registered trainers' names, sorted."""
    return tuple(sorted(_TRAINERS))


def get_trainer(name: str) -> type[Trainer]:
    """The trainer class registered as ``name``, or a one-line ConfigError naming the registered ones."""
    try:
        return _TRAINERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown algo_params.trainer {name!r}; registered trainers: {', '.join(trainer_names())} "
                          "(register yours with rlkit.trainers.register_trainer before the run starts)") from None


def trainer_name(cfg: Mapping) -> str:
    """The trainer of a config or a run's variant; a run made before the key existed is CSRO's."""
    return str((cfg.get("algo_params") or {}).get("trainer", DEFAULT_TRAINER))


def trainer_of(cfg: Mapping) -> type[Trainer]:
    """The trainer class a config (or a run's variant) names."""
    return get_trainer(trainer_name(cfg))


from rlkit.trainers.borel import BOReLMethod  # noqa: E402 (the shipped trainers, one line each)
from rlkit.trainers.csro import CSROMethod  # noqa: E402
from rlkit.trainers.prompt_dt import PromptDTMethod  # noqa: E402

register_trainer(CSROMethod)
register_trainer(BOReLMethod)
register_trainer(PromptDTMethod)

__all__ = ["DEFAULT_TRAINER", "Trainer", "BOReLMethod", "CSROMethod", "PromptDTMethod", "get_trainer", "register_trainer", "trainer_name",
           "trainer_names", "trainer_of", "unregister_trainer"]
