"""BOReL (rlkit.torch.borel): the ELBO against a written-out loop, gradient routing, the BAMDP trajectories
(rollouts_per_trajectory episodes back to back) and their beliefs against the draw written out, the eval
agent's belief under every protocol against the GRU over exactly the context episodes it may read, a tiny
end-to-end training, state round trip."""

import copy

import numpy as np
import pytest
import torch

from rlkit.config import ConfigError
from rlkit.data.buffer import MultiTaskBuffer
from rlkit.data.synthetic import synthetic_offline_data
from rlkit.torch.borel import (BOReLAgent, BOReLHyperParams, BOReLStep, RewardDecoder, elbo_loss, kl_to_previous,
                               offline_context, sample_batch)
from rlkit.torch.networks import build_context, split_context
from rlkit.core.eval_agent import EvalAgent, Transitions
from tests.helpers import assert_resumes_identically

OBS, ACT = 3, 2


def tiny_hp(**kw):
    base = dict(latent_size=3, gru_hidden_size=8, state_embed_size=4, action_embed_size=4, reward_embed_size=2,
                reward_decoder_layers=[6], net_sizes=[16, 16], vae_episodes_per_task=2, rl_episodes_per_task=2,
                decoder_input_prev_state=True, decoder_input_action=True)
    base.update(kw)
    return BOReLHyperParams.from_mapping(base)


@pytest.fixture(scope="module")
def buffer():
    # task 0: episodes of 5, 5, 3 steps; task 1: 4 and 5 (short episodes exercise the masks)
    data = synthetic_offline_data([[5, 5, 3], [4, 5]], obs_dim=OBS, act_dim=ACT, seed=3)
    return MultiTaskBuffer(data)


def _batch(buffer, hp, seed=0, b=16):
    g = torch.Generator().manual_seed(seed)
    return sample_batch(buffer, [0, 1], [1, 0], hp, b, generator=g)


# ---------------------------------------------------------------- presets


def test_presets_read_the_shipped_file_and_refuse_unknowns():
    pr = BOReLHyperParams.preset("sparse-point-robot")
    assert (pr.latent_size, pr.gru_hidden_size, pr.kl_weight, pr.reward_decoder_layers) == (5, 128, 0.05, (32, 32))
    assert not pr.decoder_input_prev_state and pr.belief_dim == 10
    ch = BOReLHyperParams.preset("cheetah-vel")
    assert ch.decoder_input_prev_state and ch.decoder_input_action and ch.net_sizes == (256, 256)
    assert BOReLHyperParams.preset("point-robot", use_brac=True).rl.use_brac
    with pytest.raises(ConfigError, match="trainer .borel. has no settings for env .walker-rand-params."):
        BOReLHyperParams.preset("walker-rand-params")
    with pytest.raises(ConfigError, match="unknown training setting"):
        BOReLHyperParams.preset("point-robot", kl_wieght=1.0)
    # the belief's horizon: the authors' 2 rollouts per task on every env here; the old carry switch is gone
    assert {BOReLHyperParams.preset(e).rollouts_per_trajectory
            for e in ("point-robot", "sparse-point-robot", "cheetah-vel", "ant-dir")} == {2}
    with pytest.raises(ConfigError, match="rollouts_per_trajectory must be >= 1"):
        BOReLHyperParams.preset("point-robot", rollouts_per_trajectory=0)
    with pytest.raises(ConfigError, match="unknown training setting"):
        BOReLHyperParams.preset("point-robot", carry_belief_across_episodes=True)


# ---------------------------------------------------------------- the ELBO, written out


def slow_elbo(decoder, mu, logvar, eps, ep, kl_weight, coeff):
    """Per episode: for each belief k = 0..len (prior first) one sample, decode every real step t and
    sum (r_hat - r)^2; KL(q_k || q_{k-1}) (q_{-1} = N(0, I)) summed over dims and k; mean over episodes."""
    total = []
    for e in range(mu.shape[0]):
        n = int(ep["mask"][e].sum())
        rec = 0.0
        kl = 0.0
        for k in range(n + 1):
            z = mu[e, k] + torch.exp(0.5 * logvar[e, k]) * eps[e, k]
            for t in range(n):
                r_hat = decoder(z, ep["next_obs"][e, t], ep["obs"][e, t], ep["actions"][e, t])
                rec = rec + (r_hat[0] - ep["rewards"][e, t, 0]) ** 2
            pm = mu[e, k - 1] if k else torch.zeros_like(mu[e, 0])
            pv = torch.exp(logvar[e, k - 1]) if k else torch.ones_like(mu[e, 0])
            v = torch.exp(logvar[e, k])
            for d in range(mu.shape[-1]):
                kl = kl + 0.5 * (torch.log(pv[d]) - torch.log(v[d]) - 1 + v[d] / pv[d] + (mu[e, k, d] - pm[d]) ** 2 / pv[d])
        total.append((rec, kl))
    rec = sum(r for r, _ in total) / len(total)
    kl = sum(k for _, k in total) / len(total)
    return coeff * rec + kl_weight * kl, rec, kl


def test_elbo_equals_the_written_out_sum_over_beliefs_and_steps(buffer):
    torch.manual_seed(0)
    hp = tiny_hp()
    step = BOReLStep(OBS, ACT, hp)
    ep = {k: v.reshape(-1, *v.shape[2:]) for k, v in _batch(buffer, hp).vae.items()}
    assert not bool(ep["mask"].all())  # some episodes are padded
    mu, logvar = step.agent.encoder.beliefs(ep["actions"], ep["next_obs"], ep["rewards"])
    eps = torch.randn_like(mu)
    fast = elbo_loss(step.decoder, mu, logvar, eps, ep, kl_weight=0.3, reward_loss_coeff=0.7)
    slow = slow_elbo(step.decoder, mu, logvar, eps, ep, 0.3, 0.7)
    for f, s in zip(fast, slow):
        torch.testing.assert_close(f, s, rtol=1e-5, atol=1e-5)
    # the masked terms are not free: change a padded reward and nothing moves, a real one and the loss moves
    pad = (~ep["mask"]).nonzero()[0]
    ep2 = dict(ep, rewards=ep["rewards"].clone())
    ep2["rewards"][pad[0], pad[1]] = 123.0
    torch.testing.assert_close(elbo_loss(step.decoder, mu, logvar, eps, ep2, 0.3)[0], elbo_loss(step.decoder, mu, logvar, eps, ep, 0.3)[0])
    ep2["rewards"][0, 0] = 123.0
    assert elbo_loss(step.decoder, mu, logvar, eps, ep2, 0.3)[0] > elbo_loss(step.decoder, mu, logvar, eps, ep, 0.3)[0] + 1


def test_kl_to_previous_is_torch_distributions_kl():
    torch.manual_seed(1)
    mu, logvar = torch.randn(4, 6, 3), torch.randn(4, 6, 3)
    prev_mu = torch.cat([torch.zeros(4, 1, 3), mu[:, :-1]], 1)
    prev_sd = torch.cat([torch.ones(4, 1, 3), torch.exp(0.5 * logvar[:, :-1])], 1)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                                            torch.distributions.Normal(prev_mu, prev_sd)).sum(-1)
    torch.testing.assert_close(kl_to_previous(mu, logvar), ref)


def test_reward_decoder_inputs_follow_the_preset():
    for prev, act, width in ((False, False, 3 + OBS), (True, True, 3 + 2 * OBS + ACT)):
        dec = RewardDecoder(OBS, ACT, tiny_hp(decoder_input_prev_state=prev, decoder_input_action=act))
        assert dec.net[0].in_features == width


# ---------------------------------------------------------------- gradient routing


def _grads(module):
    return [p.grad for p in module.parameters()]


def _moved(module):
    return any(g is not None and bool(g.abs().sum() > 0) for g in _grads(module))


def test_the_vae_loss_moves_encoder_and_decoder_only(buffer):
    torch.manual_seed(0)
    step = BOReLStep(OBS, ACT, tiny_hp())
    loss, _ = step.vae_loss(_batch(buffer, step.hp).vae)
    loss.backward()
    assert _moved(step.agent.encoder) and _moved(step.decoder)
    for m in (step.agent.policy, step.qf1, step.qf2, step.vf, step.dual_critic):
        assert all(g is None for g in _grads(m))
    assert {id(p) for p in step.optimizers["vae"].param_groups[0]["params"]} == \
        {id(p) for p in [*step.agent.encoder.parameters(), *step.decoder.parameters()]}


def test_rl_beliefs_are_detached_and_the_rl_update_never_moves_the_vae(buffer):
    torch.manual_seed(0)
    step = BOReLStep(OBS, ACT, tiny_hp(use_brac=True))
    batch = _batch(buffer, step.hp)
    t = step.rl_transitions(batch.rl, batch.rl_index)
    assert not t["belief"].requires_grad and not t["next_belief"].requires_grad
    vae_before = copy.deepcopy([p.detach().clone() for p in [*step.agent.encoder.parameters(), *step.decoder.parameters()]])
    others = {n: copy.deepcopy(m.state_dict()) for n, m in step.modules().items() if n not in ("agent", "decoder")}
    pol_before = copy.deepcopy(step.agent.policy.state_dict())
    stats = step.rl_update(t)
    assert "Dual Critic Loss" in stats and "div_estimate" in stats
    for a, b in zip(vae_before, [*step.agent.encoder.parameters(), *step.decoder.parameters()]):
        assert torch.equal(a, b)
        assert b.grad is None
    for n, sd in others.items():  # every RL network moved
        assert any(not torch.equal(v, step.modules()[n].state_dict()[k]) for k, v in sd.items()), n
    assert any(not torch.equal(v, step.agent.policy.state_dict()[k]) for k, v in pol_before.items())


def test_the_critic_loss_moves_the_critic_only_and_the_policy_loss_not_the_critics(buffer):
    torch.manual_seed(0)
    from rlkit.torch import losses as L
    step = BOReLStep(OBS, ACT, tiny_hp())
    batch = _batch(buffer, step.hp)
    t = step.rl_transitions(batch.rl, batch.rl_index)
    q = step.qf1(t["obs"], t["actions"], t["belief"])
    L.q_loss(q, q, torch.zeros_like(q)).backward()
    assert _moved(step.qf1) and all(g is None for g in _grads(step.agent.policy)) and \
        all(g is None for g in _grads(step.agent.encoder))
    step.qf1.zero_grad(set_to_none=True)
    pol = step.agent.policy(t["obs"], t["belief"])
    min_q = L.frozen_call(step.qf1, t["obs"], pol.action, t["belief"])
    L.policy_loss(pol.log_prob, min_q, None, 0.0, pol.mean, pol.log_std).backward()
    assert _moved(step.agent.policy) and all(g is None for g in _grads(step.qf1))


def test_staging_vae_first_then_the_policy(buffer):
    torch.manual_seed(0)
    step = BOReLStep(OBS, ACT, tiny_hp(vae_train_steps=1, policy_start_step=1))
    batch = _batch(buffer, step.hp)
    pol = copy.deepcopy(step.agent.policy.state_dict())
    s0 = step.train_step(batch, with_stats=True)
    assert "VAE Loss" in s0 and "QF Loss" not in s0
    assert all(torch.equal(v, step.agent.policy.state_dict()[k]) for k, v in pol.items())
    enc = copy.deepcopy(step.agent.encoder.state_dict())
    s1 = step.train_step(batch, with_stats=True)
    assert "VAE Loss" not in s1 and "QF Loss" in s1
    assert all(torch.equal(v, step.agent.encoder.state_dict()[k]) for k, v in enc.items())


# ---------------------------------------------------------------- the belief: whole episode == stepping the agent


class _Rollout:
    device = torch.device("cpu")
    settings = type("Settings", (), {"max_path_length": 5})()


def test_the_gru_belief_over_an_episode_equals_stepping_the_eval_agent(buffer):
    torch.manual_seed(0)
    hp = tiny_hp()
    agent = BOReLAgent(OBS, ACT, hp)
    assert isinstance(agent, EvalAgent)
    ep = buffer.sample_episodes([0, 1], 1, generator=torch.Generator().manual_seed(2))
    ep = {k: v[:, 0] for k, v in ep.items()}  # [2, W, .]
    mu, logvar = agent.encoder.beliefs(ep["actions"], ep["next_obs"], ep["rewards"])
    rows = build_context(ep["obs"], ep["actions"], ep["rewards"], ep["next_obs"], True)  # [2, W, D]
    agent.reset(torch.tensor([0, 1]), _Rollout())
    torch.testing.assert_close(agent.mu, mu[:, 0], rtol=0, atol=0)  # the prior
    lengths = ep["mask"].sum(-1).tolist()
    for t in range(max(lengths)):
        envs = np.array([m for m in range(2) if t < lengths[m]])
        # the protocol's rule does not matter: a transition that does not join the context still updates the belief
        joins = np.array([t % 2 == 0] * len(envs))
        tr = Transitions(envs, joins, ~joins, False, lambda pos, t=t, envs=envs: rows[envs[pos], t:t + 1])
        agent.observe(tr)
        for m in envs:
            torch.testing.assert_close(agent.mu[m], mu[m, t + 1], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(agent.logvar[m], logvar[m, t + 1], rtol=1e-6, atol=1e-6)
    # an episode's end restarts the belief from the GRU over what joined the context (here every other row)
    agent.end_episodes(np.array([True, True]), np.array([True, True]), np.array([5, 5]))
    for m in range(2):
        joined = rows[m, :lengths[m]:2]
        parts = {k: v[None] for k, v in split_context(joined, OBS, ACT).items()}
        ref, ref_lv = agent.encoder.beliefs(parts["actions"], parts["next_obs"], parts["rewards"])
        torch.testing.assert_close(agent.mu[m], ref[0, -1], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(agent.logvar[m], ref_lv[0, -1], rtol=1e-6, atol=1e-6)
    fresh = BOReLAgent(OBS, ACT, tiny_hp())
    fresh.load_state_dict(agent.state_dict())
    fresh.reset(torch.tensor([0, 1]), _Rollout())
    fresh.observe(Transitions(np.array([0, 1]), np.zeros(2, bool), np.zeros(2, bool), False, lambda pos: rows[pos, :2]))
    torch.testing.assert_close(fresh.mu, mu[:, 2], rtol=1e-6, atol=1e-6)  # n rows at once: one GRU call
    fresh.end_episodes(np.array([False, True]), np.array([True, True]), np.array([5, 5]))
    torch.testing.assert_close(fresh.mu[1], mu[1, 0], rtol=0, atol=0)  # nothing joined: the prior again
    torch.testing.assert_close(fresh.mu[0], mu[0, 2], rtol=1e-6, atol=1e-6)
    # acting reads (s, mu, logvar) and does not change the belief
    a = fresh.act(torch.zeros(2, OBS), deterministic=True)
    assert a.shape == (2, ACT) and torch.equal(fresh.act(torch.zeros(2, OBS), deterministic=True), a)
    z, var = fresh.belief()
    assert z.shape == var.shape == (2, hp.latent_size) and (var > 0).all()


def test_infer_z_is_the_belief_mean_after_reading_each_padded_context_in_order(buffer):
    """BOReL's task embedding for the context-shift diagnostics: a padded batch of contexts of lengths
    0..W gives, for each, the belief mean the episode's first ``length`` steps give (the prior for 0)."""
    torch.manual_seed(1)
    agent = BOReLAgent(OBS, ACT, tiny_hp())
    ep = buffer.sample_episodes([0], 1, generator=torch.Generator().manual_seed(4))
    ep = {k: v[0, 0] for k, v in ep.items()}  # [W, .]
    w = int(ep["mask"].sum())
    mu, _ = agent.encoder.beliefs(ep["actions"][None], ep["next_obs"][None], ep["rewards"][None])
    rows = build_context(ep["obs"], ep["actions"], ep["rewards"], ep["next_obs"], True)[:w]
    lengths = torch.arange(w + 1)
    padded = torch.stack([torch.cat([rows[:k], torch.full((w - k, rows.shape[-1]), 7.0)]) for k in range(w + 1)])
    z = agent.infer_z(padded, lengths)
    torch.testing.assert_close(z, mu[0, :w + 1], rtol=1e-6, atol=1e-6)  # padding never read: the 7s change nothing
    torch.testing.assert_close(agent.infer_z(rows[None]), mu[0, w][None], rtol=1e-6, atol=1e-6)
    # with the episode length known it reads at most a training trajectory's rows: the last R * W real ones
    agent.episode_steps = 2  # R = 2: the last 4 rows
    long = torch.cat([rows, torch.full((2, rows.shape[-1]), 7.0)])[None].expand(2, -1, -1)
    z = agent.infer_z(long, torch.tensor([w, 3]))
    for i, n in enumerate((w, 3)):
        tail = rows[max(0, n - 4):n]
        parts = {k: v[None] for k, v in split_context(tail, OBS, ACT).items()}
        ref, _ = agent.encoder.beliefs(parts["actions"], parts["next_obs"], parts["rewards"])
        torch.testing.assert_close(z[i], ref[0, -1], rtol=1e-6, atol=1e-6)


def _written_out(ep, tasks, per_task, r):
    """The trajectories of :func:`sample_batch`, written out: for task i and trajectory k, the real rows of
    episodes r*k .. r*k + r - 1 of the draw, one after the other."""
    out = []
    for i in range(len(tasks)):
        row = []
        for k in range(per_task):
            parts = [{key: ep[key][i, j, :int(ep["mask"][i, j].sum())] for key in ("obs", "actions", "rewards",
                                                                                       "next_obs", "terminals")}
                     for j in range(r * k, r * k + r)]
            row.append({key: torch.cat([p[key] for p in parts]) for key in parts[0]})
        out.append(row)
    return out


@pytest.mark.parametrize("r", [1, 2, 3])
def test_trajectories_are_whole_episodes_back_to_back_and_the_belief_runs_across_them(buffer, r):
    """The VAE's and the RL batch's sequences are r whole episodes of the task joined (the draw written out
    with the same generator), padded at the end; the belief over one equals stepping the GRU row by row."""
    torch.manual_seed(0)
    hp = tiny_hp(rollouts_per_trajectory=r, vae_episodes_per_task=3, rl_episodes_per_task=2)
    step = BOReLStep(OBS, ACT, hp)
    batch = sample_batch(buffer, [0, 1], [1, 0], hp, 16, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    vae_eps = buffer.sample_episodes([0, 1], 3 * r, generator=g)  # the same draws, in sample_batch's order
    rl_eps = buffer.sample_episodes([1, 0], 2 * r, generator=g)
    w = buffer.max_episode_length
    for got, eps, tasks, per in ((batch.vae, vae_eps, [0, 1], 3), (batch.rl, rl_eps, [1, 0], 2)):
        assert got["obs"].shape == (2, per, r * w, OBS)
        for i, row in enumerate(_written_out(eps, tasks, per, r)):
            for k, ref in enumerate(row):
                n = len(ref["obs"])
                assert int(got["mask"][i, k].sum()) == n and bool(got["mask"][i, k, :n].all())
                for key, v in ref.items():
                    torch.testing.assert_close(got[key][i, k, :n], v, rtol=0, atol=0)
                    assert (got[key][i, k, n:] == 0).all()
    # some trajectory crosses a boundary after a short episode (synthetic obs[..., 1] is the episode number)
    if r > 1:
        ep_no = batch.vae["obs"][..., 1]
        assert bool(((ep_no[..., 1:] != ep_no[..., :-1]) & batch.vae["mask"][..., 1:]).any())
    # the belief over a trajectory, batched, equals the GRU stepped one row at a time over the written-out rows
    ref = _written_out(vae_eps, [0, 1], 3, r)[1][2]
    mu, logvar = step.agent.encoder.beliefs(batch.vae["actions"], batch.vae["next_obs"], batch.vae["rewards"])
    enc = step.agent.encoder
    m0, l0, h = enc.prior(1)
    torch.testing.assert_close(mu[1, 2, 0], m0[0], rtol=0, atol=0)
    for t in range(len(ref["obs"])):
        m_t, l_t, out = enc.run(ref["actions"][None, t:t + 1], ref["next_obs"][None, t:t + 1],
                                ref["rewards"][None, t:t + 1], h)
        h = out[:, -1]
        torch.testing.assert_close(mu[1, 2, t + 1], m_t[0, -1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logvar[1, 2, t + 1], l_t[0, -1], rtol=1e-5, atol=1e-6)
    # SAC's beliefs: of s after every earlier step of its trajectory, of s' after one more, across the boundary
    t = step.rl_transitions(batch.rl, batch.rl_index)
    rl_ref = _written_out(rl_eps, [1, 0], 2, r)
    crossed = 0
    for task in range(2):
        for j in range(16):
            k, pos = divmod(int(batch.rl_index[task, j]), r * w)
            ref = rl_ref[task][k]
            assert pos < len(ref["obs"])
            m_, l_ = enc.beliefs(ref["actions"][None, :pos + 1], ref["next_obs"][None, :pos + 1],
                                 ref["rewards"][None, :pos + 1])
            torch.testing.assert_close(t["belief"][task, j], torch.cat([m_[0, pos], l_[0, pos]]), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(t["next_belief"][task, j], torch.cat([m_[0, pos + 1], l_[0, pos + 1]]),
                                       rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(t["obs"][task, j], ref["obs"][pos])
            crossed += int(ref["obs"][pos, 1] != ref["obs"][0, 1])
    assert crossed > 0 or r == 1  # some RL transitions lie after a boundary


def test_rl_beliefs_are_the_episode_beliefs_at_t_and_t_plus_one(buffer):
    torch.manual_seed(0)
    step = BOReLStep(OBS, ACT, tiny_hp())
    batch = _batch(buffer, step.hp, b=40)
    t = step.rl_transitions(batch.rl, batch.rl_index)
    rl, w = batch.rl, batch.rl["mask"].shape[2]
    for task in range(2):
        for j in range(40):
            flat = int(batch.rl_index[task, j])
            k, s = divmod(flat, w)
            assert bool(rl["mask"][task, k, s])  # only real steps are drawn
            mu, lv = step.agent.encoder.beliefs(rl["actions"][task, k, :s + 1], rl["next_obs"][task, k, :s + 1],
                                                rl["rewards"][task, k, :s + 1])
            torch.testing.assert_close(t["belief"][task, j], torch.cat([mu[s], lv[s]]), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(t["next_belief"][task, j], torch.cat([mu[s + 1], lv[s + 1]]), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(t["obs"][task, j], rl["obs"][task, k, s])


# ---------------------------------------------------------------- end to end, state


def test_tiny_end_to_end_training_learns_the_rewards(buffer):
    torch.manual_seed(0)
    hp = tiny_hp(kl_weight=0.01, vae_lr=1e-2)
    step = BOReLStep(OBS, ACT, hp)
    g = torch.Generator().manual_seed(5)
    first = None
    for i in range(60):
        batch = sample_batch(buffer, [0, 1], [0, 1], hp, 16, generator=g)
        stats = step.train_step(batch, with_stats=True)
        assert "QF Loss" in stats and "VAE Loss" in stats
        assert all(torch.isfinite(v).all() for v in stats.values())
        if first is None:
            first = float(stats["Reward Reconstruction Loss"])
    assert step.num_steps == 60
    assert float(stats["Reward Reconstruction Loss"]) < 0.5 * first  # the synthetic reward is the time step
    for m in step.modules().values():
        assert all(torch.isfinite(p).all() for p in m.parameters())


def test_state_dict_round_trip_gives_the_identical_next_update(buffer):
    hp = tiny_hp(use_brac=True)
    first, twin = assert_resumes_identically(lambda: BOReLStep(OBS, ACT, hp),
                                             [_batch(buffer, hp, seed=s) for s in range(2)], _batch(buffer, hp, seed=7))
    assert torch.equal(first.alpha_var, twin.alpha_var)


def test_offline_context_gives_whole_windows_of_one_episode(buffer):
    fn = offline_context(buffer, torch.Generator().manual_seed(0))
    rows = fn(torch.tensor([0, 1]), 4)
    assert rows.shape == (2, 4, 2 * OBS + ACT + 1)
    # synthetic data: obs[..., 1] is the episode number and the reward the time step: one episode, consecutive steps
    assert (rows[:, :, 1] == rows[:, :1, 1]).all()
    r = rows[:, :, OBS + ACT]
    assert (r[:, 1:] - r[:, :-1] == 1).all()


class _Checking(BOReLAgent):
    """Keeps the protocol's events written out (the context episodes: offline blocks and the joined rows of
    each episode; the current episode's rows) and, before every action, checks that the belief is the GRU
    from the prior over exactly the last R - 1 context episodes and then the current episode's rows."""

    def reset(self, tasks, rollout):
        super().reset(tasks, rollout)
        m = len(tasks)
        self.ctx, self.joined, self.episode = [[] for _ in range(m)], [[] for _ in range(m)], [[] for _ in range(m)]
        self.checks = 0

    def observe(self, transitions):
        rows = transitions.rows(np.ones(len(transitions.envs), dtype=bool))
        for i, m in enumerate(transitions.envs):
            if transitions.offline:
                if self.joined[m]:
                    self.ctx[m].append(torch.cat(self.joined[m]))
                self.ctx[m].append(rows[i])
                self.joined[m], self.episode[m] = [], []
            else:
                self.episode[m].append(rows[i])
                if transitions.joins[i]:
                    self.joined[m].append(rows[i])
        super().observe(transitions)

    def end_episodes(self, ended, evaluation, eval_steps):
        for m in np.flatnonzero(ended):
            if self.joined[m]:
                self.ctx[m].append(torch.cat(self.joined[m]))
            self.joined[m], self.episode[m] = [], []
        super().end_episodes(ended, evaluation, eval_steps)

    def expected(self, m):
        kept = self.ctx[m][len(self.ctx[m]) - (self.rollouts - 1):] if self.rollouts > 1 else []
        seq = kept + self.episode[m]
        if not seq:
            return self.encoder.prior(1)[0][0]
        parts = {k: v[None] for k, v in split_context(torch.cat(seq), 2, 2).items()}
        return self.encoder.beliefs(parts["actions"], parts["next_obs"], parts["rewards"])[0][0, -1]

    def check(self):
        for m in range(len(self.ctx)):
            torch.testing.assert_close(self.mu[m], self.expected(m), rtol=1e-5, atol=1e-5)
        self.checks += 1

    def act(self, obs, deterministic):
        self.check()
        return super().act(obs, deterministic)

    def act_pair(self, obs):
        self.check()
        return super().act_pair(obs)


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("protocol", ["online", "offline", "np_online"])
def test_under_every_protocol_the_belief_reads_the_last_context_episodes_and_the_current_one(protocol, r):
    from rlkit.evaluation.protocols import EvalSettings, run_protocol
    torch.manual_seed(0)
    agent = _Checking(2, 2, tiny_hp(rollouts_per_trajectory=r)).eval()
    data = synthetic_offline_data([[20, 20], [20]], obs_dim=2, act_dim=2, task_ids=[1, 4], seed=0)
    source = offline_context(MultiTaskBuffer(data), torch.Generator().manual_seed(1))
    settings = EvalSettings(max_path_length=20, num_steps_per_eval=60, num_exp_traj_eval=1, num_evals=1)
    res = run_protocol(protocol, agent, "point-robot", dict(n_tasks=6, max_episode_steps=20), [1, 4], settings,
                       offline_context=source, seed=3)
    assert all(np.isfinite(r_).all() and len(r_) == 3 for r_ in res.episode_returns)
    assert agent.checks >= 60 + (60 if protocol == "np_online" else 0)
    assert all(len(c) == 3 for c in agent.ctx)  # three context episodes: the window drops the older ones
    assert res.z.shape == res.z_var.shape == (2, 3)
    for m in range(2):  # at the end: the belief the next episode would start from
        torch.testing.assert_close(torch.as_tensor(res.z[m]), agent.expected(m), rtol=1e-5, atol=1e-5)


def test_the_trainer_methods_drive_a_direct_training_loop_and_reload_the_agent(buffer):
    """Without the seam's registry: plan_iteration -> sample -> train_step as the generic loop calls them."""
    from types import SimpleNamespace

    from rlkit.trainers.borel import BOReLMethod
    tiny = dict(latent_size=3, gru_hidden_size=8, state_embed_size=4, action_embed_size=4, reward_embed_size=2,
                reward_decoder_layers=[6], net_sizes=[16, 16], vae_episodes_per_task=2, rl_episodes_per_task=2,
                vae_meta_batch=2, vae_train_steps=None, policy_start_step=0)
    cfg = {"env_name": "cheetah-vel", "borel": tiny,
           "algo_params": {"meta_batch": 3, "batch_size": 8, "mb_replace": True, "sparse_rewards": False,
                           "use_brac": True}}
    env = SimpleNamespace(observation_space=SimpleNamespace(shape=(OBS,)), action_space=SimpleNamespace(shape=(ACT,)),
                          context_reward=lambda r: r)
    data = SimpleNamespace(train=buffer, test=buffer, train_tasks=[0, 1], obs_absmax=None)
    torch.manual_seed(0)
    m = BOReLMethod.from_config(cfg, data, env, torch.device("cpu"))
    assert m.hp.decoder_input_prev_state and m.hp.rl.use_brac and m.hp.latent_size == 3  # env block, overrides, algo_params
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for _ in range(2):
        plan = m.plan_iteration(rng, 2)
        assert [tuple(p.shape) for p in plan[0]] == [(2,), (3,)]
        for i, p in enumerate(plan):
            stats = m.train_step(m.sample(p, g), with_stats=i == 1)
    assert m.steps_done == 4 and set(stats) == set(m.progress_columns())
    agent = BOReLMethod.load_agent(cfg, OBS, ACT, m.state_dict())
    assert agent is not m.eval_agent() and isinstance(agent, BOReLAgent)
    for k, v in m.eval_agent().state_dict().items():
        assert torch.equal(v, agent.state_dict()[k])
    rows = m.offline_context(cfg, buffer, torch.Generator().manual_seed(0))(torch.tensor([0, 1]), 3)
    assert rows.shape == (2, 3, 2 * OBS + ACT + 1)
    with pytest.raises(ConfigError, match="vae_meta_batch 3 exceeds the 2 training tasks"):
        BOReLMethod.from_config({**cfg, "borel": {**tiny, "vae_meta_batch": 3},
                                 "algo_params": {**cfg["algo_params"], "mb_replace": False}}, data, env, "cpu")


# ---------------------------------------------------------------- BOReL-RR, the reward-relabelling oracle


def test_the_rr_preset_is_borel_with_relabelling_only():
    base, rr = BOReLHyperParams.preset("point-robot"), BOReLHyperParams.preset("point-robot", "BOReL-RR")
    assert not base.reward_relabelling and rr.reward_relabelling
    assert {k: v for k, v in vars(rr).items() if k not in ("reward_relabelling", "rl")} == \
        {k: v for k, v in vars(base).items() if k not in ("reward_relabelling", "rl")}
    with pytest.raises(ConfigError, match="trainer 'borel' has no settings table 'BOReL-XX'; its tables: BOReL, BOReL-RR"):
        BOReLHyperParams.preset("point-robot", "BOReL-XX")


def test_relabelled_episodes_keep_s_a_and_take_the_targets_true_outcome():
    from rlkit.envs import make_env
    from rlkit.torch.borel import relabelled_episodes
    env = make_env("point-robot", n_tasks=6, max_episode_steps=20)
    data = synthetic_offline_data([[5, 3], [4], [5, 5]], obs_dim=2, act_dim=2, task_ids=[0, 2, 5], seed=0)
    buf = MultiTaskBuffer(data)
    ep = relabelled_episodes(buf, torch.tensor([2, 5]), 30, env.relabel_outcomes, torch.tensor([0, 2, 5]),
                             torch.Generator().manual_seed(0))
    assert ep["obs"].shape[:2] == (2, 30)
    real = ep["mask"]
    target = torch.tensor([2, 5])[:, None, None].expand(real.shape)
    nxt, r = env.relabel_outcomes(ep["obs"], ep["actions"], target)
    torch.testing.assert_close(ep["rewards"][..., 0][real], r[real].float())
    torch.testing.assert_close(ep["next_obs"][real], nxt[real].float())
    assert (ep["rewards"][~real] == 0).all() and (ep["next_obs"][~real] == 0).all()
    # the (s, a) come from every source task (synthetic obs[..., 0] is the source task id), the target's own included
    sources = {int(x) for x in ep["obs"][..., 0][real].unique()}
    assert sources == {0, 2, 5}
    # the same (s, a) under another target give another reward: the relabelling is not the identity
    other = env.relabel_outcomes(ep["obs"], ep["actions"], torch.zeros_like(target))[1]
    assert not torch.allclose(other[real], r[real])


def test_the_rr_trainer_refuses_an_env_without_a_true_step_and_trains_on_point_robot():
    from types import SimpleNamespace

    from rlkit.envs import make_env
    from rlkit.trainers.borel import BOReLMethod
    data_np = synthetic_offline_data([[5, 3], [4], [5, 5]], obs_dim=2, act_dim=2, task_ids=[0, 2, 5], seed=0)
    buf = MultiTaskBuffer(data_np)
    data = SimpleNamespace(train=buf, test=buf, train_tasks=[0, 2, 5], obs_absmax=None)
    tiny = dict(variant="BOReL-RR", latent_size=3, gru_hidden_size=8, reward_decoder_layers=[6], net_sizes=[16],
                vae_meta_batch=2, vae_episodes_per_task=2, rl_episodes_per_task=2, vae_train_steps=None,
                policy_start_step=0)
    cfg = {"env_name": "point-robot", "borel": tiny,
           "algo_params": {"meta_batch": 2, "batch_size": 8, "mb_replace": False, "sparse_rewards": False}}
    m = BOReLMethod.from_config(cfg, data, make_env("point-robot", n_tasks=6, max_episode_steps=20), "cpu")
    assert m.hp.reward_relabelling and m.relabel is not None
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    stats = m.train_step(m.sample(m.plan_iteration(rng, 1)[0], g), with_stats=True)
    assert all(torch.isfinite(v) for v in stats.values())
    cheetah = make_env("cheetah-vel", n_tasks=4)
    with pytest.raises(ConfigError, match="BOReL-RR relabels rewards with the env's true step"):
        BOReLMethod.from_config({**cfg, "env_name": "cheetah-vel"}, data, cheetah, "cpu")
