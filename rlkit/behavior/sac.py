"""Behaviour-policy SAC for many tasks at once: one independent SAC per ensemble member.

Semantics follow the authors' behaviour SAC (docs/method.md §3, reference
``rlkit/torch/sac/pytorch_sac/agent/sac.py``), member by member:

* actor: MLP -> (mu, raw log_std); log_std = lo + (hi - lo) * (tanh(raw) + 1) / 2;
  action = tanh(mu + std * eps); deterministic action = tanh(mu).
* critic: two Q MLPs on (obs, action) and a Polyak target copy.
* critic step every update; actor and temperature every ``actor_update_frequency``
  updates (after the critic step, so the actor sees the new critic); target
  update every ``critic_target_update_frequency`` updates. The step counter is the
  caller's environment step, as in the reference.
* target = r + (1 - terminated) * discount * (min target Q - alpha * log pi):
  only true terminations stop bootstrapping; time-limit ends must be stored as
  ``terminated = 0`` (the reference's ``not_done_no_max``).
* temperature loss = alpha * mean(-log pi - target_entropy), with alpha (not
  log alpha) as the factor, as in the reference; target entropy is -|A|.

Why one optimizer is exact. Each member owns disjoint slices of the stacked
parameters, and each loss is the *sum over members* of that member's mean loss,
so the gradient of a member's slice is exactly its own single-task gradient.
Adam is elementwise (its moments, bias correction and step count act per
element, and all members step together), so one Adam over the stacked tensors
performs exactly the per-member Adam updates. (This would break with anything
that couples members, e.g. clipping by a global gradient norm.)
``tests/test_behavior_sac.py`` checks this against E separate agents.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import torch
from torch import nn

from rlkit.behavior.ensemble import EnsembleMLP

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)

#: The update's stats keys (reference logger names); values are per-member tensors [E].
CRITIC_STATS = ("train/batch_reward", "train_critic/loss", "train_critic/q1", "train_critic/target_q")
ACTOR_STATS = ("train_actor/loss", "train_actor/entropy", "train_actor/target_entropy",
               "train_alpha/loss", "train_alpha/value")


def squash_log_std(raw: torch.Tensor, log_std_min: float, log_std_max: float) -> torch.Tensor:
    """Map an unbounded output into [min, max] smoothly (tanh, then affine), as the reference does."""
    return log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(raw) + 1.0)


def squashed_gaussian_sample(mu: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterized tanh-Gaussian sample and its log density (summed over the last dim, kept).

    x = mu + std * eps, a = tanh(x); log pi(a) = log N(x; mu, std) - log|d tanh/dx|, with the
    stable form log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)).
    """
    x = mu + log_std.exp() * eps
    log_normal = -0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI
    log_det = 2.0 * (_LOG_2 - x - nn.functional.softplus(-2.0 * x))
    return torch.tanh(x), (log_normal - log_det).sum(-1, keepdim=True)


def _per_member_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dim but the first: [E, B, ...] -> [E]."""
    return x.flatten(1).mean(1)


class EnsembleSAC:
    """E independent SAC agents (one per task) whose networks are batched along dim 0.

    Tensors are laid out [E, B, dim]. The two Q networks are one ensemble of 2E
    members (Q1 of task e is member e, Q2 is member E + e) so both run in one
    batched matmul per layer.
    """

    def __init__(
        self,
        n_members: int,
        obs_dim: int,
        action_dim: int,
        device: torch.device | str = "cpu",
        *,
        hidden_dim: int = 1024,
        hidden_depth: int = 2,
        log_std_bounds: tuple[float, float] = (-5.0, 2.0),
        discount: float = 0.99,
        init_temperature: float = 0.1,
        alpha_lr: float = 1e-4,
        alpha_betas: tuple[float, float] = (0.9, 0.999),
        actor_lr: float = 1e-4,
        actor_betas: tuple[float, float] = (0.9, 0.999),
        actor_update_frequency: int = 1,
        critic_lr: float = 1e-4,
        critic_betas: tuple[float, float] = (0.9, 0.999),
        critic_tau: float = 0.005,
        critic_target_update_frequency: int = 2,
        batch_size: int = 1024,
        action_range: tuple[float, float] = (-1.0, 1.0),
        init: str = "orthogonal",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.n_members, self.obs_dim, self.action_dim = int(n_members), int(obs_dim), int(action_dim)
        self.device, self.dtype = torch.device(device), dtype
        self.hidden_dim, self.hidden_depth = int(hidden_dim), int(hidden_depth)
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.discount, self.critic_tau = float(discount), float(critic_tau)
        self.actor_update_frequency = int(actor_update_frequency)
        self.critic_target_update_frequency = int(critic_target_update_frequency)
        self.batch_size = int(batch_size)
        self.action_range = (float(action_range[0]), float(action_range[1]))
        self.target_entropy = -float(action_dim)
        self.init_temperature = float(init_temperature)
        kw = {"device": self.device, "dtype": dtype}

        E = self.n_members
        self.actor = EnsembleMLP(E, obs_dim, hidden_dim, 2 * action_dim, hidden_depth, init=init, **kw)
        self.critic = EnsembleMLP(2 * E, obs_dim + action_dim, hidden_dim, 1, hidden_depth, init=init, **kw)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.full((E,), math.log(init_temperature), requires_grad=True, **kw)

        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr, betas=tuple(actor_betas))
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=critic_lr, betas=tuple(critic_betas))
        self.log_alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=alpha_lr, betas=tuple(alpha_betas))
        self.num_updates = 0  # update() calls so far (the caller's step is passed in)
        self.last_step: int | None = None

    @classmethod
    def from_config(cls, agent_cfg: Mapping[str, Any], n_members: int, obs_dim: int, action_dim: int,
                    device: torch.device | str = "cpu", **overrides: Any) -> "EnsembleSAC":
        """Build from the ``agent`` node of a composed ``configs/sac`` config (``name`` is ignored)."""
        try:
            from omegaconf import DictConfig, OmegaConf
            if isinstance(agent_cfg, DictConfig):
                agent_cfg = OmegaConf.to_container(agent_cfg, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        params = {k: v for k, v in dict(agent_cfg).items() if k != "name"}
        for key in ("log_std_bounds", "alpha_betas", "actor_betas", "critic_betas", "action_range"):
            if key in params:
                params[key] = tuple(params[key])
        params.update(overrides)
        return cls(n_members, obs_dim, action_dim, device, **params)

    # ------------------------------------------------------------------ acting
    @property
    def alpha(self) -> torch.Tensor:
        """Temperatures [E]."""
        return self.log_alpha.exp()

    def _dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.actor(obs).chunk(2, dim=-1)
        return mu, squash_log_std(raw, *self.log_std_bounds)

    def _randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions for obs [E, obs_dim] -> [E, act_dim] (also [E, N, obs_dim] -> [E, N, act_dim]).

        ``sample=False`` gives the mean action tanh(mu) (the reference's deterministic
        evaluation); ``sample=True`` draws from the policy. Clamped to ``action_range``.
        """
        obs = torch.as_tensor(obs, device=self.device, dtype=self.dtype)
        flat = obs.reshape(self.n_members, -1, self.obs_dim)
        mu, log_std = self._dist_params(flat)
        if sample:
            action, _ = squashed_gaussian_sample(mu, log_std, self._randn(tuple(mu.shape), generator))
        else:
            action = torch.tanh(mu)
        action = action.clamp(*self.action_range)
        return action.reshape(*obs.shape[:-1], self.action_dim)

    # ---------------------------------------------------------------- learning
    def _both_q(self, net: EnsembleMLP, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        q = net(torch.cat([x, x], dim=0))  # members [0, E) are Q1, [E, 2E) are Q2
        return q[: self.n_members], q[self.n_members:]

    def update(self, batch: Mapping[str, torch.Tensor], step: int,
               noise: Mapping[str, torch.Tensor] | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One SAC update of every member; returns per-member stats (detached tensors [E]).

        batch: ``obs`` [E, B, obs_dim], ``action`` [E, B, A], ``reward`` [E, B, 1],
        ``next_obs`` [E, B, obs_dim], ``terminated`` [E, B, 1] (1 only for true
        terminations). noise (optional): standard-normal ``next`` [E, B, A] for the
        next-obs action in the critic target and ``current`` [E, B, A] for the actor
        update; missing entries are drawn with ``generator`` (on this agent's device).
        ``step`` decides the actor and target-update schedule, as in the reference.
        """
        noise = noise or {}
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        reward, terminated = batch["reward"], batch["terminated"]
        E, B = obs.shape[0], obs.shape[1]
        if E != self.n_members:
            raise ValueError(f"batch has {E} members, agent has {self.n_members}")
        eps_shape = (E, B, self.action_dim)
        for key, eps in noise.items():
            if key not in ("next", "current") or tuple(eps.shape) != eps_shape:
                raise ValueError(f"noise[{key!r}]: expected keys 'next'/'current' of shape {eps_shape}, "
                                 f"got {tuple(eps.shape)}")
        stats: dict[str, torch.Tensor] = {}

        # Critic: regress both Qs on the soft Bellman target of the target critic.
        with torch.no_grad():
            eps_next = noise["next"] if "next" in noise else self._randn(eps_shape, generator)
            mu, log_std = self._dist_params(next_obs)
            next_action, next_log_prob = squashed_gaussian_sample(mu, log_std, eps_next)
            tq1, tq2 = self._both_q(self.critic_target, next_obs, next_action)
            target_v = torch.min(tq1, tq2) - self.alpha.view(E, 1, 1) * next_log_prob
            target_q = reward + (1.0 - terminated) * self.discount * target_v
        q1, q2 = self._both_q(self.critic, obs, action)
        critic_loss = _per_member_mean((q1 - target_q).pow(2)) + _per_member_mean((q2 - target_q).pow(2))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_optimizer.step()
        stats["train/batch_reward"] = _per_member_mean(reward).detach()
        stats["train_critic/loss"] = critic_loss.detach()
        stats["train_critic/q1"] = _per_member_mean(q1).detach()
        stats["train_critic/target_q"] = _per_member_mean(target_q)

        if step % self.actor_update_frequency == 0:
            eps = noise["current"] if "current" in noise else self._randn(eps_shape, generator)
            mu, log_std = self._dist_params(obs)
            new_action, log_prob = squashed_gaussian_sample(mu, log_std, eps)
            aq1, aq2 = self._both_q(self.critic, obs, new_action)
            alpha = self.alpha
            actor_loss = _per_member_mean(alpha.detach().view(E, 1, 1) * log_prob - torch.min(aq1, aq2))
            # Gradients for the actor only: the reference also fills the critic's
            # .grad here and discards it at the next zero_grad; skipping that work
            # changes nothing.
            actor_params = list(self.actor.parameters())
            grads = torch.autograd.grad(actor_loss.sum(), actor_params)
            for p, g in zip(actor_params, grads):
                p.grad = g
            self.actor_optimizer.step()

            alpha_loss = _per_member_mean(alpha.view(E, 1, 1) * (-log_prob - self.target_entropy).detach())
            self.log_alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.sum().backward()
            self.log_alpha_optimizer.step()
            stats["train_actor/loss"] = actor_loss.detach()
            stats["train_actor/entropy"] = -_per_member_mean(log_prob).detach()
            stats["train_actor/target_entropy"] = torch.full_like(alpha_loss, self.target_entropy).detach()
            stats["train_alpha/loss"] = alpha_loss.detach()
            stats["train_alpha/value"] = alpha.detach()

        if step % self.critic_target_update_frequency == 0:
            self.soft_update_target()
        self.num_updates += 1
        self.last_step = int(step)
        return stats

    @torch.no_grad()
    def soft_update_target(self) -> None:
        """target <- tau * critic + (1 - tau) * target (every member at once)."""
        tau = self.critic_tau
        for p, t in zip(self.critic.parameters(), self.critic_target.parameters()):
            t.mul_(1.0 - tau).add_(p, alpha=tau)

    # ------------------------------------------------------------ checkpoints
    def hparams(self) -> dict[str, Any]:
        """The constructor arguments that fix tensor shapes (checked on load)."""
        return {"n_members": self.n_members, "obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "hidden_dim": self.hidden_dim, "hidden_depth": self.hidden_depth}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training bit-for-bit (weights, optimizers, counters)."""
        return {
            "hparams": self.hparams(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "log_alpha_optimizer": self.log_alpha_optimizer.state_dict(),
            "num_updates": self.num_updates,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if dict(state["hparams"]) != self.hparams():
            raise ValueError(f"checkpoint shapes {dict(state['hparams'])} do not match agent {self.hparams()}")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.log_alpha_optimizer.load_state_dict(state["log_alpha_optimizer"])
        self.num_updates = int(state["num_updates"])
        self.last_step = state["last_step"]

    def _critic_member(self, net: EnsembleMLP, i: int) -> dict[str, torch.Tensor]:
        out = net.member_state_dict(i, prefix="Q1.")
        out.update(net.member_state_dict(self.n_members + i, prefix="Q2."))
        return out

    def member_state_dict(self, i: int) -> dict[str, Any]:
        """Task i's networks in the plain single-task layout (copies).

        ``actor`` has keys ``trunk.0.weight`` ... and ``critic`` / ``critic_target``
        ``Q1.0.weight`` ... ``Q2.4.bias`` ([out, in] weights): the key layout of the
        reference's ``actor_step{S}.pkl`` / ``critic_step{S}.pkl`` files.
        """
        if not 0 <= i < self.n_members:
            raise IndexError(f"member {i} out of range [0, {self.n_members})")
        return {
            "actor": self.actor.member_state_dict(i, prefix="trunk."),
            "critic": self._critic_member(self.critic, i),
            "critic_target": self._critic_member(self.critic_target, i),
            "log_alpha": self.log_alpha[i].detach().clone(),
        }

    def load_member_state_dict(self, i: int, state: Mapping[str, Any]) -> None:
        """Overwrite task i's networks from :meth:`member_state_dict`-style dicts (any subset)."""
        if not 0 <= i < self.n_members:
            raise IndexError(f"member {i} out of range [0, {self.n_members})")
        if "actor" in state:
            self.actor.load_member_state_dict(i, state["actor"], prefix="trunk.")
        for name in ("critic", "critic_target"):
            if name in state:
                net = getattr(self, name)
                sd = state[name]
                net.load_member_state_dict(i, {k: v for k, v in sd.items() if k.startswith("Q1.")}, prefix="Q1.")
                net.load_member_state_dict(self.n_members + i, {k: v for k, v in sd.items() if k.startswith("Q2.")},
                                           prefix="Q2.")
        if "log_alpha" in state:
            with torch.no_grad():
                self.log_alpha[i] = torch.as_tensor(state["log_alpha"], dtype=self.dtype)
