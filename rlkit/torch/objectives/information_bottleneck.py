"""PEARL's information bottleneck (docs/method.md §8): KL of the task posterior to N(0, I).

Used by offline PEARL, whose probabilistic encoder is otherwise trained through
the Q loss (``allow_backward_z``).
"""

from __future__ import annotations

from rlkit.torch.networks import ContextEncoder
from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective


class InformationBottleneckObjective(RepresentationObjective):
    name = "information_bottleneck"
    statistics = ("KL Divergence",)
    switch = "use_information_bottleneck"
    settings = ("kl_lambda",)

    def loss(self, batch: EncodedBatch):
        term = self.hp.kl_lambda * ContextEncoder.kl_to_prior(batch.posterior)
        return term, {"KL Divergence": term.detach()}
