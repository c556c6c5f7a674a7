"""FOCAL's distance metric on task embeddings (docs/method.md §5.6).

Pulls embeddings of the same task together and pushes those of different tasks
apart (an inverse-square repulsion), over all pairs of the meta batch.
"""

from __future__ import annotations

from rlkit.torch import losses as L
from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective


class DistanceMetricObjective(RepresentationObjective):
    name = "distance_metric"
    statistics = ("Z Loss",)
    switch = "use_FOCAL_cl"
    settings = ("z_loss_weight",)

    def loss(self, batch: EncodedBatch):
        term = self.hp.z_loss_weight * L.focal_distance_metric_loss(batch.posterior.z, batch.task_ids)
        return term, {"Z Loss": term.detach()}
