"""CORRO's contrastive transition encoder (Yuan & Lu, ICML 2022; docs/method.md §8.2).

CORRO trains the per-transition encoder with InfoNCE. The query and its
positive key are two transitions of the same task. The negatives share the
query's (s, a) but carry an outcome (r[, s']) of *other* tasks, drawn from a
conditional VAE p(r, s' | s, a, h), h ~ N(0, I), fitted on every training
task's transitions. Because a negative differs from the query only in what
the task decides, the encoder cannot separate them by the behaviour policy's
(s, a): that is CORRO's answer to context shift, as CLUB is CSRO's.

CORRO's relabelling variant (``corro_negatives_from=relabel``) takes the
negatives' outcomes from the env instead: the same (s, a) stepped in K random
training tasks (:meth:`rlkit.envs.base.MultiTaskEnv.relabel_outcomes`, which
the sampler calls; envs that cannot step from a stored state refuse).

Choices (each discussed in docs/method.md §8.2):

- The CVAE has CORRO's shape and loss: one hidden layer of
  ``corro_cvae_hidden_size``, a ``corro_cvae_latent_size``-dimensional h, and
  loss MSE(s') + MSE(r) + ``corro_cvae_kl_weight`` KL. CORRO pre-trains it for
  100 epochs and freezes it; here it is fitted on each step's context
  transitions (its own Adam step, before the encoder's), so a run is one
  command and a snapshot resumes all of it.
- InfoNCE on unit-length embeddings (the CORRO presets also set the encoder's
  ``normalize_transition_z``, so the policy's z is the mean of unit vectors,
  as CORRO's): logits are cosine similarities divided by ``corro_temperature``; ``corro_batch_size`` queries per step, each with
  ``corro_negatives`` negatives, as CORRO's 64 x 16 at temperature 0.1.
- Only InfoNCE trains the encoder (the preset keeps ``allow_backward_z``
  off), as in CORRO, where RL never reaches the transition encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlkit.config import ConfigError
from rlkit.torch.objectives.base import EncodedBatch, RepresentationObjective, Stats


def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of ``query`` [B, L] against its positive ``key`` [B, L] and ``negatives`` [B, K, L].

    Cross-entropy of the positive among the K + 1 candidates, with logits the
    cosine similarities over ``temperature``; averaged over the B queries.
    """
    q, k, n = F.normalize(query, dim=-1), F.normalize(key, dim=-1), F.normalize(negatives, dim=-1)
    pos = (q * k).sum(-1, keepdim=True)                      # [B, 1]
    neg = torch.einsum("bl,bkl->bk", q, n)                  # [B, K]
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def relabelled_rows(relabel_outcomes, to_context, train_ids: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor,
                    task: torch.Tensor, row: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """[B, k, D] context rows: the (s, a) of context transition (``task[i]``, ``row[i]``) of ``obs`` /
    ``actions`` [T, N, ...] with its outcome in k of ``train_ids`` drawn uniformly (CORRO's ground-truth
    relabelling: the query's own task may be drawn, as in CORRO), from the env's closed-form step
    (``relabel_outcomes``), as the context would hold it (``to_context``: the sparse reward rule).

    The sampler binds everything but the rows (``MetaBatch.relabel``), so only the rows an
    objective asks for are relabelled: CORRO's 64 queries, not the 16 x 256 context transitions."""
    s, a = obs[task, row], actions[task, row]                                       # [B, obs], [B, act]
    pick = torch.randint(len(train_ids), (s.shape[0], k), generator=generator, device=generator.device)
    tasks = train_ids.to(obs.device)[pick.to(obs.device)]
    s = s[:, None, :].expand(-1, k, -1)
    a = a[:, None, :].expand(-1, k, -1)
    next_obs, rewards = relabel_outcomes(s, a, tasks)
    return to_context({"obs": s, "actions": a, "rewards": rewards[..., None].to(obs.dtype),
                       "next_obs": next_obs.to(obs.dtype)})


def check_relabel_source(relabel_outcomes, obs_dim: int, act_dim: int, obs_absmax, device) -> None:
    """Refuse, before training, what relabelling cannot step: an env without a closed-form step (its
    ``relabel_outcomes`` raises its own one-line error) or stored states kept normalized (``obs_absmax``)."""
    probe = torch.zeros(1, obs_dim, device=device)
    relabel_outcomes(probe, torch.zeros(1, act_dim, device=device), torch.zeros(1, dtype=torch.long))
    if obs_absmax is not None:
        raise ConfigError("corro_negatives_from=relabel steps the env from stored states, which this dataset "
                          "keeps normalized (obs_absmax); use algo_params.corro_negatives_from=cvae")


class TransitionCVAE(nn.Module):
    """CORRO's conditional VAE of a transition's outcome y = (r[, s']) given x = (s, a)."""

    def __init__(self, obs_dim: int, action_dim: int, outcome_dim: int, hidden: int, latent: int):
        super().__init__()
        self.latent = int(latent)
        x_dim = obs_dim + action_dim
        self.encoder = nn.Sequential(nn.Linear(x_dim + outcome_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(x_dim + latent, hidden), nn.ReLU(), nn.Linear(hidden, outcome_dim))

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, KL): the summed per-column MSEs of y and the mean KL of q(h | x, y) to N(0, I)."""
        mean, logvar = self.encoder(torch.cat([x, y], -1)).chunk(2, dim=-1)
        h = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        y_hat = self.decoder(torch.cat([x, h], -1))
        recon = ((y_hat - y) ** 2).reshape(-1, y.shape[-1]).mean(0).sum()
        kl = (-0.5 * (1 + logvar - mean ** 2 - logvar.exp()).sum(-1)).mean()
        return recon, kl

    @torch.no_grad()
    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """An outcome per row of ``x`` [..., s + a], with h drawn from the prior (a random task);
        ``generator`` for reproducible draws outside training (default: the global RNG)."""
        h = torch.randn(*x.shape[:-1], self.latent, device=x.device, dtype=x.dtype, generator=generator)
        return self.decoder(torch.cat([x, h], -1))


class CorroObjective(RepresentationObjective):
    name = "corro"
    statistics = ("CORRO CVAE Loss", "CORRO InfoNCE Loss")
    switch = "use_corro"
    settings = ("corro_loss_weight", "corro_temperature", "corro_batch_size", "corro_negatives", "corro_negatives_from",
                "corro_cvae_hidden_size", "corro_cvae_latent_size", "corro_cvae_kl_weight", "corro_cvae_lr")
    variant_settings = ("corro_negatives_from",)  # CVAE negatives (CORRO) or the env's (CORRO-relabel)

    def __init__(self, obs_dim, action_dim, hp, device):
        super().__init__(obs_dim, action_dim, hp, device)
        self.relabel = hp.corro_negatives_from == "relabel"
        if not self.relabel:
            outcome = 1 + (obs_dim if hp.use_next_obs_in_context else 0)  # r, and s' when the context has it
            self.cvae = self.own_model(TransitionCVAE(obs_dim, action_dim, outcome, hp.corro_cvae_hidden_size,
                                                      hp.corro_cvae_latent_size), hp.corro_cvae_lr)

    @classmethod
    def columns(cls, hp) -> tuple[str, ...]:
        return cls.statistics if hp.corro_negatives_from == "cvae" else ("CORRO InfoNCE Loss",)

    def batch_fields(self):
        return ("relabel",) if self.relabel else ()


    @staticmethod
    def _xy(batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """x = (s, a) and the outcome y = (r[, s']) of every context transition."""
        c = batch.split_context()
        y = torch.cat([c["rewards"], c["next_obs"]], -1) if "next_obs" in c else c["rewards"]
        return torch.cat([c["obs"], c["actions"]], -1), y

    def cvae_loss(self, batch: EncodedBatch) -> torch.Tensor:
        x, y = self._xy(batch)
        recon, kl = self.cvae.losses(x.detach(), y.detach())
        return recon + self.hp.corro_cvae_kl_weight * kl

    def fit(self, batch: EncodedBatch) -> Stats:
        if self.relabel:  # ground-truth outcomes need no model
            return {}
        loss = self.cvae_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"CORRO CVAE Loss": loss.detach()}

    def draw(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices of ``corro_batch_size`` (task, query, key) triples: the query and the key are two
        transitions of one task of the meta batch, drawn uniformly (with replacement, as CORRO)."""
        t, n = batch.context.shape[:2]
        b, dev = self.hp.corro_batch_size, batch.context.device
        return (torch.randint(t, (b,), device=dev), torch.randint(n, (b,), device=dev),
                torch.randint(n, (b,), device=dev))

    def negatives(self, batch: EncodedBatch, task: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """[B, K, D] context rows: each query's (s, a) with K outcomes sampled from the CVAE, or (relabelling)
        the outcomes of the same (s, a) in K random training tasks, which the sampler computed with the env."""
        if self.relabel:
            if batch.relabel is None:
                raise ValueError("corro_negatives_from=relabel needs the batch's relabel (the sampler's)")
            return batch.relabel(task, query, self.hp.corro_negatives)
        x, _ = self._xy(batch)
        xq = x[task, query]                                              # [B, s + a]
        xk = xq[:, None, :].expand(-1, self.hp.corro_negatives, -1)      # [B, K, s + a]
        return torch.cat([xk, self.cvae.sample(xk)], -1)                  # the context's column order

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, Stats]:
        task, query, key = self.draw(batch)
        neg_rows = self.negatives(batch, task, query)
        z = batch.z_t
        neg_z = batch.encoder.per_transition(neg_rows)[..., : batch.latent_size]
        term = self.hp.corro_loss_weight * info_nce(z[task, query], z[task, key], neg_z, self.hp.corro_temperature)
        return term, {"CORRO InfoNCE Loss": term.detach()}
