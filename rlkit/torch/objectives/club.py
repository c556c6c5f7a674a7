"""CLUB: the max-min mutual-information objective of CSRO (docs/method.md §5.5).

q(z | x) is fitted to the encoder's per-transition embeddings (the "max"
step, its own optimizer); the encoder then minimises the CLUB upper bound of
I(z; x) within each task (the "min"), so z stops encoding the behaviour
policy's (s, a) and keeps only what identifies the task.
"""

from __future__ import annotations

import torch

from rlkit.torch import losses as L
from rlkit.torch.networks import ClubNetwork
from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective, Stats


class ClubObjective(RepresentationObjective):
    name = "club"
    statistics = ("Club model Loss", "Club Loss")  # the authors' column names, in their order
    switch = "use_club"
    settings = ("club_loss_weight", "club_model_loss_weight", "club_use_sa")

    def __init__(self, obs_dim, action_dim, hp, device):
        super().__init__(obs_dim, action_dim, hp, device)
        # the reference gives CLUB the context encoder's learning rate
        self.net = self.own_model(ClubNetwork(obs_dim, action_dim, hp.latent_size, hp.use_next_obs_in_context,
                                              hp.club_use_sa), hp.context_lr)

    def model_loss(self, batch: EncodedBatch) -> torch.Tensor:
        """Weighted negative log-likelihood of the detached z_t under q (gradient to q only)."""
        mu, var = self.net.from_context(batch.context)
        return self.hp.club_model_loss_weight * L.club_model_loss(mu, var, batch.z_t.detach())

    def fit(self, batch: EncodedBatch) -> Stats:
        loss = self.model_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"Club model Loss": loss.detach()}

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, Stats]:
        with torch.no_grad():  # q is frozen here: read it as just fitted
            mu, var = self.net.from_context(batch.context)
        term = self.hp.club_loss_weight * L.club_mi_upper_bound(mu, var, batch.z_t)
        return term, {"Club Loss": term.detach()}
