"""Representation objectives: the parts of a training step that shape the context encoder.

``OBJECTIVES`` is the registry, in the order the step fits them and sums their
losses. A new objective is one module here, one line below, and its keys in
rlkit/defaults.py (docs/method.md §8 walks through an example); or, from the
user's own code, one :func:`register_objective` call with its keys' defaults.
"""

from __future__ import annotations

from typing import Any, Mapping

from rlkit.config import register_algo_params, unregister_algo_params
from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective, Stats
from rlkit.torch.objectives.club import ClubObjective
from rlkit.torch.objectives.corro import CorroObjective
from rlkit.torch.objectives.distance_metric import DistanceMetricObjective
from rlkit.torch.objectives.information_bottleneck import InformationBottleneckObjective
from rlkit.torch.objectives.unicorn import UnicornDecoderObjective
from rlkit.torch.objectives.unicorn_classifier import UnicornClassifierObjective

OBJECTIVES: tuple[type[RepresentationObjective], ...] = (
    ClubObjective,
    DistanceMetricObjective,
    InformationBottleneckObjective,
    CorroObjective,
    UnicornDecoderObjective,
    UnicornClassifierObjective,
)


# the objectives this package ships: every method preset fixes their switches (preset_open_keys)
SHIPPED_OBJECTIVES = OBJECTIVES


def register_objective(cls: type[RepresentationObjective], defaults: Mapping[str, Any]) -> type[RepresentationObjective]:
    """Add an objective from the user's own code, fitted and summed after the shipped ones.

    ``defaults`` gives its ``algo_params`` keys (its :attr:`~RepresentationObjective.switch`, off, and
    its :attr:`~RepresentationObjective.settings`), which become config keys like the built-in ones; a
    run turns it on with ``algo_params.SWITCH=true`` or a preset of the user's. The shipped presets do
    not fix a plug-in's switch (they predate it): a run that sets it under a shipped ``algo_type`` is
    that method plus the plug-in, labelled by its exp_name.
    """
    global OBJECTIVES
    if not (isinstance(cls, type) and issubclass(cls, RepresentationObjective)):
        raise TypeError(f"register_objective: {cls!r} is not a RepresentationObjective subclass")
    if any(other.name == cls.name and other is not cls for other in OBJECTIVES):
        raise ValueError(f"register_objective: an objective named {cls.name!r} is registered already")
    missing = [k for k in cls.keys() if k not in defaults]
    if missing:
        raise ValueError(f"register_objective: defaults lack {', '.join(missing)} (every key {cls.__name__} reads)")
    if defaults[cls.switch] is not False:
        raise ValueError(f"register_objective: {cls.switch} must default to false (off unless a run turns it on)")
    register_algo_params(defaults)
    if cls not in OBJECTIVES:
        OBJECTIVES = OBJECTIVES + (cls,)
    return cls


def unregister_objective(cls: type[RepresentationObjective]) -> None:
    """Remove a plug-in objective and its keys (tests and plug-ins that registered one for a while)."""
    global OBJECTIVES
    if cls in SHIPPED_OBJECTIVES:
        raise ValueError(f"{cls.__name__} is shipped; it cannot be unregistered")
    if cls in OBJECTIVES:
        OBJECTIVES = tuple(o for o in OBJECTIVES if o is not cls)
        unregister_algo_params(cls.keys())


def method_keys() -> tuple[str, ...]:
    """Every objective's config keys (switch, then settings), in registry order: what tells methods apart."""
    return tuple(k for cls in OBJECTIVES for k in cls.keys())


# The encoder's switches that tell methods apart as much as an objective's: whether the Q loss trains
# the encoder (offline PEARL) and whether transition embeddings are unit length (CORRO).
ENCODER_METHOD_KEYS = ("allow_backward_z", "normalize_transition_z")


def preset_open_keys(preset: dict) -> list[str]:
    """The method-defining keys a preset's ``algo_params`` leaves to whatever the env JSON says.

    A preset must fix every objective's switch, the encoder's method switches and the variant
    settings of the objectives it turns on; a key it leaves open could be set by an env JSON
    and turn a run labelled CSRO into another method (a "CSRO" run with a CORRO loss column).
    """
    params = {k: v for k, v in (preset.get("algo_params") or {}).items() if not str(k).startswith("_")}
    need = [cls.switch for cls in SHIPPED_OBJECTIVES] + list(ENCODER_METHOD_KEYS)
    need += [k for cls in OBJECTIVES if params.get(cls.switch) for k in cls.variant_settings]
    return [k for k in need if k not in params]


def build_objectives(obs_dim: int, action_dim: int, hp, device) -> list[RepresentationObjective]:
    """The objectives ``hp`` switches on, in registry order."""
    return [cls(obs_dim, action_dim, hp, device) for cls in OBJECTIVES if cls.enabled(hp)]


__all__ = ["OBJECTIVES", "SHIPPED_OBJECTIVES", "ENCODER_METHOD_KEYS", "register_objective", "unregister_objective", "EncodedBatch", "preset_open_keys", "RepresentationObjective", "Stats", "build_objectives", "method_keys",
           "ClubObjective", "CorroObjective",
           "DistanceMetricObjective", "InformationBottleneckObjective", "UnicornClassifierObjective",
           "UnicornDecoderObjective"]
