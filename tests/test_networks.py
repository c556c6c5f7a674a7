"""Shapes, initialisation and invariances of the CSRO networks (docs/method.md §4)."""

import math

import pytest
import torch
from torch.nn import functional as F

from rlkit.torch.networks import (
    LOG_SIG_MAX,
    LOG_SIG_MIN,
    ClubNetwork,
    ContextEncoder,
    FlattenMlp,
    Mlp,
    TanhGaussianPolicy,
    build_context,
    cat_broadcast,
    club_input_dim,
    context_dim,
    make_dual_critic,
    make_q_network,
    make_v_network,
    tanh_gaussian_log_prob,
    true_fanin_init,
)

S, A, L = 5, 3, 4  # obs, action, latent dims used throughout


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- Mlp


def test_mlp_shapes_any_leading_dims():
    net = Mlp(7, [16, 16], 2)
    for lead in [(), (9,), (3, 9), (2, 3, 4)]:
        assert net(torch.randn(*lead, 7)).shape == (*lead, 2)
    with pytest.raises(ValueError):
        net(torch.randn(3, 6))


def test_mlp_reference_init():
    net = Mlp(7, [200, 256, 256], 1)
    for fc in net.fcs:
        assert torch.all(fc.bias == 0.1)
        # Reference quirk: bound 1/sqrt(weight.shape[0]) (out_features), see reference_fanin_init.
        bound = 1.0 / math.sqrt(fc.weight.shape[0])
        assert fc.weight.abs().max() <= bound
        assert fc.weight.abs().max() > 0.9 * bound  # really uniform over the whole range
    assert net.last_fc.weight.abs().max() <= 3e-3
    assert net.last_fc.bias.abs().max() <= 3e-3
    assert net.last_fc.weight.abs().max() > 2e-3


def test_mlp_true_fanin_option():
    net = Mlp(7, [200], 1, hidden_init=true_fanin_init)
    bound = 1.0 / math.sqrt(7)
    assert net.fc0.weight.abs().max() <= bound
    assert net.fc0.weight.abs().max() > 1.0 / math.sqrt(200)  # wider than the reference bound


def test_state_dict_keys_match_reference_names():
    assert set(Mlp(3, [4, 4], 1).state_dict()) == {
        "fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "last_fc.weight", "last_fc.bias"}
    keys = set(TanhGaussianPolicy(S, L, A, hidden_sizes=[8, 8, 8]).state_dict())
    assert {"fc2.weight", "last_fc.weight", "last_fc_log_std.weight", "last_fc_log_std.bias"} <= keys


def test_flatten_mlp_broadcasts_task_embedding():
    q = make_q_network(S, A, L, net_size=32)
    assert isinstance(q, FlattenMlp) and q.hidden_sizes == (32, 32, 32)
    obs, act, z = torch.randn(2, 6, S), torch.randn(2, 6, A), torch.randn(2, L)
    out = q(obs, act, z[:, None, :])
    expected = Mlp.forward(q, torch.cat([obs, act, z[:, None, :].expand(2, 6, L)], dim=-1))
    assert out.shape == (2, 6, 1)
    torch.testing.assert_close(out, expected)
    assert make_v_network(S, L, net_size=32)(obs, z[:, None]).shape == (2, 6, 1)
    c = make_dual_critic(S, A, L)
    assert c.hidden_sizes == (256, 256, 256) and c.input_size == S + A + L
    assert cat_broadcast(torch.zeros(2, 1, 3), torch.zeros(1, 5, 2)).shape == (2, 5, 5)


# --------------------------------------------------------------------------- context encoder


def test_context_layout_and_batch_helper():
    o, a, r, no = torch.randn(2, 7, S), torch.randn(2, 7, A), torch.randn(2, 7), torch.randn(2, 7, S)
    ctx = build_context(o, a, r)
    assert ctx.shape == (2, 7, context_dim(S, A, False)) == (2, 7, S + A + 1)
    torch.testing.assert_close(ctx[..., S + A], r)
    ctx2 = build_context(o, a, r[..., None], no, use_next_obs_in_context=True)
    assert ctx2.shape[-1] == context_dim(S, A, True) == 2 * S + A + 1
    torch.testing.assert_close(ctx2[..., -S:], no)
    with pytest.raises(ValueError):
        build_context(o, a, r, use_next_obs_in_context=True)


@pytest.mark.parametrize("use_next_obs", [False, True])
def test_encoder_shapes_and_mean(use_next_obs):
    enc = ContextEncoder(S, A, L, use_next_obs_in_context=use_next_obs)
    assert enc.hidden_sizes == (200, 200, 200)
    ctx = torch.randn(3, 11, context_dim(S, A, use_next_obs))
    per = enc.per_transition(ctx)
    assert per.shape == (3, 11, L) and per.abs().max() < 1  # tanh output
    z = enc.infer(ctx)
    assert z.shape == (3, L)
    torch.testing.assert_close(z, per.mean(dim=1))


def test_encoder_permutation_invariant():
    enc = ContextEncoder(S, A, L)
    ctx = torch.randn(3, 16, context_dim(S, A, False))
    perm = torch.randperm(16)
    torch.testing.assert_close(enc.infer(ctx), enc.infer(ctx[:, perm]), rtol=1e-6, atol=1e-6)
    # and each task only sees its own context
    ctx2 = ctx.clone()
    ctx2[1] = torch.randn_like(ctx2[1])
    z1, z2 = enc.infer(ctx), enc.infer(ctx2)
    torch.testing.assert_close(z1[[0, 2]], z2[[0, 2]])


def test_encoder_single_transition_spread_is_finite():
    post = ContextEncoder(S, A, L).infer_posterior(torch.randn(2, 1, S + A + 1))
    assert torch.all(post.var == 0)


def test_information_bottleneck_product_of_gaussians():
    enc = ContextEncoder(S, A, L, use_information_bottleneck=True)
    assert enc.output_size == 2 * L
    ctx = torch.randn(2, 6, context_dim(S, A, False))
    with torch.no_grad():
        out = enc(ctx)  # per transition: (mu, pre-variance), variance = softplus
    mus, variances = out[..., :L], F.softplus(out[..., L:])
    post = enc.infer_posterior(ctx, sample=False)
    for t in range(2):
        for l in range(L):
            prec = sum(1.0 / variances[t, n, l].item() for n in range(6))
            mean = sum(mus[t, n, l].item() / variances[t, n, l].item() for n in range(6)) / prec
            assert post.var[t, l].item() == pytest.approx(1.0 / prec, rel=1e-5)
            assert post.mean[t, l].item() == pytest.approx(mean, rel=1e-4, abs=1e-6)
    assert torch.equal(post.z, post.mean)
    perm = torch.randperm(6)
    torch.testing.assert_close(enc.infer_posterior(ctx[:, perm], sample=False).mean, post.mean)
    # reparameterized sampling: reproducible with a generator, gradient reaches the encoder
    s1 = enc.infer(ctx, generator=torch.Generator().manual_seed(3))
    s2 = enc.infer(ctx, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(s1, s2)
    assert not torch.allclose(s1, post.mean)
    s1.sum().backward()
    assert enc.fc0.weight.grad is not None
    # KL to N(0, I), summed over tasks and dims, as torch.distributions computes it
    kl = ContextEncoder.kl_to_prior(post)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(post.mean, post.var.sqrt()), torch.distributions.Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(kl, expected)


# --------------------------------------------------------------------------- CLUB network


@pytest.mark.parametrize("use_next_obs,club_use_sa,expected", [
    (False, False, S + A), (False, True, S + A), (True, False, S + A + 1), (True, True, S + A)])
def test_club_input_rule(use_next_obs, club_use_sa, expected):
    assert club_input_dim(S, A, use_next_obs, club_use_sa) == expected
    assert ClubNetwork(S, A, L, use_next_obs, club_use_sa).input_size == expected


def test_club_network_outputs_and_context_slicing():
    club = ClubNetwork(S, A, L, use_next_obs_in_context=True, club_use_sa=False)
    assert club.hidden_sizes == (200, 200, 200) and club.output_size == 2 * L
    o, a, r, no = torch.randn(2, 9, S), torch.randn(2, 9, A), torch.randn(2, 9), torch.randn(2, 9, S)
    ctx = build_context(o, a, r, no, use_next_obs_in_context=True)
    mu, var = club.from_context(ctx)
    mu2, var2 = club(torch.cat([o, a, r[..., None]], dim=-1))  # x = (s, a, r)
    torch.testing.assert_close(mu, mu2)
    torch.testing.assert_close(var, var2)
    assert mu.shape == var.shape == (2, 9, L)
    # tanh on all 2L outputs: mu in [-1, 1], var in [softplus(-1), softplus(1)]
    club.last_fc.weight.data.mul_(1e4)  # push into saturation to test the bounds
    mu, var = club.from_context(ctx)
    assert mu.abs().max() <= 1
    assert var.min() >= F.softplus(torch.tensor(-1.0)) - 1e-6 and var.max() <= F.softplus(torch.tensor(1.0)) + 1e-6


# --------------------------------------------------------------------------- policy


def test_policy_shapes_init_and_clamp():
    pol = TanhGaussianPolicy(S, L, A)
    assert pol.hidden_sizes == (256, 256, 256)
    for head in (pol.last_fc, pol.last_fc_log_std):
        assert head.weight.abs().max() <= 1e-3 and head.bias.abs().max() <= 1e-3
    obs, z = torch.randn(3, 8, S), torch.randn(3, L)
    out = pol(obs, z[:, None, :])
    assert out.action.shape == out.mean.shape == out.log_std.shape == out.pre_tanh_value.shape == (3, 8, A)
    assert out.log_prob.shape == (3, 8, 1)
    assert out.action.abs().max() < 1
    # same as feeding (s, z) already concatenated
    out2 = pol(torch.cat([obs, z[:, None].expand(3, 8, L)], -1), generator=torch.Generator().manual_seed(0))
    out3 = pol(obs, z[:, None], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out2.action, out3.action)
    pol.last_fc_log_std.bias.data.fill_(50.0)
    assert pol(obs, z[:, None]).log_std.max() == LOG_SIG_MAX
    pol.last_fc_log_std.bias.data.fill_(-50.0)
    assert pol(obs, z[:, None]).log_std.min() == LOG_SIG_MIN


def test_policy_log_prob_matches_torch_distributions():
    pol = TanhGaussianPolicy(S, L, A, hidden_sizes=[32, 32, 32])
    pol.last_fc.weight.data.normal_(0, 0.5)  # non-trivial mean and std
    pol.last_fc_log_std.weight.data.normal_(0, 0.5)
    obs = torch.randn(2, 5, S + L, dtype=torch.float64)
    pol = pol.double()
    out = pol(obs)
    normal = torch.distributions.Normal(out.mean, out.log_std.exp())
    u = out.pre_tanh_value
    expected = (normal.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(-1, keepdim=True)
    torch.testing.assert_close(out.log_prob, expected)
    torch.testing.assert_close(out.action, torch.tanh(u))
    torch.testing.assert_close(tanh_gaussian_log_prob(u, out.mean, out.log_std), expected)


def test_policy_deterministic_and_sampling_modes():
    pol = TanhGaussianPolicy(S, L, A, hidden_sizes=[16, 16, 16])
    obs = torch.randn(4, S + L)
    det = pol(obs, deterministic=True)
    torch.testing.assert_close(det.action, torch.tanh(det.mean))
    assert det.log_prob is None
    a1 = pol(obs, generator=torch.Generator().manual_seed(7)).action
    a2 = pol(obs, generator=torch.Generator().manual_seed(7)).action
    torch.testing.assert_close(a1, a2)
    # reparameterized: the action carries the gradient to the policy parameters
    pol(obs).action.sum().backward()
    assert pol.last_fc.weight.grad is not None and pol.last_fc_log_std.weight.grad is not None
    # not reparameterized: no path through the sample
    assert pol(obs, reparameterize=False, return_log_prob=False).action.grad_fn is None
    assert pol(obs, return_log_prob=False).log_prob is None
    acted = pol.act(obs[:, :S], obs[:, S:])
    assert acted.shape == (4, A) and not acted.requires_grad


def test_networks_follow_input_dtype():
    enc = ContextEncoder(S, A, L).double()
    assert enc.infer(torch.randn(2, 3, S + A + 1, dtype=torch.float64)).dtype == torch.float64
    pol = TanhGaussianPolicy(S, L, A, hidden_sizes=[8]).double()
    assert pol(torch.randn(2, S + L, dtype=torch.float64)).log_prob.dtype == torch.float64


def test_layer_norm_normalises_every_hidden_layer_but_the_last():
    """layer_norm: LayerNorm before the ReLU of hidden layers 0 .. n-2, as the authors' Mlp applies it."""
    import torch.nn.functional as F

    from rlkit.torch.networks import ContextEncoder

    torch.manual_seed(0)
    enc = ContextEncoder(3, 2, 4, layer_norm=True)
    names = {n.split(".")[0] for n, _ in enc.named_parameters() if n.startswith("layer_norm")}
    assert names == {"layer_norm0", "layer_norm1"}
    with torch.no_grad():
        enc.layer_norm0.weight.uniform_(0.5, 1.5)  # non-trivial affine parameters
        enc.layer_norm1.bias.uniform_(-0.5, 0.5)
    x = torch.randn(5, 7, 3 + 2 + 1)
    h = x
    for i in range(3):
        h = h @ getattr(enc, f"fc{i}").weight.T + getattr(enc, f"fc{i}").bias
        if i < 2:
            ln = getattr(enc, f"layer_norm{i}")
            mu, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
            h = (h - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
        h = F.relu(h)
    expected = torch.tanh(h @ enc.last_fc.weight.T + enc.last_fc.bias)
    torch.testing.assert_close(enc(x), expected)
    plain = ContextEncoder(3, 2, 4)
    assert not any(n.startswith("layer_norm") for n, _ in plain.named_parameters())
