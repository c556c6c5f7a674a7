"""UNICORN-SS's reconstruction term (Li et al., NeurIPS 2024; docs/method.md §8.3).

UNICORN shows that FOCAL, CORRO and CSRO each bound I(Z; M), the mutual
information between the task and its representation, and that a
self-supervised bound adds I(Z; X_t | X_b): what z says about the part of a
transition the task decides (r, and s' when dynamics vary) given the part
the behaviour policy decides (s, a). Its self-supervised variant therefore
trains the encoder with FOCAL's distance metric *plus* the likelihood of a
decoder p(r, s' - s | s, a, z). This objective is that decoder term; the
UNICORN-SS preset switches it on beside the distance metric
(rlkit/torch/objectives/distance_metric.py), 0.15 on the metric and 1 on the
reconstruction: UNICORN's weights on ant-dir and cheetah-vel, used here for
every env (theirs differ per env; docs/method.md §8.4).

As in UNICORN's code, the decoder is one Gaussian MLP per target (2 hidden
layers of ``unicorn_decoder_hidden_size``, SiLU) with learned soft bounds on
the log-variance; its loss is mean((y - mu)^2 exp(-logvar) + logvar) plus
0.01 (sum max_logvar - sum min_logvar). The decoder is trained jointly with
the encoder: one backward pass, both stepped (``joint_optimizers``). z is the
task's pooled embedding, read at every context transition of that task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective, Stats


class GaussianMLP(nn.Module):
    """MLP to (mean, log-variance) of one target, the log-variance softly kept in learned bounds."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int = 2):
        super().__init__()
        body, d = [], in_dim
        for _ in range(layers):
            body += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        self.body = nn.Sequential(*body, nn.Linear(d, 2 * out_dim))
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.body(x).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def nll(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Gaussian negative log-likelihood (without the constant and the 1/2) plus the bounds' penalty."""
        mean, logvar = self(x)
        nll = ((mean - target) ** 2 * torch.exp(-logvar) + logvar).mean()
        return nll + 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())


class UnicornDecoderObjective(RepresentationObjective):
    name = "unicorn_decoder"
    statistics = ("Reconstruction Loss",)
    switch = "use_unicorn_decoder"
    settings = ("unicorn_recon_weight", "unicorn_decoder_hidden_size")

    def __init__(self, obs_dim, action_dim, hp, device):
        super().__init__(obs_dim, action_dim, hp, device)
        inp, hidden = obs_dim + action_dim + hp.latent_size, hp.unicorn_decoder_hidden_size
        decoders = nn.ModuleDict({"reward": GaussianMLP(inp, 1, hidden)})
        if hp.use_next_obs_in_context:  # the context holds s': the dynamics head reconstructs s' - s
            decoders["dynamics"] = GaussianMLP(inp, obs_dim, hidden)
        self.decoders = self.own_model(decoders, hp.context_lr, joint=True)

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, Stats]:
        c = batch.split_context()
        n = batch.context.shape[1]
        z = batch.posterior.z[:, None, :].expand(-1, n, -1)       # the task's z at each of its transitions
        x = torch.cat([z, c["obs"], c["actions"]], -1)
        recon = self.decoders["reward"].nll(x, c["rewards"])
        if "dynamics" in self.decoders:
            recon = recon + self.decoders["dynamics"].nll(x, c["next_obs"] - c["obs"])
        term = self.hp.unicorn_recon_weight * recon
        return term, {"Reconstruction Loss": term.detach()}
