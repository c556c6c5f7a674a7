"""The CSRO agent and its meta-training step (docs/method.md §5), one named piece per loss.

:class:`CSROAgent` is what evaluation and snapshots need: the context encoder
and the task-conditioned policy. :class:`CSROTrainer` owns the critics, the
CLUB network, the optimizers and BRAC's alpha, and performs one step of
docs/method.md §5 on a meta batch given as [tasks, batch, dim] tensors. The step follows
the reference's order (dual critic, value target, CLUB fit, encoder + Q,
V, policy, alpha) so that each network sees the same parameters the reference
would show it.

Speed notes: the whole meta batch is one set of [T, B, ...] tensors; the
encoder runs once on [T, N, D]; nothing in the step synchronises with the
host unless statistics are requested (``with_stats=True``, once per
iteration), and the frozen-critic calls for the policy loss skip Q's weight
gradients.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from rlkit.torch import losses as L
from rlkit.torch.hyperparams import CSROHyperParams
from rlkit.torch.objectives import EncodedBatch, RepresentationObjective, build_objectives
from rlkit.torch.networks import (
    ContextEncoder,
    TanhGaussianPolicy,
    make_dual_critic,
    make_q_network,
    make_v_network,
)
from rlkit.torch.optim import make_adam
from rlkit.torch.step_state import StepState


def describe(name: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``name Mean/Std/Max/Min`` over all elements of ``x``: the reference's statistics block
    (in ``x``'s own floating type, so a float64 run logs float64 statistics)."""
    x = (x if x.is_floating_point() else x.float()).reshape(-1)
    return {f"{name} Mean": x.mean(), f"{name} Std": x.std(correction=0), f"{name} Max": x.max(),
            f"{name} Min": x.min()}


class CSROAgent(nn.Module):
    """Context encoder + policy: infers z from a context and acts on (s, z).

    A z-context model of rlkit.evaluation.agent: the protocols roll it out through its
    ZContextAdapter. ``capabilities`` declares the optional methods it has (names from
    rlkit.evaluation.agent.CAPABILITIES): per-transition encodings cached as rows arrive, both
    actions from one policy forward, the posterior's spread.
    """

    capabilities = frozenset({"encode_per_transition", "act_pair", "posterior_spread"})

    def __init__(self, obs_dim: int, action_dim: int, hp: CSROHyperParams):
        super().__init__()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.latent_dim = int(hp.latent_size)
        self.use_next_obs_in_context = bool(hp.use_next_obs_in_context)
        self.encoder = ContextEncoder(
            obs_dim, action_dim, self.latent_dim,
            use_next_obs_in_context=hp.use_next_obs_in_context,
            use_information_bottleneck=hp.use_information_bottleneck,
            layer_norm=hp.layer_norm,
            normalize_transition_z=hp.normalize_transition_z,
        )
        self.policy = TanhGaussianPolicy(obs_dim, self.latent_dim, action_dim, hidden_sizes=[hp.net_size] * 3)

    @torch.no_grad()
    def infer_z(self, context: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z [M, L] from padded contexts [M, C, D] (rows past ``lengths[m]`` ignored).

        The posterior mean: the mean of per-transition outputs (deterministic encoder) or
        the product-of-Gaussians mean (information bottleneck), computed with a mask so
        that contexts of different lengths are inferred in one call.
        """
        if lengths is None:
            return self.encoder.infer(context, sample=False)
        return self.z_from_encoded(self.encode_context(context), lengths)

    @torch.no_grad()
    def encode_context(self, context: torch.Tensor) -> torch.Tensor:
        """Per-transition encoder outputs [..., N, out]: each transition is encoded on its own."""
        return self.encoder.per_transition(context)

    @torch.no_grad()
    def z_from_encoded(self, per: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pool per-transition outputs [M, C, out] over the first ``lengths[m]`` rows into z [M, L]."""
        return self.encoder.pooled_mean(per, lengths)

    @torch.no_grad()
    def z_var_from_encoded(self, per: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The posterior's ``var`` [M, L] (see :class:`Posterior`) of padded per-transition outputs."""
        return self.encoder.pooled_spread(per, lengths)

    @torch.no_grad()
    def act_pair(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean action, sampled action) from one policy forward."""
        out = self.policy(obs, z, reparameterize=False, return_log_prob=False)
        return torch.tanh(out.mean), out.action

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.policy.act(obs, z, deterministic=deterministic)


@dataclass
class MetaBatch:
    """One step's data: everything [T, ...] for the T tasks of the meta batch.

    ``context`` [T, N, D]; RL batch ``obs``, ``actions``, ``rewards`` [T, B, 1],
    ``next_obs``, ``terminals`` [T, B, 1]; ``extra_obs`` / ``extra_actions``
    [c_iter - 1, T, B, ...] are the fresh batches of the extra dual-critic updates.
    ``relabel(task, row, k)`` gives [B, k, D] context rows: context transition
    (task[i], row[i])'s (s, a) with its outcome (r[, s']) in k random training
    tasks; the sampler sets it only when an enabled objective lists it in
    ``batch_fields`` (CORRO's relabelled negatives).
    """

    task_ids: torch.Tensor
    context: torch.Tensor
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminals: torch.Tensor
    extra_obs: Optional[torch.Tensor] = None
    extra_actions: Optional[torch.Tensor] = None
    relabel: Optional[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = None  # only when asked for


@dataclass
class _Forward:
    """What one step's forward pass computed (§5.2), shared by the part updates that follow."""

    per_transition: torch.Tensor  # the encoder's per-transition outputs (CLUB reads them too)
    posterior: object  # the encoder's posterior of them: z, mean, var
    z: torch.Tensor  # [T, 1, L]
    z_d: torch.Tensor  # z detached: what the policy, V and (without allow_backward_z) Q see
    pol: object  # the policy's output at (s, z_d): action, log_prob, mean, log_std, pre_tanh_value
    q1_pred: torch.Tensor
    q2_pred: torch.Tensor
    v_pred: torch.Tensor


class CSROTrainer(StepState):
    """Networks, optimizers and the update of docs/method.md §5."""

    def __init__(self, obs_dim: int, action_dim: int, hp: CSROHyperParams, device: torch.device | str = "cpu"):
        self.hp = hp
        self.device = torch.device(device)
        latent, net = hp.latent_size, hp.net_size
        self.agent = CSROAgent(obs_dim, action_dim, hp).to(self.device)
        self.qf1 = make_q_network(obs_dim, action_dim, latent, net).to(self.device)
        self.qf2 = make_q_network(obs_dim, action_dim, latent, net).to(self.device)
        self.vf = make_v_network(obs_dim, latent, net).to(self.device)
        self.target_vf = copy.deepcopy(self.vf).requires_grad_(False)
        self.dual_critic = make_dual_critic(obs_dim, action_dim, latent, net).to(self.device)
        adam = make_adam(hp)
        self.optimizers = {
            "policy": adam(self.agent.policy.parameters(), lr=hp.policy_lr),
            "qf1": adam(self.qf1.parameters(), lr=hp.qf_lr),
            "qf2": adam(self.qf2.parameters(), lr=hp.qf_lr),
            "vf": adam(self.vf.parameters(), lr=hp.vf_lr),
            "context": adam(self.agent.encoder.parameters(), lr=hp.context_lr),
            "dual_critic": adam(self.dual_critic.parameters(), lr=hp.c_lr),
        }
        # the representation objectives the config switches on (CLUB, distance metric, KL, ...)
        self.objectives = build_objectives(obs_dim, action_dim, hp, self.device)
        for obj in self.objectives:
            self.optimizers.update(obj.optimizers())
        self.alpha_var = torch.tensor(float(hp.alpha_init), device=self.device)
        self.num_steps = 0

    # ------------------------------------------------------------------ helpers
    @property
    def alpha(self) -> torch.Tensor:
        return self.alpha_var.clamp(0.0, self.hp.alpha_max)

    @property
    def trains_dual_critic(self) -> bool:
        return self.hp.use_brac or self.hp.train_dual_critic_without_brac

    def modules(self) -> dict[str, nn.Module]:
        mods = {"agent": self.agent, "qf1": self.qf1, "qf2": self.qf2, "vf": self.vf, "target_vf": self.target_vf,
                "dual_critic": self.dual_critic}
        for obj in self.objectives:
            mods.update(obj.modules())
        return mods

    @property
    def batch_fields(self) -> set[str]:
        """Optional :class:`MetaBatch` fields the enabled objectives need the sampler to fill."""
        return {f for obj in self.objectives for f in obj.batch_fields()}

    def objective(self, name: str) -> RepresentationObjective | None:
        """The enabled objective called ``name`` (e.g. ``"club"``), or None."""
        return next((o for o in self.objectives if o.name == name), None)

    def _step(self, name: str, loss: Optional[torch.Tensor] = None) -> None:
        opt = self.optimizers[name]
        if loss is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()

    def _dual_critic_update(self, obs, actions, a_pi, z) -> torch.Tensor:
        loss = L.dual_critic_loss(self.dual_critic, obs, actions, a_pi, z, divergence=self.hp.divergence_name,
                                  true_gradient_penalty=self.hp.true_gradient_penalty)
        self._step("dual_critic", loss)
        return loss.detach()

    # ------------------------------------------------------------------ the step
    def train_step(self, batch: MetaBatch, with_stats: bool = False) -> dict[str, torch.Tensor]:
        """One meta-training step (docs/method.md §5.2-5.10): one ``_update_*`` per part, in the
        reference's order, each returning its own statistics. Returns them (detached) if asked."""
        f = self._forward(batch)                                   # §5.2 z, policy, Q and V predictions
        div, stats = self._update_dual_critic(batch, f)            # §5.3-5.4 (BRAC's dual critic)
        q_tgt = self._q_target(batch, f, div)                      # §5.4
        encoder_loss, rep_stats = self._representation_losses(batch, f)  # §5.5-5.6 CLUB, FOCAL, ...
        stats.update(rep_stats)
        stats.update(self._update_q_and_encoder(f, q_tgt, encoder_loss))  # §5.7
        min_q_new, v_stats = self._update_v(batch, f)              # §5.8
        stats.update(v_stats)
        stats.update(self._update_policy(f, min_q_new, div))       # §5.9
        self._update_alpha(div)                                    # §5.10
        self.num_steps += 1
        if not with_stats:
            return {}
        return {**stats, **self._step_statistics(batch, f, div)}

    def _forward(self, batch: MetaBatch) -> _Forward:
        """§5.2 task inference and the policy on (s, z.detach()). The encoder runs once: z is the
        posterior of its per-transition outputs, which CLUB uses too."""
        hp = self.hp
        per_transition = self.agent.encoder.per_transition(batch.context)
        posterior = self.agent.encoder.posterior_from_outputs(per_transition)
        z = posterior.z[:, None, :]  # [T, 1, L], broadcast over the batch
        z_d = z.detach()
        pol = self.agent.policy(batch.obs, z_d)
        z_q = z if hp.allow_backward_z else z_d
        return _Forward(per_transition, posterior, z, z_d, pol, self.qf1(batch.obs, batch.actions, z_q),
                        self.qf2(batch.obs, batch.actions, z_q), self.vf(batch.obs, z_d))

    def _update_dual_critic(self, batch: MetaBatch, f: _Forward) -> tuple[torch.Tensor | None, dict]:
        """§5.3 one dual-critic update on this batch, c_iter - 1 on fresh ones; §5.4 the divergence,
        with gradient to the policy's actions only. (None, {}) when the dual critic does not train."""
        if not self.trains_dual_critic:
            return None, {}
        c_loss = self._dual_critic_update(batch.obs, batch.actions, f.pol.action, f.z_d)
        if batch.extra_obs is not None:
            for k in range(batch.extra_obs.shape[0]):
                with torch.no_grad():
                    a_pi_k = self.agent.policy(batch.extra_obs[k], f.z_d).action
                self._dual_critic_update(batch.extra_obs[k], batch.extra_actions[k], a_pi_k, f.z_d)
        div = L.divergence_for_actor(self.dual_critic, batch.obs, f.pol.action, batch.actions, f.z_d,
                                     divergence=self.hp.divergence_name)
        return div, {"Dual Critic Loss": c_loss}

    @torch.no_grad()
    def _q_target(self, batch: MetaBatch, f: _Forward, div: torch.Tensor | None) -> torch.Tensor:
        """§5.4 r_scale * r + gamma * (1 - done) * V_target(s', z), value-penalised under BRAC."""
        hp = self.hp
        v_next = self.target_vf(batch.next_obs, f.z)
        if hp.use_brac and hp.use_value_penalty:
            v_next = L.value_penalized_target(v_next, self.alpha, div)
        return L.q_target(batch.rewards, batch.terminals, v_next, hp.reward_scale, hp.discount)

    def _representation_losses(self, batch: MetaBatch, f: _Forward) -> tuple[torch.Tensor, dict]:
        """§5.5-5.6 each objective fits its own model first (CLUB's q), then their weighted terms are
        summed into the encoder's loss (applied with Q's in :meth:`_update_q_and_encoder`)."""
        encoded = EncodedBatch(batch.context, f.per_transition, f.posterior, batch.task_ids, self.hp.latent_size,
                               self.agent.encoder, self.agent.obs_dim, self.agent.action_dim,
                               batch.relabel)
        stats: dict = {}
        encoder_loss = torch.zeros((), device=self.device)
        for obj in self.objectives:
            stats.update(obj.fit(encoded))
        for obj in self.objectives:
            term, obj_stats = obj.loss(encoded)
            encoder_loss = encoder_loss + term
            stats.update(obj_stats)
        return encoder_loss, stats

    def _update_q_and_encoder(self, f: _Forward, q_tgt: torch.Tensor, encoder_loss: torch.Tensor) -> dict:
        """§5.7 Q, and the encoder, which learns from the representation objectives (plus Q's loss
        when allow_backward_z), in one backward pass."""
        qf_loss = L.q_loss(f.q1_pred, f.q2_pred, q_tgt)
        names = ("qf1", "qf2", "context", *(n for obj in self.objectives for n in obj.joint_optimizers()))
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        (qf_loss + encoder_loss).backward()
        for name in names:
            self._step(name)
        return {"QF Loss": qf_loss.detach(), "Q Predictions Mean": f.q1_pred.detach().mean(),
                "Q Targets Mean": q_tgt.mean()}

    def _update_v(self, batch: MetaBatch, f: _Forward) -> tuple[torch.Tensor, dict]:
        """§5.8 V against the updated Qs (min of the two at the policy's action), then the Polyak
        update of the target V. Returns that min Q, which the policy loss uses too."""
        hp = self.hp
        a_pi, z_d = f.pol.action, f.z_d
        min_q_new = torch.min(L.frozen_call(self.qf1, batch.obs, a_pi, z_d), L.frozen_call(self.qf2, batch.obs, a_pi, z_d))
        v_tgt = L.v_target_max_entropy(min_q_new, f.pol.log_prob) if hp.max_entropy else min_q_new
        vf_loss = L.v_loss(f.v_pred, v_tgt)
        self._step("vf", vf_loss)
        self._soft_update()
        return min_q_new, {"VF Loss": vf_loss.detach(), "V Predictions Mean": f.v_pred.detach().mean()}

    def _update_policy(self, f: _Forward, min_q_new: torch.Tensor, div: torch.Tensor | None) -> dict:
        """§5.9 the policy: entropy, -min Q, the BRAC penalty and the mean/std/pre-activation terms."""
        hp, pol = self.hp, f.pol
        pol_loss = L.policy_loss(
            pol.log_prob if hp.max_entropy else None, min_q_new, div if hp.use_brac else None, self.alpha,
            pol.mean, pol.log_std, hp.policy_mean_reg_weight, hp.policy_std_reg_weight,
            pre_tanh_value=pol.pre_tanh_value, pre_activation_reg=hp.policy_pre_activation_weight,
        )
        self._step("policy", pol_loss)
        return {"Policy Loss": pol_loss.detach(), "Log Pis Mean": pol.log_prob.detach().mean(),
                "Policy mu Mean": pol.mean.detach().mean(), "Policy log std Mean": pol.log_std.detach().mean()}

    def _update_alpha(self, div: torch.Tensor | None) -> None:
        """§5.10 alpha: one SGD step on -mean(alpha_var (div - target)), the gradient written out."""
        hp = self.hp
        if hp.use_brac and hp.train_alpha:
            self.alpha_var = self.alpha_var + hp.alpha_lr * (div.detach().mean() - hp.target_divergence)

    def _step_statistics(self, batch: MetaBatch, f: _Forward, div: torch.Tensor | None) -> dict:
        """The step-wide columns of the reference's table: alpha, z, the task, and the reference's
        Mean/Std/Max/Min blocks (population std, as numpy's)."""
        posterior, pol = f.posterior, f.pol
        z_first = posterior.mean.detach()[0]  # the reference logs the meta batch's first task
        stats = {
            "alpha": self.alpha.detach(), "Z mean train": posterior.mean.detach().abs().mean(),
            **{f"Z mean train{i}": z_first[i] for i in range(z_first.shape[0])},
            "Z variance train": posterior.var.detach()[0].mean(), "task idx": batch.task_ids[0],
        }
        for name, x in (("Q Predictions", f.q1_pred), ("V Predictions", f.v_pred), ("Log Pis", pol.log_prob),
                        ("Policy mu", pol.mean), ("Policy log std", pol.log_std), ("alpha", self.alpha_var),
                        ("div_estimate", div)):
            if x is not None:
                stats.update(describe(name, x.detach()))
        if div is not None:
            stats["div_estimate"] = div.detach().mean()
        return stats

    @torch.no_grad()
    def _soft_update(self) -> None:
        tau = self.hp.soft_target_tau
        torch._foreach_lerp_(list(self.target_vf.parameters()), list(self.vf.parameters()), tau)
