"""UNICORN-SUP's supervised term (Li et al., NeurIPS 2024; docs/method.md §8.3).

UNICORN bounds I(Z; M), what the representation holds about the task, from
below in two ways. The supervised one needs the task's label, which an
offline multi-task dataset has: I(Z; M) >= H(M) + E[log q(M | Z)] for any
classifier q, so training q and the encoder to minimise the cross-entropy of
the task label given z raises the bound. This objective is that term: a
classifier (one hidden layer of ``unicorn_classifier_hidden_size``, ReLU) of
the task id from each context transition's embedding z_t, its cross-entropy
averaged over the meta batch's transitions, trained jointly with the encoder
(one backward pass, both stepped). The UNICORN-SUP preset uses it alone, as
the paper's supervised variant, without FOCAL's distance metric.

UNICORN's public code (betray12138/UNICORN, d8853cd) ships the
self-supervised variant only, so the classifier's size, its reading of z
per transition and its classes (one per task id of the env, so no test task
is ever a label) are this project's choices, stated in method.md §8.4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective, Stats


class UnicornClassifierObjective(RepresentationObjective):
    name = "unicorn_classifier"
    statistics = ("Classifier Loss", "Classifier Accuracy")
    switch = "use_unicorn_classifier"
    settings = ("unicorn_classifier_weight", "unicorn_classifier_hidden_size", "unicorn_classifier_classes")

    def __init__(self, obs_dim, action_dim, hp, device):
        super().__init__(obs_dim, action_dim, hp, device)
        classes = int(hp.unicorn_classifier_classes)
        if classes < 1:
            raise ValueError("unicorn_classifier_classes must be at least 1 (0 resolves to env_params.n_tasks "
                             "when the settings come from a config)")
        hidden = int(hp.unicorn_classifier_hidden_size)
        self.classifier = self.own_model(
            nn.Sequential(nn.Linear(hp.latent_size, hidden), nn.ReLU(), nn.Linear(hidden, classes)),
            hp.context_lr, joint=True)

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, Stats]:
        z_t = batch.z_t                                             # [T, N, L], with gradient to the encoder
        logits = self.classifier(z_t).flatten(0, 1)                 # [T*N, classes]
        labels = batch.task_ids.to(torch.long)[:, None].expand(-1, z_t.shape[1]).flatten()
        if int(labels.max()) >= logits.shape[-1]:
            raise ValueError(f"task id {int(labels.max())} has no class among unicorn_classifier_classes="
                             f"{logits.shape[-1]}; set it to the env's n_tasks or more")
        ce = F.cross_entropy(logits, labels)
        term = self.hp.unicorn_classifier_weight * ce
        accuracy = (logits.detach().argmax(-1) == labels).to(z_t.dtype).mean()
        return term, {"Classifier Loss": term.detach(), "Classifier Accuracy": accuracy}
