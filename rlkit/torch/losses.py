"""CSRO losses as pure functions of tensors (docs/method.md §5).

No optimizers, no module state, no global device: every random draw takes an optional
``torch.Generator`` and lives on the device of its inputs. Shapes are written for the
batched-over-tasks layout ``[T, B, ...]`` but any leading dims work unless noted.

Gradient routing (which loss may move which network) is the caller's job and is stated
per function: inputs documented as "detached" must be passed detached. The exceptions,
where the formula in docs/method.md itself fixes the routing, detach inside and say so.

Loss weights (``club_loss_weight``, ``z_loss_weight``, ...) are applied by the caller.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import nn

Scalar = Union[float, torch.Tensor]
CriticFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# docs/method.md §5.3 and the BRAC divergences: epsilon inside log(softplus(.) + eps) and sqrt(eps + .).
BRAC_EPS = 1e-8
# Divergences with a dual (critic) form. The reference also lists "mmd", but only with a
# primal estimate, so it cannot be used with the dual critic.
DIVERGENCES = ("kl", "w")


def _check_same_shape(**tensors: Optional[torch.Tensor]) -> None:
    """Refuse silent broadcasting between per-sample tensors ([T,B] vs [T,B,1] would give [T,B,B])."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if v is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shape mismatch: {shapes}")


def _check_divergence(divergence: str) -> None:
    if divergence not in DIVERGENCES:
        hint = " ('mmd' has no dual form)" if divergence == "mmd" else ""
        raise ValueError(f"unknown divergence {divergence!r}{hint}; choose one of {DIVERGENCES}")


# --------------------------------------------------------------------------- BRAC (docs/method.md §5.3-5.4, §5.10)


def soft_relu(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)) written without overflow (= softplus, also for large |x|)."""
    return torch.log1p(torch.exp(-x.abs())) + x.clamp_min(0.0)


def brac_dual_estimate(c_data: torch.Tensor, c_pi: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """Per-sample dual estimate D of the divergence between pi and the behaviour policy.

    ``c_data`` = c(s, a_data, z), ``c_pi`` = c(s, a_pi, z), same shape (e.g. ``[T, B, 1]``);
    returns that shape.

    - ``"kl"`` (docs/method.md §5.3): D = -softplus(c_data) + log(softplus(c_pi) + 1e-8) + 1.
    - ``"w"`` (Wasserstein, BRAC / reference divergences.py): D = c_pi - c_data.
    """
    _check_divergence(divergence)
    _check_same_shape(c_data=c_data, c_pi=c_pi)
    if divergence == "kl":
        return -soft_relu(c_data) + torch.log(soft_relu(c_pi) + BRAC_EPS) + 1.0
    return c_pi - c_data


def interpolate_actions(
    a_pi: torch.Tensor, a_data: torch.Tensor, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """ã = a_pi + u (a_data - a_pi), one u ~ U(0, 1) per sample (docs/method.md §5.3). ``[..., A]``."""
    _check_same_shape(a_pi=a_pi, a_data=a_data)
    u = torch.rand((*a_pi.shape[:-1], 1), generator=generator, device=a_pi.device, dtype=a_pi.dtype)
    return a_pi + u * (a_data - a_pi)


def dual_critic_loss(
    c_fn: CriticFn,
    obs: torch.Tensor,
    a_data: torch.Tensor,
    a_pi: torch.Tensor,
    z: torch.Tensor,
    divergence: str = "kl",
    gradient_penalty_weight: float = 5.0,
    generator: Optional[torch.Generator] = None,
    true_gradient_penalty: bool = False,
) -> torch.Tensor:
    """Scalar loss for the BRAC dual critic c (docs/method.md §5.3).

    loss = -mean(D(s, a_pi, a_data)) + w * mean(max(sqrt(1e-8 + g^2) - 1, 0)^2), w = 5.

    Quirk (docs/method.md §5.3, reproduced by default): g is the critic *value* c(s, ã, z) at the
    interpolate ã, not its gradient. ``true_gradient_penalty=True`` uses
    g = ||d c(s, ã, z) / d ã||, the interpolated gradient penalty of the BRAC paper.

    Args:
        c_fn: called as ``c_fn(obs, actions, z)`` -> ``[..., 1]``.
        obs ``[..., B, S]``, a_data / a_pi ``[..., B, A]``, z broadcastable (e.g. ``[T, 1, L]``).
    Only c should learn from this loss, so ``a_pi`` and ``z`` are detached here.
    """
    _check_divergence(divergence)
    a_pi = a_pi.detach()
    z = z.detach()
    dual = brac_dual_estimate(c_fn(obs, a_data, z), c_fn(obs, a_pi, z), divergence)
    a_int = interpolate_actions(a_pi, a_data, generator)
    if true_gradient_penalty:
        a_int = a_int.detach().requires_grad_(True)
        c_int = c_fn(obs, a_int, z)
        (g,) = torch.autograd.grad(c_int.sum(), a_int, create_graph=True)
    else:
        g = c_fn(obs, a_int, z)
    slope = torch.sqrt(BRAC_EPS + (g**2).sum(dim=-1))
    penalty = torch.clamp_min(slope - 1.0, 0.0).pow(2).mean()
    return -dual.mean() + gradient_penalty_weight * penalty


def frozen_call(c_fn: CriticFn, *args: torch.Tensor) -> torch.Tensor:
    """Call ``c_fn`` so that gradients reach its inputs but not its parameters."""
    if isinstance(c_fn, nn.Module):
        params = {k: v.detach() for k, v in c_fn.named_parameters()}
        return torch.func.functional_call(c_fn, params, args)
    return c_fn(*args)


def divergence_for_actor(
    c_fn: CriticFn,
    obs: torch.Tensor,
    a_pi: torch.Tensor,
    a_data: torch.Tensor,
    z: torch.Tensor,
    divergence: str = "kl",
) -> torch.Tensor:
    """div = D(s, a_pi, a_data) per sample, ``[..., B, 1]`` (docs/method.md §5.4).

    Gradient flows to ``a_pi`` (hence to the policy) but not to c's parameters (c is
    frozen: its parameters are detached through ``torch.func.functional_call`` when c is an
    ``nn.Module``) nor to ``z`` (detached, as in the reference). Callers detach ``div``
    for the value penalty and the alpha loss.
    """
    z = z.detach()
    c_pi = frozen_call(c_fn, obs, a_pi, z)
    c_data = frozen_call(c_fn, obs, a_data, z)
    return brac_dual_estimate(c_data, c_pi, divergence)


# --------------------------------------------------------------------------- CLUB (docs/method.md §5.5)


def club_model_loss(mu: torch.Tensor, var: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood (up to a constant) of z_t under q(z|x) = N(mu, var) (docs/method.md §5.5).

    mean((z_t - mu)^2 / (2 var) + log sigma), with log sigma = 0.5 log var, averaged over
    all elements (tasks, transitions and latent dims, as the reference). All ``[T, N, L]``.
    ``mu``, ``var`` come from the CLUB net; ``z_t`` are the per-transition encoder outputs
    and must be passed *detached*: this loss fits q only.
    """
    _check_same_shape(mu=mu, var=var, z_t=z_t)
    return ((z_t - mu) ** 2 / (2.0 * var) + 0.5 * torch.log(var)).mean()


def club_mi_upper_bound(mu: torch.Tensor, var: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
    """CLUB estimate positive - negative of I(z; x) within each task (docs/method.md §5.5), unweighted.

    All inputs ``[T, N, L]``: q's (mu, var) per transition (pass them *detached*: q is frozen
    here) and the encoder's per-transition outputs z_t (with gradient: the encoder minimises
    this).

    positive = -mean_{T,N,L} (z_t - mu_t)^2 / var_t over matched transitions;
    negative = -mean_{T,N,N,L} (z_t' - mu_t)^2 / var_t over all (t, t') in the same task,
    including t' = t. Means run over every element, latent dims included, exactly as the
    reference's B^2 version.

    The reference materialises all N^2 pairs; here per task and latent dim
    sum_t' (z_t' - mu_t)^2 = sum_t' (z_t' - zbar)^2 + N (zbar - mu_t)^2 with zbar the task
    mean of z: the same value (it is sum z^2 - 2 mu sum z + N mu^2 rearranged), in O(N)
    memory and without the cancellation of the raw expansion.
    """
    _check_same_shape(mu=mu, var=var, z_t=z_t)
    n = z_t.shape[-2]
    positive = -((z_t - mu) ** 2 / var).mean()
    z_bar = z_t.mean(dim=-2, keepdim=True)  # [T, 1, L]
    spread = ((z_t - z_bar) ** 2).sum(dim=-2, keepdim=True)  # [T, 1, L]
    pair_sums = spread + n * (z_bar - mu) ** 2  # [T, N, L]: sum over t' for each t
    negative = -(pair_sums / var).mean() / n
    return positive - negative


# --------------------------------------------------------------------------- FOCAL (docs/method.md §5.6)


def focal_distance_metric_loss(
    z: torch.Tensor,
    task_ids: torch.Tensor,
    pos_eps: float = 1e-3,
    neg_eps: float = 0.1,
    count_eps: float = 1e-3,
) -> torch.Tensor:
    """FOCAL distance-metric loss over all pairs i < j of the meta batch (docs/method.md §5.6), unweighted.

    ``z``: ``[T, L]``, one embedding per meta-batch entry (the reference takes the task
    embedding, identical for every transition of a task, so one row per task);
    ``task_ids``: ``[T]``. With d_ij = mean_L (z_i - z_j)^2:
    same task -> sqrt(d_ij + 1e-3); different task -> 1 / (d_ij + 0.1);
    loss = sum_pos / (n_pos + 1e-3) + sum_neg / (n_neg + 1e-3).

    Same-task pairs only occur when the meta batch repeats a task (tasks drawn with
    replacement); otherwise the positive term is 0.
    """
    if z.dim() != 2:
        raise ValueError(f"z must be [tasks, latent], got shape {tuple(z.shape)}")
    task_ids = torch.as_tensor(task_ids, device=z.device)
    if task_ids.shape != z.shape[:1]:
        raise ValueError(f"task_ids must be [{z.shape[0]}], got shape {tuple(task_ids.shape)}")
    t = z.shape[0]
    d = ((z[:, None, :] - z[None, :, :]) ** 2).mean(dim=-1)  # [T, T]
    upper = torch.ones(t, t, dtype=torch.bool, device=z.device).triu(diagonal=1)
    same = task_ids[:, None] == task_ids[None, :]
    pos_mask = (upper & same).to(z.dtype)
    neg_mask = (upper & ~same).to(z.dtype)
    # Both terms are finite everywhere (d >= 0), so masking by multiplication is safe for autograd.
    pos = (torch.sqrt(d + pos_eps) * pos_mask).sum()
    neg = (neg_mask / (d + neg_eps)).sum()
    return pos / (pos_mask.sum() + count_eps) + neg / (neg_mask.sum() + count_eps)


# --------------------------------------------------------------------------- SAC (docs/method.md §5.4, §5.7-5.9)


def q_target(
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    v_target: torch.Tensor,
    reward_scale: float,
    discount: float,
) -> torch.Tensor:
    """reward_scale r + (1 - done) discount V_target(s', z) (docs/method.md §5.7). Same shapes in and out,
    e.g. ``[T, B, 1]``; ``terminals`` may be bool. Pass ``v_target`` computed without grad."""
    _check_same_shape(rewards=rewards, terminals=terminals, v_target=v_target)
    done = terminals.to(v_target.dtype)
    return reward_scale * rewards + (1.0 - done) * discount * v_target


def value_penalized_target(v_next: torch.Tensor, alpha: Scalar, div: torch.Tensor) -> torch.Tensor:
    """V_target(s', z) - alpha div, used when ``use_value_penalty`` (docs/method.md §5.4).

    Reference detail kept: div is the estimate at (s, a_pi) of the *current* state, subtracted
    from the next state's value. Returns a tensor without grad.
    """
    _check_same_shape(v_next=v_next, div=div)
    alpha = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
    return (v_next - alpha * div).detach()


def v_target_max_entropy(min_q_new: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
    """min(Q1, Q2)(s, a_pi, z) - log pi (docs/method.md §5.8). ``v_loss`` detaches it."""
    _check_same_shape(min_q_new=min_q_new, log_pi=log_pi)
    return min_q_new - log_pi


def q_loss(q1_pred: torch.Tensor, q2_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(Q1) + MSE(Q2) against a detached target (docs/method.md §5.7)."""
    _check_same_shape(q1_pred=q1_pred, q2_pred=q2_pred, target=target)
    target = target.detach()
    return ((q1_pred - target) ** 2).mean() + ((q2_pred - target) ** 2).mean()


def v_loss(v_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE against a detached target (docs/method.md §5.8)."""
    _check_same_shape(v_pred=v_pred, target=target)
    return ((v_pred - target.detach()) ** 2).mean()


def policy_loss(
    log_pi: Optional[torch.Tensor],
    min_q: torch.Tensor,
    div: Optional[torch.Tensor],
    alpha: Scalar,
    mean: torch.Tensor,
    log_std: torch.Tensor,
    mean_reg: float = 1e-3,
    std_reg: float = 1e-3,
    pre_tanh_value: Optional[torch.Tensor] = None,
    pre_activation_reg: float = 0.0,
) -> torch.Tensor:
    """mean(log pi - min Q + alpha div) + 1e-3 mean(mean^2) + 1e-3 mean(log_std^2) (docs/method.md §5.9).

    ``log_pi``, ``min_q``, ``div``: ``[..., 1]`` per sample; ``mean``, ``log_std``: ``[..., A]``.
    ``div=None`` when BRAC is off; ``log_pi=None`` when ``max_entropy`` is off. alpha is
    treated as a constant (detached). ``pre_activation_reg`` > 0 adds
    w * mean(sum_A pre_tanh^2), the reference's ``policy_pre_activation_weight`` (0 by default).
    """
    _check_same_shape(log_pi=log_pi, min_q=min_q, div=div)
    per_sample = -min_q
    if log_pi is not None:
        per_sample = per_sample + log_pi
    if div is not None:
        alpha = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
        per_sample = per_sample + alpha * div
    loss = per_sample.mean() + mean_reg * (mean**2).mean() + std_reg * (log_std**2).mean()
    if pre_activation_reg:
        if pre_tanh_value is None:
            raise ValueError("pre_activation_reg > 0 needs pre_tanh_value")
        loss = loss + pre_activation_reg * (pre_tanh_value**2).sum(dim=-1).mean()
    return loss


# --------------------------------------------------------------------------- information bottleneck


def kl_to_standard_normal(mu: torch.Tensor, var: torch.Tensor, prior_std: float = 1.0) -> torch.Tensor:
    """sum over all elements of KL(N(mu, var) || N(0, prior_std^2)) (PEARL's KL, weighted by
    ``kl_lambda`` in the caller). ``mu``, ``var``: ``[T, L]``.
    """
    _check_same_shape(mu=mu, var=var)
    p2 = prior_std**2
    return 0.5 * (var / p2 + mu**2 / p2 - 1.0 - torch.log(var) + math.log(p2)).sum()


__all__ = [
    "BRAC_EPS",
    "DIVERGENCES",
    "brac_dual_estimate",
    "club_mi_upper_bound",
    "club_model_loss",
    "divergence_for_actor",
    "dual_critic_loss",
    "focal_distance_metric_loss",
    "interpolate_actions",
    "kl_to_standard_normal",
    "policy_loss",
    "q_loss",
    "q_target",
    "soft_relu",
    "v_loss",
    "v_target_max_entropy",
    "value_penalized_target",
]
