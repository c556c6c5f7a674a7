"""A plain single-task behaviour SAC: the slow, obvious version of :class:`EnsembleSAC`.

Written the way the authors' behaviour SAC is structured (``nn.Linear`` MLPs,
``torch.distributions`` tanh-Gaussian, three Adam optimizers, critic gradients
from the actor loss left to the next ``zero_grad``), but independently of the
batched code. It is the test oracle (a member of :class:`EnsembleSAC` must
train exactly like this) and the benchmark baseline ("one agent per task in a
python loop"). Its state dicts have the reference checkpoint key layout.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import distributions as pyd
from torch import nn
from torch.nn import functional as F

from rlkit.behavior.ensemble import mlp


def reference_weight_init(m: nn.Module) -> None:
    """The reference init for linear layers: orthogonal weight, zero bias."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight.data)
        if m.bias is not None:
            m.bias.data.fill_(0.0)


class PlainActor(nn.Module):
    """obs -> tanh-squashed diagonal Gaussian; ``trunk`` outputs (mu, raw log_std)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, hidden_depth: int,
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0)) -> None:
        super().__init__()
        self.log_std_bounds = log_std_bounds
        self.trunk = mlp(obs_dim, hidden_dim, 2 * action_dim, hidden_depth)
        self.apply(reference_weight_init)

    def forward(self, obs: torch.Tensor) -> pyd.TransformedDistribution:
        mu, log_std = self.trunk(obs).chunk(2, dim=-1)
        lo, hi = self.log_std_bounds
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        # cache_size=1: log_prob of a just-sampled action reuses its pre-tanh value.
        return pyd.TransformedDistribution(pyd.Normal(mu, log_std.exp()), [pyd.TanhTransform(cache_size=1)])


class PlainDoubleQ(nn.Module):
    """Two independent Q MLPs on cat(obs, action)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, hidden_depth: int) -> None:
        super().__init__()
        self.Q1 = mlp(obs_dim + action_dim, hidden_dim, 1, hidden_depth)
        self.Q2 = mlp(obs_dim + action_dim, hidden_dim, 1, hidden_depth)
        self.apply(reference_weight_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.Q1(x), self.Q2(x)


def _rsample(dist: pyd.TransformedDistribution, eps: torch.Tensor | None) -> torch.Tensor:
    """Reparameterized sample, with the standard-normal noise given explicitly if asked."""
    if eps is None:
        return dist.rsample()
    base = dist.base_dist
    return dist.transforms[0](base.loc + base.scale * eps)


class SingleTaskSAC:
    """One task's SAC with the reference's update order and schedule (batch tensors [B, dim])."""

    def __init__(self, obs_dim: int, action_dim: int, device: torch.device | str = "cpu", *,
                 hidden_dim: int = 1024, hidden_depth: int = 2, log_std_bounds=(-5.0, 2.0),
                 discount: float = 0.99, init_temperature: float = 0.1, alpha_lr: float = 1e-4,
                 alpha_betas=(0.9, 0.999), actor_lr: float = 1e-4, actor_betas=(0.9, 0.999),
                 actor_update_frequency: int = 1, critic_lr: float = 1e-4, critic_betas=(0.9, 0.999),
                 critic_tau: float = 0.005, critic_target_update_frequency: int = 2,
                 batch_size: int = 1024, dtype: torch.dtype = torch.float32, **_ignored) -> None:
        self.device = torch.device(device)
        self.discount, self.critic_tau = discount, critic_tau
        self.actor_update_frequency = actor_update_frequency
        self.critic_target_update_frequency = critic_target_update_frequency
        self.batch_size = batch_size
        self.target_entropy = -action_dim
        kw = {"device": self.device, "dtype": dtype}
        self.actor = PlainActor(obs_dim, action_dim, hidden_dim, hidden_depth, tuple(log_std_bounds)).to(**kw)
        self.critic = PlainDoubleQ(obs_dim, action_dim, hidden_dim, hidden_depth).to(**kw)
        self.critic_target = PlainDoubleQ(obs_dim, action_dim, hidden_dim, hidden_depth).to(**kw)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.log_alpha = torch.tensor(math.log(init_temperature), **kw).requires_grad_(True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr, betas=tuple(actor_betas))
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=critic_lr, betas=tuple(critic_betas))
        self.log_alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=alpha_lr, betas=tuple(alpha_betas))

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def update(self, batch: Mapping[str, torch.Tensor], step: int,
               noise: Mapping[str, torch.Tensor] | None = None) -> None:
        noise = noise or {}
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        reward, not_done = batch["reward"], 1.0 - batch["terminated"]

        dist = self.actor(next_obs)
        next_action = _rsample(dist, noise.get("next"))
        log_prob = dist.log_prob(next_action).sum(-1, keepdim=True)
        tq1, tq2 = self.critic_target(next_obs, next_action)
        target_q = (reward + not_done * self.discount * (torch.min(tq1, tq2) - self.alpha.detach() * log_prob)).detach()
        q1, q2 = self.critic(obs, action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        if step % self.actor_update_frequency == 0:
            dist = self.actor(obs)
            new_action = _rsample(dist, noise.get("current"))
            log_prob = dist.log_prob(new_action).sum(-1, keepdim=True)
            aq1, aq2 = self.critic(obs, new_action)
            actor_loss = (self.alpha.detach() * log_prob - torch.min(aq1, aq2)).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            self.log_alpha_optimizer.zero_grad()
            alpha_loss = (self.alpha * (-log_prob - self.target_entropy).detach()).mean()
            alpha_loss.backward()
            self.log_alpha_optimizer.step()

        if step % self.critic_target_update_frequency == 0:
            with torch.no_grad():
                for p, t in zip(self.critic.parameters(), self.critic_target.parameters()):
                    t.copy_(self.critic_tau * p + (1 - self.critic_tau) * t)
