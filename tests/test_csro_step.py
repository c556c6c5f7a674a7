"""One CSRO meta-training step: which parameters change, gradient routing, alpha, targets (docs/method.md §5)."""

import copy

import pytest
import torch

from rlkit.core.precision import computing_in
from rlkit.torch import losses as L
from rlkit.torch.csro import CSROHyperParams, CSROTrainer, MetaBatch
from tests.helpers import assert_resumes_identically

T, B, N, OBS, ACT = 4, 32, 48, 3, 2


def make_batch(hp, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = OBS + ACT + 1 + (OBS if hp.use_next_obs_in_context else 0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return MetaBatch(
        task_ids=torch.arange(T), context=r(T, N, d), obs=r(T, B, OBS), actions=torch.tanh(r(T, B, ACT)),
        rewards=r(T, B, 1), next_obs=r(T, B, OBS), terminals=(r(T, B, 1) > 1).float(),
        extra_obs=r(hp.c_iter - 1, T, B, OBS), extra_actions=torch.tanh(r(hp.c_iter - 1, T, B, ACT)),
    )


def make_trainer(**kw):
    torch.manual_seed(0)
    hp = CSROHyperParams(latent_size=4, net_size=16, **kw)
    return CSROTrainer(OBS, ACT, hp), hp


def snapshot(trainer):
    return {name: copy.deepcopy(m.state_dict()) for name, m in trainer.modules().items()}


def changed(before, trainer):
    out = set()
    for name, m in trainer.modules().items():
        sd = m.state_dict()
        if name == "agent":
            for part in ("encoder", "policy"):
                if any(not torch.equal(before[name][k], v) for k, v in sd.items() if k.startswith(part)):
                    out.add(part)
        elif any(not torch.equal(before[name][k], v) for k, v in sd.items()):
            out.add(name)
    return out


def test_full_step_updates_every_group():
    tr, hp = make_trainer(use_brac=True)
    before = snapshot(tr)
    tr.train_step(make_batch(hp))
    assert changed(before, tr) == {"encoder", "policy", "qf1", "qf2", "vf", "target_vf", "dual_critic", "club"}


def test_without_brac_the_dual_critic_is_untouched():
    tr, hp = make_trainer(use_brac=False)
    before = snapshot(tr)
    alpha = tr.alpha_var.clone()
    tr.train_step(make_batch(hp))
    assert "dual_critic" not in changed(before, tr)
    assert torch.equal(tr.alpha_var, alpha)


@pytest.mark.parametrize("allow_backward_z", [False, True])
def test_encoder_learns_only_from_club_and_focal_unless_backward_z(allow_backward_z):
    tr, hp = make_trainer(use_brac=True, use_club=False, use_FOCAL_cl=False, allow_backward_z=allow_backward_z)
    before = snapshot(tr)
    tr.train_step(make_batch(hp))
    assert ("encoder" in changed(before, tr)) == allow_backward_z


@pytest.mark.parametrize("club,focal", [(True, False), (False, True)])
def test_each_representation_loss_moves_the_encoder(club, focal):
    tr, hp = make_trainer(use_brac=False, use_club=club, use_FOCAL_cl=focal)
    before = snapshot(tr)
    tr.train_step(make_batch(hp))
    assert "encoder" in changed(before, tr)
    assert ("club" in changed(before, tr)) == club


def test_club_network_learns_only_from_its_likelihood():
    tr, hp = make_trainer(use_brac=True)
    batch = make_batch(hp)
    club, enc = copy.deepcopy(tr.objective("club").net), copy.deepcopy(tr.agent.encoder)
    opt = torch.optim.Adam(club.parameters(), lr=hp.context_lr)
    z_t = enc.per_transition(batch.context).detach()
    mu, var = club.from_context(batch.context)
    (hp.club_model_loss_weight * L.club_model_loss(mu, var, z_t)).backward()
    opt.step()
    tr.train_step(batch)
    for p, q in zip(club.parameters(), tr.objective("club").net.parameters()):
        torch.testing.assert_close(p, q)


def test_alpha_and_target_network_updates():
    """alpha_var moves by alpha_lr * (mean D - target), D recomputed here from the formula of
    docs/method.md §5.3 with the step's own a_pi (same RNG draw) and the updated dual critic."""
    tr, hp = make_trainer(use_brac=True, alpha_init=10.0, alpha_lr=0.5, soft_target_tau=0.1)
    batch = make_batch(hp)
    target_before = copy.deepcopy(tr.target_vf.state_dict())
    encoder, policy = copy.deepcopy(tr.agent.encoder), copy.deepcopy(tr.agent.policy)
    rng = torch.get_rng_state()
    tr.train_step(batch)
    torch.set_rng_state(rng)  # the policy's sample is the step's first random draw
    with torch.no_grad():
        z = encoder(batch.context).mean(dim=1, keepdim=True)
        a_pi = policy(batch.obs, z).action
        c = tr.dual_critic  # not updated after the divergence is read
        softplus = lambda x: torch.log(1 + torch.exp(x))  # noqa: E731
        d = -softplus(c(batch.obs, batch.actions, z)) + torch.log(softplus(c(batch.obs, a_pi, z)) + 1e-8) + 1
    torch.testing.assert_close(tr.alpha_var, 10.0 + 0.5 * (d.mean() - hp.target_divergence))
    for k, v in tr.target_vf.state_dict().items():
        torch.testing.assert_close(v, 0.9 * target_before[k] + 0.1 * tr.vf.state_dict()[k])
    tr.alpha_var = torch.tensor(5000.0)
    assert float(tr.alpha) == hp.alpha_max


def test_state_dict_round_trip_continues_identically():
    hp = make_trainer(use_brac=True)[1]
    assert_resumes_identically(lambda: make_trainer(use_brac=True)[0], [make_batch(hp, 0)], make_batch(hp, 1))


def test_hyperparams_from_reference_config_normalise_switches():
    hp = CSROHyperParams.from_config({"latent_size": 40, "algo_params": {"use_brac": 0, "club_use_sa": 1,
                                                                          "num_iterations": 5}})
    assert hp.latent_size == 40 and hp.use_brac is False and hp.club_use_sa is True


@pytest.mark.parametrize("kw", [dict(use_information_bottleneck=True, use_brac=True),
                                dict(divergence_name="w", use_brac=True, use_value_penalty=True),
                                dict(use_next_obs_in_context=True, club_use_sa=True, use_brac=True)])
def test_every_switch_runs_a_finite_step(kw):
    tr, hp = make_trainer(**kw)
    before = snapshot(tr)
    stats = tr.train_step(make_batch(hp), with_stats=True)
    assert all(torch.isfinite(v).all() for v in stats.values())
    assert "encoder" in changed(before, tr)
    if hp.use_information_bottleneck:
        assert stats["KL Divergence"] > 0


@pytest.mark.parametrize("ib", [False, True])
def test_padded_contexts_pool_like_each_context_on_its_own(ib):
    """infer_z with lengths equals, task by task, the posterior mean written out from the raw
    encoder outputs of that task's first lengths[m] rows (docs/method.md §4)."""
    tr, hp = make_trainer(use_information_bottleneck=ib)
    ctx = make_batch(hp).context
    lengths = torch.tensor([N, 5, 1, 0])
    z = tr.agent.infer_z(ctx, lengths)
    with torch.no_grad():
        for m, n in enumerate(lengths.tolist()):
            out = tr.agent.encoder(ctx[m, :n])  # [n, out], raw MLP outputs
            if n == 0:
                expected = torch.zeros(hp.latent_size)  # an empty context is the prior mean
            elif not ib:
                expected = out.mean(dim=0)
            else:  # product of Gaussians: precisions add, the mean is precision-weighted
                mu, var = out[:, : hp.latent_size], torch.nn.functional.softplus(out[:, hp.latent_size:])
                expected = (mu / var).sum(0) / (1.0 / var).sum(0)
            torch.testing.assert_close(z[m], expected)
            # the logged "Z variance": the product variance, or the spread of the outputs (0 below two)
            if ib:
                spread = 1.0 / (1.0 / var).sum(0) if n else torch.ones(hp.latent_size)
            else:
                spread = out.std(dim=0) if n > 1 else torch.zeros(hp.latent_size)
            torch.testing.assert_close(tr.agent.z_var_from_encoded(tr.agent.encode_context(ctx), lengths)[m], spread)
    # what evaluation caches (the encoded rows, pooled per length) ignores whatever lies past each
    # task's length: rows beyond it, here huge, must not reach z (a pooling that read them would fail)
    junk = ctx.clone()
    for m, n in enumerate(lengths.tolist()):
        junk[m, n:] = 1e3 * torch.randn_like(junk[m, n:])
    with torch.no_grad():
        cached = tr.agent.z_from_encoded(tr.agent.encode_context(junk), lengths)
    torch.testing.assert_close(cached, z)


def test_fused_adam_makes_the_same_update():
    """``fused_adam`` swaps every optimizer's kernel, not the update: one step moves each
    weight as the per-parameter Adam does, up to float rounding.

    Compared in float64: in float32 the two kernels' rounding differs by an amount that
    depends on the CPU's vector width (2.7e-6 on an AVX2 host against 1.3e-6 allowed),
    in float64 by ~1e-16 of a weight on any host, so a tolerance of 1e-9 of the step's
    largest move (plus 1e-12) is machine-independent and still far below any change of
    the update rule (lr, betas, eps or bias correction move weights by >= 1e-3 of it)."""
    with computing_in("float64"):
        plain, hp = make_trainer(use_brac=True)
        fused, hp_fused = make_trainer(use_brac=True, fused_adam=True)
        assert all(o.defaults["fused"] for o in fused.optimizers.values()) and len(fused.optimizers) == 7
        assert not any(o.defaults["fused"] for o in plain.optimizers.values())
        start = snapshot(plain)
        for tr in (plain, fused):
            torch.manual_seed(5)
            tr.train_step(make_batch(hp))
    for name, a in snapshot(plain).items():
        b = snapshot(fused)[name]
        for k in a:
            assert a[k].dtype in (torch.float64, torch.int64, torch.bool), (name, k, a[k].dtype)
            moved = (a[k] - start[name][k]).abs().max()
            torch.testing.assert_close(b[k], a[k], atol=1e-12 + 1e-9 * float(moved), rtol=0)
