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

OBJECTIVES: tuple[type[RepresentationObjective], ...] = (
    ClubObjective,
    DistanceMetricObjective,
    InformationBottleneckObjective,
    CorroObjective,
    UnicornDecoderObjective,
)


def method_keys() -> tuple[str, ...]:
    """Every objective's config keys (switch, then settings), in registry order: what tells methods apart."""
    return tuple(k for cls in OBJECTIVES for k in cls.keys())


def build_objectives(obs_dim: int, action_dim: int, hp, device) -> list[RepresentationObjective]:
    """The objectives ``hp`` switches on, in registry order."""
    return [cls(obs_dim, action_dim, hp, device) for cls in OBJECTIVES if cls.enabled(hp)]


__all__ = ["OBJECTIVES", "EncodedBatch", "RepresentationObjective", "Stats", "build_objectives", "method_keys",
           "ClubObjective", "CorroObjective",
           "DistanceMetricObjective", "InformationBottleneckObjective", "UnicornDecoderObjective"]
