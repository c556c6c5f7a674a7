"""The CSRO networks (docs/method.md §4), written device-agnostic and batched over leading dims.

Every network takes inputs of shape ``[..., features]`` (typically ``[tasks, batch, features]``)
and maps only the last dimension, so a meta batch is one forward call.

Parameter names (``fc0``, ``fc1``, ..., ``last_fc``, ``last_fc_log_std``) follow the
reference code so that ``state_dict``s of reference snapshots (``agent_itr_K.pth``) load
into these modules unchanged.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rlkit.torch.losses import kl_to_standard_normal

# docs/method.md §4: the policy's log_std is clamped to [-20, 0] (reference policies.py agrees).
LOG_SIG_MIN = -20.0
LOG_SIG_MAX = 0.0
# Added inside log(1 - tanh(u)^2 + eps) so the log stays finite when tanh saturates.
TANH_LOG_PROB_EPS = 1e-6
# Lower bound on per-transition variances before the product of Gaussians (PEARL), so
# that 1/sigma^2 cannot overflow.
MIN_POSTERIOR_VAR = 1e-7

Activation = Callable[[torch.Tensor], torch.Tensor]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# --------------------------------------------------------------------------- init


def reference_fanin_init(weight: torch.Tensor) -> torch.Tensor:
    """Uniform(±1/sqrt(weight.shape[0])) in place (docs/method.md §4 "±1/√fan_in").

    Reference quirk, reproduced on purpose: rlkit's ``fanin_init`` takes ``size[0]`` as
    the fan-in, but an ``nn.Linear`` weight is ``[out_features, in_features]``, so the bound
    is really 1/sqrt(out_features). It only matters where in != out (the first hidden
    layer). Pass ``hidden_init=true_fanin_init`` to :class:`Mlp` for the textbook version.
    """
    if weight.dim() < 2:
        raise ValueError(f"fan-in init needs a weight with >= 2 dims, got shape {tuple(weight.shape)}")
    bound = 1.0 / math.sqrt(weight.shape[0])
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def true_fanin_init(weight: torch.Tensor) -> torch.Tensor:
    """Uniform(±1/sqrt(in_features)) in place: the fan-in as the name suggests."""
    if weight.dim() < 2:
        raise ValueError(f"fan-in init needs a weight with >= 2 dims, got shape {tuple(weight.shape)}")
    bound = 1.0 / math.sqrt(math.prod(weight.shape[1:]))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


# --------------------------------------------------------------------------- MLPs


class Mlp(nn.Module):
    """Fully connected net with the reference initialisation (docs/method.md §4).

    Hidden layers: weights from ``hidden_init`` (default :func:`reference_fanin_init`),
    biases ``b_init_value`` (0.1). Last layer: weight and bias uniform in ±``init_w``
    (3e-3), which keeps initial outputs near zero (and tanh outputs unsaturated).
    Works on ``[..., input_size]``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        output_size: int,
        hidden_activation: Activation = F.relu,
        output_activation: Activation = identity,
        init_w: float = 3e-3,
        b_init_value: float = 0.1,
        hidden_init: Callable[[torch.Tensor], torch.Tensor] = reference_fanin_init,
        layer_norm: bool = False,
    ):
        super().__init__()
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.layer_norm = bool(layer_norm)
        in_size = self.input_size
        for i, size in enumerate(self.hidden_sizes):
            fc = nn.Linear(in_size, size)
            hidden_init(fc.weight)
            with torch.no_grad():
                fc.bias.fill_(b_init_value)
            # fc0, fc1, ... as attributes (not a ModuleList) to match reference state_dict keys.
            self.add_module(f"fc{i}", fc)
            # layer_norm: LayerNorm before the activation of every hidden layer but the last, as the
            # reference's Mlp applies it (docs/method.md §4)
            if layer_norm and i < len(self.hidden_sizes) - 1:
                self.add_module(f"layer_norm{i}", nn.LayerNorm(size))
            in_size = size
        self.last_fc = nn.Linear(in_size, self.output_size)
        with torch.no_grad():
            self.last_fc.weight.uniform_(-init_w, init_w)
            self.last_fc.bias.uniform_(-init_w, init_w)

    @property
    def fcs(self) -> list[nn.Linear]:
        return [getattr(self, f"fc{i}") for i in range(len(self.hidden_sizes))]

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer, ``[..., hidden_sizes[-1]]``."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects last dim {self.input_size}, got shape {tuple(x.shape)}")
        h = x
        if not self.layer_norm:
            for fc in self.fcs:
                h = self.hidden_activation(fc(h))
            return h
        for i, fc in enumerate(self.fcs):
            h = fc(h)
            if i < len(self.hidden_sizes) - 1:
                h = getattr(self, f"layer_norm{i}")(h)
            h = self.hidden_activation(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.last_fc(self.hidden(x)))


def cat_broadcast(*inputs: torch.Tensor) -> torch.Tensor:
    """Concatenate along the last dim after broadcasting the leading dims.

    Lets a per-task embedding ``z`` of shape ``[T, 1, L]`` meet ``obs`` of shape
    ``[T, B, D]`` without materialising the repeat by hand. (``z`` of shape ``[T, L]``
    does NOT broadcast against ``[T, B, D]``; add the batch axis explicitly.)
    """
    if not inputs:
        raise ValueError("cat_broadcast needs at least one tensor")
    lead = torch.broadcast_shapes(*(t.shape[:-1] for t in inputs))
    return torch.cat([t.expand(*lead, t.shape[-1]) for t in inputs], dim=-1)


class FlattenMlp(Mlp):
    """An :class:`Mlp` called on several tensors, concatenated along the last dim (in order)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(cat_broadcast(*inputs))


def make_q_network(obs_dim: int, action_dim: int, latent_dim: int, net_size: int = 256) -> FlattenMlp:
    """Q(s, a, z) -> [..., 1]: MLP [net_size]*3 (docs/method.md §4). Call as ``q(obs, actions, z)``."""
    return FlattenMlp(obs_dim + action_dim + latent_dim, [net_size] * 3, 1)


def make_v_network(obs_dim: int, latent_dim: int, net_size: int = 256) -> FlattenMlp:
    """V(s, z) -> [..., 1]: MLP [net_size]*3 (docs/method.md §4). Call as ``v(obs, z)``."""
    return FlattenMlp(obs_dim + latent_dim, [net_size] * 3, 1)


def make_dual_critic(obs_dim: int, action_dim: int, latent_dim: int, net_size: int = 256) -> FlattenMlp:
    """BRAC dual critic c(s, a, z) -> [..., 1] (docs/method.md §4, §5.3). Call as ``c(obs, actions, z)``."""
    return FlattenMlp(obs_dim + action_dim + latent_dim, [net_size] * 3, 1)


# --------------------------------------------------------------------------- context


def context_dim(obs_dim: int, action_dim: int, use_next_obs_in_context: bool) -> int:
    """Width of one context transition: (s, a, r) or (s, a, r, s') (docs/method.md §4)."""
    return obs_dim + action_dim + 1 + (obs_dim if use_next_obs_in_context else 0)


def build_context(
    obs: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_obs: Optional[torch.Tensor] = None,
    use_next_obs_in_context: bool = False,
) -> torch.Tensor:
    """Context tensor ``[..., N, D]`` with columns (s, a, r[, s']) in that order.

    The order matters: :meth:`ClubNetwork.from_context` reads x as the leading columns.
    ``rewards`` may be ``[..., N]`` or ``[..., N, 1]``.
    """
    if rewards.dim() == obs.dim() - 1:
        rewards = rewards.unsqueeze(-1)
    parts = [obs, actions, rewards.to(obs.dtype)]
    if use_next_obs_in_context:
        if next_obs is None:
            raise ValueError("use_next_obs_in_context=True needs next_obs")
        parts.append(next_obs)
    return torch.cat(parts, dim=-1)


def split_context(context: torch.Tensor, obs_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    """The columns of a context built by :func:`build_context`, by name: ``obs``, ``actions``,
    ``rewards`` [..., 1] and, when the context holds it, ``next_obs`` (views, no copy)."""
    o, a = int(obs_dim), int(action_dim)
    parts = {"obs": context[..., :o], "actions": context[..., o:o + a], "rewards": context[..., o + a:o + a + 1]}
    if context.shape[-1] > o + a + 1:
        parts["next_obs"] = context[..., o + a + 1:]
    return parts


def context_from_sample(part: dict, use_next_obs: bool, context_reward: Callable | None = None) -> torch.Tensor:
    """The context the agent sees from a buffer sample: (s, a, r[, s']) with, for sparse-reward runs,
    ``context_reward(r)`` in place of the dense reward (the env's rule: ``MultiTaskEnv.context_reward``)."""
    rewards = part["rewards"]
    if context_reward is not None:
        rewards = context_reward(rewards)
    return build_context(part["obs"], part["actions"], rewards, part["next_obs"], use_next_obs)


class Posterior(NamedTuple):
    """Task-inference result for ``T`` tasks.

    z:    ``[T, L]`` the embedding used downstream (a reparameterized sample for the
          information-bottleneck encoder, the mean otherwise).
    mean: ``[T, L]``.
    var:  ``[T, L]`` posterior variance for the information bottleneck. For the
          deterministic encoder it is the *standard deviation* of the per-transition
          outputs across the context (reference quirk: that is what the reference logs
          as "Z variance"); it is for logging only.
    """

    z: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor


class ContextEncoder(Mlp):
    """Permutation-invariant context encoder (docs/method.md §4).

    MLP [200, 200, 200], ReLU, tanh on every output, applied to each transition
    independently. Deterministic (the CSRO default): z = mean over the N transitions.
    With ``use_information_bottleneck`` the outputs are 2L wide: (mu, pre-variance) per
    transition, variance = softplus(pre-variance), combined by the PEARL product of
    Gaussians and sampled with the reparameterisation trick. (Reference note: the CSRO
    code builds the 2L-wide encoder but then averages all 2L outputs, so its bottleneck
    mode does not work; this follows PEARL, which the option comes from. tanh still
    applies to all 2L outputs, as the reference builds it, so per-transition variances
    lie in [softplus(-1), softplus(1)].)
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        latent_dim: int,
        use_next_obs_in_context: bool = False,
        use_information_bottleneck: bool = False,
        hidden_sizes: Sequence[int] = (200, 200, 200),
        layer_norm: bool = False,
        normalize_transition_z: bool = False,
    ):
        self.latent_dim = int(latent_dim)
        self.use_next_obs_in_context = bool(use_next_obs_in_context)
        self.use_information_bottleneck = bool(use_information_bottleneck)
        if normalize_transition_z and use_information_bottleneck:
            raise ValueError("normalize_transition_z applies to the deterministic encoder only")
        self.normalize_transition_z = bool(normalize_transition_z)
        out = 2 * self.latent_dim if self.use_information_bottleneck else self.latent_dim
        super().__init__(
            context_dim(obs_dim, action_dim, use_next_obs_in_context),
            hidden_sizes,
            out,
            output_activation=torch.tanh,
            layer_norm=layer_norm,
        )

    def per_transition(self, context: torch.Tensor) -> torch.Tensor:
        """``[T, N, D] -> [T, N, out]`` one output per transition (out = L, or 2L with the IB).

        The deterministic outputs are the z_t that CLUB and its likelihood fit use (docs/method.md §5.5).
        With ``normalize_transition_z`` each output is scaled to unit length (CORRO's encoder), so z, their
        mean, keeps a scale the policy can read while a scale-free objective (InfoNCE) trains the encoder.
        """
        out = self(context)
        return F.normalize(out, dim=-1) if self.normalize_transition_z else out

    def _gaussians(self, per: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split 2L-wide per-transition outputs into (mu, sigma^2 = softplus(pre-variance))."""
        return per[..., : self.latent_dim], F.softplus(per[..., self.latent_dim :])

    def pooled_mean(self, per: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The posterior mean [T, L] from per-transition outputs [T, N, out].

        With ``lengths`` only the first ``lengths[t]`` rows of task t count, so padded
        contexts of different lengths pool in one call (evaluation); an empty context
        gives the prior mean 0.
        """
        if lengths is None:
            if not self.use_information_bottleneck:
                return per.mean(dim=1)
            return self._product_of_gaussians(per)[0]
        mask = (torch.arange(per.shape[1], device=per.device)[None] < lengths[:, None]).to(per.dtype)[..., None]
        if not self.use_information_bottleneck:
            return (per * mask).sum(1) / lengths.clamp(min=1).to(per.dtype)[:, None]
        return self._product_of_gaussians(per, mask, empty=(lengths == 0).to(per.dtype)[:, None])[0]

    def pooled_spread(self, per: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What :class:`Posterior` calls ``var`` [T, L], from padded outputs [T, N, out] of lengths [T]:
        the product variance under the information bottleneck, else the (n - 1)-normalised standard
        deviation of the first ``lengths[t]`` outputs (0 for fewer than two), the reference's quirk."""
        mask = (torch.arange(per.shape[1], device=per.device)[None] < lengths[:, None]).to(per.dtype)[..., None]
        if self.use_information_bottleneck:
            return self._product_of_gaussians(per, mask, empty=(lengths == 0).to(per.dtype)[:, None])[1]
        n = lengths.to(per.dtype)[:, None]
        mean = (per * mask).sum(1) / n.clamp(min=1)
        var = (((per - mean[:, None]) * mask) ** 2).sum(1) / (n - 1).clamp(min=1)
        return torch.where(n > 1, var.sqrt(), torch.zeros_like(var))

    def _product_of_gaussians(self, per: torch.Tensor, mask: Optional[torch.Tensor] = None,
                              empty: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of the product of the per-transition Gaussians: precisions add and the
        mean is precision-weighted. ``mask`` [T, N, 1] drops padding rows; ``empty`` [T, 1]
        marks tasks with no rows, whose precision sum 0 is replaced by 1 (mean 0)."""
        mus, variances = self._gaussians(per)
        precisions = torch.reciprocal(variances.clamp_min(MIN_POSTERIOR_VAR))
        if mask is not None:
            precisions = precisions * mask
        total = precisions.sum(dim=1) if empty is None else precisions.sum(dim=1) + empty
        var = 1.0 / total
        return var * (mus * precisions).sum(dim=1), var

    def infer_posterior(
        self,
        context: torch.Tensor,
        sample: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> Posterior:
        """Posterior over z per task from ``context`` ``[T, N, D]`` (N >= 1).

        ``sample`` only matters with the information bottleneck: False returns the
        posterior mean as z.
        """
        if context.dim() != 3:
            raise ValueError(f"context must be [tasks, transitions, features], got shape {tuple(context.shape)}")
        return self.posterior_from_outputs(self.per_transition(context), sample=sample, generator=generator)

    def posterior_from_outputs(
        self,
        per: torch.Tensor,
        sample: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> Posterior:
        """The posterior from per-transition outputs ``[T, N, out]`` (see :meth:`per_transition`).

        Lets the training step run the encoder once and reuse its outputs for CLUB.
        """
        if not self.use_information_bottleneck:
            mean = per.mean(dim=1)
            # torch.std with one transition is NaN; report 0 spread instead.
            spread = per.std(dim=1) if per.shape[1] > 1 else torch.zeros_like(mean)
            return Posterior(mean, mean, spread)
        mean, var = self._product_of_gaussians(per)
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + var.sqrt() * eps
        else:
            z = mean
        return Posterior(z, mean, var)

    def infer(
        self,
        context: torch.Tensor,
        sample: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """``[T, N, D] -> z [T, L]``: the task embedding (docs/method.md §4: mean over transitions)."""
        return self.infer_posterior(context, sample=sample, generator=generator).z

    @staticmethod
    def kl_to_prior(posterior: Posterior, prior_std: float = 1.0) -> torch.Tensor:
        """KL(q(z|c) || N(0, prior_std^2 I)) summed over tasks and latent dims (PEARL's encoder
        KL term, weighted by ``kl_lambda`` in the caller). Stateless: pass the posterior that
        :meth:`infer_posterior` returned. (Reference note: CSRO's unused ``compute_kl_div``
        has prior std 0.05; the default here is PEARL's N(0, I).)
        """
        return kl_to_standard_normal(posterior.mean, posterior.var, prior_std=prior_std)


# --------------------------------------------------------------------------- CLUB


def club_input_dim(obs_dim: int, action_dim: int, use_next_obs_in_context: bool, club_use_sa: bool) -> int:
    """Width of x for q(z|x) (docs/method.md §4; matches the reference launcher).

    x = (s, a), except with ``use_next_obs_in_context`` and not ``club_use_sa``:
    x = (s, a, r).
    """
    if use_next_obs_in_context and not club_use_sa:
        return obs_dim + action_dim + 1
    return obs_dim + action_dim


class ClubNetwork(Mlp):
    """Variational q(z | x) for the CLUB mutual-information upper bound (docs/method.md §4, §5.5).

    MLP [200, 200, 200] with 2L outputs and tanh on *all* of them (the reference has a
    half-activation option but leaves it off); mean = first L, variance = softplus(last L).
    Because of the tanh, mu in [-1, 1] and variance in [softplus(-1), softplus(1)] ~ [0.31, 1.31].
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        latent_dim: int,
        use_next_obs_in_context: bool = False,
        club_use_sa: bool = False,
        hidden_sizes: Sequence[int] = (200, 200, 200),
    ):
        self.latent_dim = int(latent_dim)
        super().__init__(
            club_input_dim(obs_dim, action_dim, use_next_obs_in_context, club_use_sa),
            hidden_sizes,
            2 * self.latent_dim,
            output_activation=torch.tanh,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """``x [..., input_size] -> (mu, var)``, each ``[..., L]``."""
        out = super().forward(x)
        return out[..., : self.latent_dim], F.softplus(out[..., self.latent_dim :])

    def from_context(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) on a context built by :func:`build_context`.

        Like the reference, x is the first ``input_size`` columns of the context, i.e.
        (s, a) or (s, a, r) given the (s, a, r, s') column order.
        """
        return self(context[..., : self.input_size])


# --------------------------------------------------------------------------- policy


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) for u ~ N(mean, exp(log_std)^2), summed over the last dim -> ``[..., 1]``.

    Change of variables with the reference's (SAC's) correction term
    log(1 - tanh(u)^2 + 1e-6), not the exact softplus form, to reproduce its values.
    """
    var = torch.exp(2.0 * log_std)
    normal_lp = -((pre_tanh - mean) ** 2) / (2.0 * var) - log_std - 0.5 * math.log(2.0 * math.pi)
    correction = torch.log(1.0 - torch.tanh(pre_tanh) ** 2 + TANH_LOG_PROB_EPS)
    return (normal_lp - correction).sum(dim=-1, keepdim=True)


class PolicyOutput(NamedTuple):
    """All ``[..., A]`` except ``log_prob`` ``[..., 1]``. ``log_prob`` is None when not
    requested or deterministic; ``pre_tanh_value`` is the Gaussian sample (the mean when
    deterministic)."""

    action: torch.Tensor
    mean: torch.Tensor
    log_std: torch.Tensor
    log_prob: Optional[torch.Tensor]
    pre_tanh_value: torch.Tensor


class TanhGaussianPolicy(Mlp):
    """pi(a | s, z): tanh-squashed diagonal Gaussian (docs/method.md §4).

    MLP [net_size]*3 on (s, z) with a mean head (``last_fc``) and a log-std head
    (``last_fc_log_std``), both initialised uniform ±1e-3; log_std clamped to
    [LOG_SIG_MIN, LOG_SIG_MAX] = [-20, 0]. The clamp also stops its gradient outside
    the range, as in the reference.
    """

    def __init__(
        self,
        obs_dim: int,
        latent_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256, 256),
        init_w: float = 1e-3,
    ):
        self.obs_dim = int(obs_dim)
        self.latent_dim = int(latent_dim)
        self.action_dim = int(action_dim)
        super().__init__(self.obs_dim + self.latent_dim, hidden_sizes, self.action_dim, init_w=init_w)
        last_hidden = self.hidden_sizes[-1] if self.hidden_sizes else self.input_size
        self.last_fc_log_std = nn.Linear(last_hidden, self.action_dim)
        with torch.no_grad():
            self.last_fc_log_std.weight.uniform_(-init_w, init_w)
            self.last_fc_log_std.bias.uniform_(-init_w, init_w)

    def forward(  # type: ignore[override]
        self,
        obs: torch.Tensor,
        z: Optional[torch.Tensor] = None,
        reparameterize: bool = True,
        deterministic: bool = False,
        return_log_prob: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> PolicyOutput:
        """``obs [..., S]`` and ``z`` broadcastable to ``[..., L]`` (e.g. ``[T, 1, L]``),
        or ``obs`` already holding (s, z) when ``z`` is None.

        ``reparameterize`` keeps the action differentiable w.r.t. mean and std (the CSRO
        step always uses it); False returns a sample with no gradient path through the noise.
        """
        x = obs if z is None else cat_broadcast(obs, z)
        h = self.hidden(x)
        mean = self.last_fc(h)
        log_std = torch.clamp(self.last_fc_log_std(h), LOG_SIG_MIN, LOG_SIG_MAX)
        if deterministic:
            return PolicyOutput(torch.tanh(mean), mean, log_std, None, mean)
        std = torch.exp(log_std)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        pre_tanh = mean + std * eps
        if not reparameterize:
            pre_tanh = pre_tanh.detach()
        action = torch.tanh(pre_tanh)
        log_prob = tanh_gaussian_log_prob(pre_tanh, mean, log_std) if return_log_prob else None
        return PolicyOutput(action, mean, log_std, log_prob, pre_tanh)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        z: torch.Tensor,
        deterministic: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Action(s) for acting in the env, without autograd."""
        return self(obs, z, reparameterize=False, deterministic=deterministic,
                    return_log_prob=False, generator=generator).action
