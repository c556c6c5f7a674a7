"""Each CSRO loss against a slow, obvious version of its docs/method.md §5 formula."""

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from rlkit.torch import losses
from rlkit.torch.networks import ClubNetwork, ContextEncoder, build_context, make_dual_critic

T, B, S, A, L = 3, 5, 4, 2, 3


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


# --------------------------------------------------------------------------- BRAC


def test_soft_relu_is_stable_softplus():
    x = torch.linspace(-30, 30, 101, dtype=torch.float64)
    torch.testing.assert_close(losses.soft_relu(x), torch.log1p(torch.exp(x)))
    assert torch.isfinite(losses.soft_relu(torch.tensor([-1e4, 1e4]))).all()


def test_kl_and_w_dual_estimates_match_formula():
    c_data, c_pi = torch.randn(T, B, 1) * 3, torch.randn(T, B, 1) * 3
    kl = losses.brac_dual_estimate(c_data, c_pi, "kl")
    w = losses.brac_dual_estimate(c_data=c_data, c_pi=c_pi, divergence="w")
    for idx in itertools.product(range(T), range(B), range(1)):
        cd, cp = c_data[idx].item(), c_pi[idx].item()
        assert kl[idx].item() == pytest.approx(-_softplus(cd) + math.log(_softplus(cp) + 1e-8) + 1, rel=1e-5)
        assert w[idx].item() == pytest.approx(cp - cd, rel=1e-5)


@pytest.mark.parametrize("name", ["mmd", "KL", "js"])
def test_unknown_divergence_is_an_error(name):
    with pytest.raises(ValueError, match="unknown divergence"):
        losses.brac_dual_estimate(torch.zeros(2, 1), torch.zeros(2, 1), name)


def _slow_dual_critic_loss(c, obs, a_data, a_pi, z, u, divergence, weight=5.0):
    """Loop over samples: -mean(D) + weight * mean(max(sqrt(1e-8 + c(s, ã, z)^2) - 1, 0)^2)."""
    ds, pens = [], []
    for t in range(obs.shape[0]):
        for b in range(obs.shape[1]):
            s, zz = obs[t, b], z[t, 0]
            cd = c(s, a_data[t, b], zz).item()
            cp = c(s, a_pi[t, b], zz).item()
            if divergence == "kl":
                ds.append(-_softplus(cd) + math.log(_softplus(cp) + 1e-8) + 1)
            else:
                ds.append(cp - cd)
            a_int = a_pi[t, b] + u[t, b, 0] * (a_data[t, b] - a_pi[t, b])
            ci = c(s, a_int, zz).item()
            pens.append(max(math.sqrt(1e-8 + ci**2) - 1.0, 0.0) ** 2)
    return -sum(ds) / len(ds) + weight * sum(pens) / len(pens)


@pytest.mark.parametrize("divergence", ["kl", "w"])
def test_dual_critic_loss_matches_slow_version(divergence):
    c = make_dual_critic(S, A, L, net_size=16)
    c.last_fc.weight.data.normal_(0, 2.0)  # values beyond ±1 so the penalty is active
    obs, a_data, a_pi = torch.randn(T, B, S), torch.rand(T, B, A) * 2 - 1, torch.rand(T, B, A) * 2 - 1
    z = torch.randn(T, 1, L)
    loss = losses.dual_critic_loss(c, obs, a_data, a_pi, z, divergence,
                                   generator=torch.Generator().manual_seed(11))
    u = torch.rand((T, B, 1), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        slow = _slow_dual_critic_loss(c, obs, a_data, a_pi, z, u, divergence)
    assert loss.item() == pytest.approx(slow, rel=1e-5)
    # penalty active in this test (else it would not check the quirk)
    no_pen = losses.dual_critic_loss(c, obs, a_data, a_pi, z, divergence, gradient_penalty_weight=0.0)
    assert loss.item() > no_pen.item() + 1e-3


def test_dual_critic_loss_trains_only_c():
    c = make_dual_critic(S, A, L, net_size=16)
    a_pi = torch.randn(T, B, A, requires_grad=True)
    z = torch.randn(T, 1, L, requires_grad=True)
    losses.dual_critic_loss(c, torch.randn(T, B, S), torch.randn(T, B, A), a_pi, z).backward()
    assert a_pi.grad is None and z.grad is None
    assert all(p.grad is not None for p in c.parameters())


def test_true_gradient_penalty_flag():
    w = torch.tensor([3.0, 4.0])  # c linear in a with |dc/da| = 5

    def c(obs, act, z):
        return (act * w).sum(-1, keepdim=True) + 0.0 * obs.sum(-1, keepdim=True)

    obs, a_data, a_pi, z = torch.randn(T, B, S), torch.randn(T, B, A), torch.randn(T, B, A), torch.zeros(T, 1, L)
    base = losses.dual_critic_loss(c, obs, a_data, a_pi, z, gradient_penalty_weight=0.0)
    true_gp = losses.dual_critic_loss(c, obs, a_data, a_pi, z, true_gradient_penalty=True)
    assert true_gp.item() == pytest.approx(base.item() + 5.0 * (math.sqrt(25 + 1e-8) - 1) ** 2, rel=1e-5)
    # the default (quirk) penalises the value at the interpolate instead, which differs here
    quirk = losses.dual_critic_loss(c, obs, a_data, a_pi, z, generator=torch.Generator().manual_seed(0))
    assert quirk.item() != pytest.approx(true_gp.item(), rel=1e-3)


def test_true_gradient_penalty_backprops_into_c():
    c = make_dual_critic(S, A, L, net_size=16)
    losses.dual_critic_loss(c, torch.randn(T, B, S), torch.randn(T, B, A), torch.randn(T, B, A),
                            torch.randn(T, 1, L), true_gradient_penalty=True).backward()
    assert all(p.grad is not None for p in c.parameters())


def test_divergence_for_actor_routes_gradient_to_actions_only():
    c = make_dual_critic(S, A, L, net_size=16)
    obs, a_data, z = torch.randn(T, B, S), torch.randn(T, B, A), torch.randn(T, 1, L, requires_grad=True)
    a_pi = torch.randn(T, B, A, requires_grad=True)
    div = losses.divergence_for_actor(c, obs, a_pi, a_data, z)
    assert div.shape == (T, B, 1)
    expected = losses.brac_dual_estimate(c(obs, a_data, z), c(obs, a_pi, z), "kl")
    torch.testing.assert_close(div, expected)
    div.mean().backward()
    assert a_pi.grad is not None and a_pi.grad.abs().sum() > 0
    assert z.grad is None
    assert all(p.grad is None for p in c.parameters())


# --------------------------------------------------------------------------- CLUB


def test_club_model_loss_matches_loop():
    mu, var, z = torch.randn(T, B, L), F.softplus(torch.randn(T, B, L)), torch.randn(T, B, L)
    total = 0.0
    for idx in itertools.product(range(T), range(B), range(L)):
        m, v, zz = mu[idx].item(), var[idx].item(), z[idx].item()
        total += (zz - m) ** 2 / (2 * v) + math.log(math.sqrt(v))
    assert losses.club_model_loss(mu, var, z).item() == pytest.approx(total / (T * B * L), rel=1e-5)


def test_club_model_loss_fits_q_not_encoder():
    enc, club = ContextEncoder(S, A, L), ClubNetwork(S, A, L)
    ctx = build_context(torch.randn(T, B, S), torch.randn(T, B, A), torch.randn(T, B))
    z_t = enc.per_transition(ctx).detach()  # as documented: encoder outputs passed detached
    mu, var = club.from_context(ctx)
    losses.club_model_loss(mu, var, z_t).backward()
    assert all(p.grad is None for p in enc.parameters())
    assert all(p.grad is not None for p in club.parameters())


def _club_reference_b2(mu, var, z):
    """The reference's materialised version: every (mu_t, var_t) against every z_t' of the task."""
    t, n, _ = mu.shape
    positive = -((z - mu) ** 2 / var).mean()
    mu_e = mu[:, :, None, :].expand(-1, -1, n, -1).reshape(t, n * n, -1)
    var_e = var[:, :, None, :].expand(-1, -1, n, -1).reshape(t, n * n, -1)
    z_r = z.repeat(1, n, 1)
    negative = -((z_r - mu_e) ** 2 / var_e).mean()
    return positive - negative


def test_club_bound_matches_explicit_pairs_loop():
    mu, var, z = torch.randn(2, 4, 2), F.softplus(torch.randn(2, 4, 2)), torch.randn(2, 4, 2)
    pos, neg, n_pos, n_neg = 0.0, 0.0, 0, 0
    for t in range(2):
        for i in range(4):
            for l in range(2):
                pos += -((z[t, i, l] - mu[t, i, l]) ** 2 / var[t, i, l]).item()
                n_pos += 1
                for j in range(4):  # all pairs (i, j) of the same task, j == i included
                    neg += -((z[t, j, l] - mu[t, i, l]) ** 2 / var[t, i, l]).item()
                    n_neg += 1
    expected = pos / n_pos - neg / n_neg
    assert losses.club_mi_upper_bound(mu, var, z).item() == pytest.approx(expected, rel=1e-5)


def test_club_bound_o_n_equals_reference_b2_value_and_gradient():
    mu = torch.rand(T, 7, L, dtype=torch.float64) * 2 - 1
    var = F.softplus(torch.rand(T, 7, L, dtype=torch.float64) * 2 - 1)
    z1 = (torch.rand(T, 7, L, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    z2 = z1.detach().clone().requires_grad_(True)
    fast, slow = losses.club_mi_upper_bound(mu, var, z1), _club_reference_b2(mu, var, z2)
    torch.testing.assert_close(fast, slow)
    fast.backward()
    slow.backward()
    torch.testing.assert_close(z1.grad, z2.grad)


def test_club_bound_float32_stable_with_offset():
    # z and mu far from 0 relative to their spread: the raw sum z^2 - 2 mu sum z + N mu^2
    # would cancel badly in float32; the centred form must not.
    mu = 50 + torch.randn(2, 64, 4) * 1e-2
    var = torch.full((2, 64, 4), 0.5)
    z = 50 + torch.randn(2, 64, 4) * 1e-2
    slow = _club_reference_b2(mu.double(), var.double(), z.double())
    torch.testing.assert_close(losses.club_mi_upper_bound(mu, var, z).double(), slow, rtol=1e-3, atol=1e-6)


def test_club_bound_gradient_reaches_encoder_only_through_z():
    enc, club = ContextEncoder(S, A, L), ClubNetwork(S, A, L)
    ctx = build_context(torch.randn(T, B, S), torch.randn(T, B, A), torch.randn(T, B))
    mu, var = club.from_context(ctx)
    losses.club_mi_upper_bound(mu.detach(), var.detach(), enc.per_transition(ctx)).backward()
    assert all(p.grad is not None for p in enc.parameters())
    assert all(p.grad is None for p in club.parameters())


# --------------------------------------------------------------------------- FOCAL


def _slow_focal(z, ids):
    pos, neg, n_pos, n_neg = 0.0, 0.0, 0, 0
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            d = sum((z[i, k].item() - z[j, k].item()) ** 2 for k in range(z.shape[1])) / z.shape[1]
            if ids[i] == ids[j]:
                pos += math.sqrt(d + 1e-3)
                n_pos += 1
            else:
                neg += 1.0 / (d + 0.1)
                n_neg += 1
    return pos / (n_pos + 1e-3) + neg / (n_neg + 1e-3)


@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4], [3, 1, 3, 1, 3, 2], [7, 7, 7]])
def test_focal_matches_double_loop(ids):
    z = torch.randn(len(ids), L, requires_grad=True)
    loss = losses.focal_distance_metric_loss(z, torch.tensor(ids))
    assert loss.item() == pytest.approx(_slow_focal(z, ids), rel=1e-5)
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_focal_identical_embeddings_have_finite_gradient():
    z = torch.zeros(4, L, requires_grad=True)
    losses.focal_distance_metric_loss(z, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(z.grad).all()


def test_focal_rejects_bad_shapes():
    with pytest.raises(ValueError):
        losses.focal_distance_metric_loss(torch.randn(2, 3, L), torch.arange(2))
    with pytest.raises(ValueError):
        losses.focal_distance_metric_loss(torch.randn(3, L), torch.arange(4))


# --------------------------------------------------------------------------- SAC pieces


def test_q_target_matches_formula():
    r, v = torch.randn(T, B, 1), torch.randn(T, B, 1)
    done = torch.rand(T, B, 1) < 0.3
    out = losses.q_target(r, done, v, reward_scale=5.0, discount=0.9)
    for idx in itertools.product(range(T), range(B), range(1)):
        expected = 5.0 * r[idx].item() + (0.0 if done[idx] else 0.9 * v[idx].item())
        assert out[idx].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="shape mismatch"):
        losses.q_target(r[..., 0], done, v, 5.0, 0.9)


def test_value_targets_and_mse_losses():
    min_q, log_pi = torch.randn(T, B, 1), torch.randn(T, B, 1)
    torch.testing.assert_close(losses.v_target_max_entropy(min_q, log_pi), min_q - log_pi)
    alpha, div = torch.tensor(3.0, requires_grad=True), torch.randn(T, B, 1, requires_grad=True)
    pen = losses.value_penalized_target(min_q, alpha, div)
    torch.testing.assert_close(pen, min_q - 3.0 * div.detach())
    assert not pen.requires_grad
    q1, q2 = torch.randn(T, B, 1, requires_grad=True), torch.randn(T, B, 1, requires_grad=True)
    target = torch.randn(T, B, 1, requires_grad=True)
    ql = losses.q_loss(q1, q2, target)
    torch.testing.assert_close(ql, F.mse_loss(q1, target) + F.mse_loss(q2, target))
    ql.backward()
    assert target.grad is None
    torch.testing.assert_close(losses.v_loss(q1, target), F.mse_loss(q1, target))


def test_policy_loss_matches_formula():
    log_pi, min_q, div = torch.randn(T, B, 1), torch.randn(T, B, 1), torch.randn(T, B, 1)
    mean, log_std = torch.randn(T, B, A, requires_grad=True), -torch.rand(T, B, A)
    alpha = torch.tensor(2.5, requires_grad=True)
    n = T * B
    terms = sum(log_pi[t, b, 0] - min_q[t, b, 0] + 2.5 * div[t, b, 0] for t in range(T) for b in range(B)) / n
    reg = 1e-3 * (mean**2).sum() / mean.numel() + 1e-3 * (log_std**2).sum() / log_std.numel()
    loss = losses.policy_loss(log_pi, min_q, div, alpha, mean, log_std)
    assert loss.item() == pytest.approx((terms + reg).item(), rel=1e-5)
    loss.backward()
    assert alpha.grad is None  # alpha is a constant for the policy
    torch.testing.assert_close(mean.grad, 2e-3 * mean.detach() / mean.numel())
    # BRAC off / max-entropy off
    no_brac = losses.policy_loss(log_pi, min_q, None, alpha, mean, log_std)
    assert no_brac.item() == pytest.approx((terms - 2.5 * div.mean() + reg).item(), rel=1e-5)
    no_ent = losses.policy_loss(None, min_q, None, 0.0, mean, log_std, mean_reg=0.0, std_reg=0.0)
    assert no_ent.item() == pytest.approx(-min_q.mean().item(), rel=1e-6)
    pre = torch.randn(T, B, A)
    with_pre = losses.policy_loss(log_pi, min_q, div, alpha, mean, log_std,
                                  pre_tanh_value=pre, pre_activation_reg=0.1)
    assert with_pre.item() == pytest.approx(loss.item() + 0.1 * (pre**2).sum(-1).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="shape mismatch"):
        losses.policy_loss(log_pi[..., 0], min_q, div, alpha, mean, log_std)


@pytest.mark.parametrize("prior_std", [1.0, 0.05])
def test_kl_to_standard_normal(prior_std):
    mu, var = torch.randn(T, L), F.softplus(torch.randn(T, L))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, var.sqrt()), torch.distributions.Normal(0.0, prior_std)).sum()
    torch.testing.assert_close(losses.kl_to_standard_normal(mu, var, prior_std), expected)


def test_everything_follows_the_input_device():
    """No hidden CPU tensors: run the whole chain on the shape-only 'meta' device."""
    from rlkit.torch.networks import TanhGaussianPolicy

    with torch.device("meta"):
        enc, club = ContextEncoder(S, A, L), ClubNetwork(S, A, L)
        c, pol = make_dual_critic(S, A, L, net_size=8), TanhGaussianPolicy(S, L, A, hidden_sizes=[8])
    ctx = torch.randn(T, B, S + A + 1, device="meta")
    obs, a_data = torch.randn(T, B, S, device="meta"), torch.randn(T, B, A, device="meta")
    z = enc.infer(ctx)
    out = pol(obs, z[:, None].detach())
    mu, var = club.from_context(ctx)
    results = [
        losses.dual_critic_loss(c, obs, a_data, out.action, z[:, None]),
        losses.dual_critic_loss(c, obs, a_data, out.action, z[:, None], true_gradient_penalty=True),
        losses.divergence_for_actor(c, obs, out.action, a_data, z[:, None]),
        losses.club_mi_upper_bound(mu, var, enc.per_transition(ctx)),
        losses.focal_distance_metric_loss(z, torch.arange(T)),
    ]
    assert all(r.device.type == "meta" for r in results)
