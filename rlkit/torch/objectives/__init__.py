"""Representation objectives: the parts of a training step that shape the context encoder.

``OBJECTIVES`` is the registry, in the order the step fits them and sums their
losses. A new objective is one module here, one line below, and its keys in
rlkit/defaults.py (docs/method.md §8 walks through an example).
"""

from __future__ import annotations

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
    need = [cls.switch for cls in OBJECTIVES] + list(ENCODER_METHOD_KEYS)
    need += [k for cls in OBJECTIVES if params.get(cls.switch) for k in cls.variant_settings]
    return [k for k in need if k not in params]


def build_objectives(obs_dim: int, action_dim: int, hp, device) -> list[RepresentationObjective]:
    """The objectives ``hp`` switches on, in registry order."""
    return [cls(obs_dim, action_dim, hp, device) for cls in OBJECTIVES if cls.enabled(hp)]


__all__ = ["OBJECTIVES", "ENCODER_METHOD_KEYS", "EncodedBatch", "preset_open_keys", "RepresentationObjective", "Stats", "build_objectives", "method_keys",
           "ClubObjective", "CorroObjective",
           "DistanceMetricObjective", "InformationBottleneckObjective", "UnicornClassifierObjective",
           "UnicornDecoderObjective"]
