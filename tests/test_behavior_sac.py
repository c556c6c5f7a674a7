"""Behaviour-policy SAC with a task dimension (rlkit/behavior, GitHub issue #4).

The central claim: training E tasks as one batched ensemble is *the same* as
training E separate single-task SACs. Checked in float64 against E separate
one-member agents and against a plain nn.Linear / torch.distributions SAC.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import distributions as pyd
from torch import nn

from rlkit.behavior.config import available_presets, compose_sac_config
from rlkit.behavior.ensemble import EnsembleLinear, EnsembleMLP, mlp
from rlkit.behavior.reference_sac import SingleTaskSAC
from rlkit.behavior.replay import EnsembleReplayBuffer
from rlkit.behavior.sac import EnsembleSAC, squash_log_std, squashed_gaussian_sample

F64 = torch.float64
SMALL = dict(hidden_dim=16, hidden_depth=2, batch_size=32)


# ----------------------------------------------------------------- ensemble layers
@pytest.mark.parametrize("init", ["orthogonal", "torch"])
def test_ensemble_linear_equals_separate_linears(init):
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 5, 3, init=init)
    x = torch.randn(4, 7, 5)
    y = layer(x)
    assert y.shape == (4, 7, 3)
    for e in range(4):
        plain = nn.Linear(5, 3)
        plain.load_state_dict(layer.member_state_dict(e))
        torch.testing.assert_close(y[e], plain(x[e]))
    # members are independent draws
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_ensemble_linear_reference_init_is_orthogonal_with_zero_bias():
    torch.manual_seed(0)
    for d_in, d_out in [(6, 3), (3, 6)]:
        layer = EnsembleLinear(3, d_in, d_out)
        for e in range(3):
            w = layer.member_state_dict(e)["weight"]  # plain [out, in]
            small = w @ w.t() if d_out <= d_in else w.t() @ w
            torch.testing.assert_close(small, torch.eye(min(d_in, d_out)), atol=1e-5, rtol=0)
        assert torch.count_nonzero(layer.bias) == 0


def test_ensemble_mlp_member_export_import_roundtrip():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 4, 8, 2, hidden_depth=2)
    x = torch.randn(3, 5, 4)
    y = net(x)
    plains = [net.export_member(e) for e in range(3)]
    assert [type(m).__name__ for m in plains[0]] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    for e in range(3):
        torch.testing.assert_close(y[e], plains[e](x[e]))
    other = EnsembleMLP(3, 4, 8, 2, hidden_depth=2)
    for e in range(3):
        other.import_member(e, plains[e])
    torch.testing.assert_close(other(x), y)
    with pytest.raises(KeyError):
        other.load_member_state_dict(0, {"0.weight": torch.zeros(8, 4)})
    assert isinstance(mlp(4, 8, 2, 0)[0], nn.Linear)


# ------------------------------------------------------------------ actor formulas
def test_log_std_mapping_and_squashed_log_prob_match_torch_distributions():
    raw = torch.tensor([-1e3, 0.0, 1e3])
    torch.testing.assert_close(squash_log_std(raw, -5.0, 2.0), torch.tensor([-5.0, -1.5, 2.0]))
    torch.manual_seed(0)
    mu, log_std, eps = torch.randn(3, 4, 2, dtype=F64), torch.randn(3, 4, 2, dtype=F64), torch.randn(3, 4, 2, dtype=F64)
    action, log_prob = squashed_gaussian_sample(mu, log_std, eps)
    dist = pyd.TransformedDistribution(pyd.Normal(mu, log_std.exp()), [pyd.TanhTransform(cache_size=1)])
    x = mu + log_std.exp() * eps
    a = dist.transforms[0](x)
    torch.testing.assert_close(action, a)
    torch.testing.assert_close(log_prob, dist.log_prob(a).sum(-1, keepdim=True))


# ---------------------------------------------------- batched == separate training
def _random_batch(g, E, B, obs_dim, act_dim):
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)
    return {
        "obs": r(E, B, obs_dim), "action": torch.tanh(r(E, B, act_dim)), "reward": r(E, B, 1),
        "next_obs": r(E, B, obs_dim), "terminated": (torch.rand(E, B, 1, generator=g, dtype=F64) < 0.2).to(F64),
    }


def _members(agent: EnsembleSAC):
    return [agent.member_state_dict(i) for i in range(agent.n_members)]


def _assert_member_equal(a: dict, b: dict, **tol):
    for part in ("actor", "critic", "critic_target"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], **tol, msg=f"{part}.{k}")
    torch.testing.assert_close(a["log_alpha"], b["log_alpha"].reshape(()), **tol)


def test_batched_update_equals_separate_agents_and_one_adam_equals_per_member_adams():
    """E=3 batched = 3 one-member agents (each with its own Adams) = 3 plain reference-style SACs."""
    torch.manual_seed(0)
    E, obs_dim, act_dim, B = 3, 3, 2, 32
    big = EnsembleSAC(E, obs_dim, act_dim, dtype=F64, **SMALL)
    with torch.no_grad():  # distinct temperatures per member, to see they stay separate
        big.log_alpha.copy_(torch.log(torch.tensor([0.1, 0.3, 0.05], dtype=F64)))
    singles, plains = [], []
    for i, m in enumerate(_members(big)):
        one = EnsembleSAC(1, obs_dim, act_dim, dtype=F64, **SMALL)
        one.load_member_state_dict(0, m)
        singles.append(one)
        plain = SingleTaskSAC(obs_dim, act_dim, dtype=F64, **SMALL)
        plain.actor.load_state_dict(m["actor"])
        plain.critic.load_state_dict(m["critic"])
        plain.critic_target.load_state_dict(m["critic_target"])
        with torch.no_grad():
            plain.log_alpha.copy_(m["log_alpha"])
        plains.append(plain)

    g = torch.Generator().manual_seed(1)
    for step in range(10, 15):  # odd and even steps: target updates every 2
        batch = _random_batch(g, E, B, obs_dim, act_dim)
        noise = {k: torch.randn(E, B, act_dim, generator=g, dtype=F64) for k in ("next", "current")}
        stats = big.update(batch, step, noise=noise)
        for i in range(E):
            sub = {k: v[i:i + 1] for k, v in batch.items()}
            subnoise = {k: v[i:i + 1] for k, v in noise.items()}
            singles[i].update(sub, step, noise=subnoise)
            plains[i].update({k: v[0] for k, v in sub.items()}, step, noise={k: v[0] for k, v in subnoise.items()})
    assert stats["train_critic/loss"].shape == (E,)
    with pytest.raises(ValueError, match="noise"):
        big.update(batch, 15, noise={"next": noise["next"][:, :4]})

    tol = dict(rtol=1e-9, atol=1e-11)
    after = _members(big)
    for i in range(E):
        _assert_member_equal(after[i], singles[i].member_state_dict(0), **tol)
        plain_state = {"actor": plains[i].actor.state_dict(), "critic": plains[i].critic.state_dict(),
                       "critic_target": plains[i].critic_target.state_dict(), "log_alpha": plains[i].log_alpha.detach()}
        _assert_member_equal(after[i], plain_state, **tol)
    # the training actually moved the weights and the temperatures
    assert not torch.allclose(big.log_alpha, torch.log(torch.tensor([0.1, 0.3, 0.05], dtype=F64)))


def test_only_true_terminals_stop_bootstrapping():
    torch.manual_seed(0)
    agent = EnsembleSAC(2, 3, 2, **SMALL)
    g = torch.Generator().manual_seed(0)
    batch = {k: v.float() for k, v in _random_batch(g, 2, 16, 3, 2).items()}
    batch["terminated"] = torch.ones(2, 16, 1)
    stats = agent.update(batch, step=1)
    torch.testing.assert_close(stats["train_critic/target_q"], batch["reward"].mean(dim=(1, 2)))
    batch["terminated"] = torch.zeros(2, 16, 1)  # time-limit ends are stored as not terminal
    stats = agent.update(batch, step=2)
    assert not torch.allclose(stats["train_critic/target_q"], batch["reward"].mean(dim=(1, 2)))


def test_act_shapes_deterministic_mean_and_bounds():
    torch.manual_seed(0)
    agent = EnsembleSAC(3, 4, 2, **SMALL)
    obs = torch.randn(3, 4)
    det = agent.act(obs, sample=False)
    assert det.shape == (3, 2)
    for e in range(3):
        mu = agent.actor.export_member(e)(obs[e:e + 1])[:, :2]
        torch.testing.assert_close(det[e], torch.tanh(mu[0]))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1, s2 = agent.act(obs, sample=True, generator=g1), agent.act(obs, sample=True, generator=g2)
    torch.testing.assert_close(s1, s2)
    many = agent.act(torch.randn(3, 6, 4), sample=True)
    assert many.shape == (3, 6, 2) and many.abs().max() <= 1.0


# --------------------------------------------------------------------- checkpoints
def _train(agent, n, seed, start):
    g = torch.Generator().manual_seed(seed)
    for step in range(start, start + n):
        batch = {k: v.float() for k, v in _random_batch(g, agent.n_members, 16, agent.obs_dim, agent.action_dim).items()}
        agent.update(batch, step, generator=g)


def test_state_dict_round_trip_resumes_identically():
    torch.manual_seed(0)
    a = EnsembleSAC(2, 3, 2, **SMALL)
    _train(a, 3, seed=0, start=1)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    _train(a, 3, seed=1, start=4)

    torch.manual_seed(123)  # a differently initialised agent, overwritten by the checkpoint
    b = EnsembleSAC(2, 3, 2, **SMALL)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    assert b.num_updates == 3 and b.last_step == 3
    _train(b, 3, seed=1, start=4)
    for x, y in zip(a.state_dict()["critic"].values(), b.state_dict()["critic"].values()):
        assert torch.equal(x, y)
    for part in ("actor", "critic_target"):
        for x, y in zip(getattr(a, part).parameters(), getattr(b, part).parameters()):
            assert torch.equal(x, y)
    assert torch.equal(a.log_alpha, b.log_alpha) and b.num_updates == 6
    with pytest.raises(ValueError, match="shapes"):
        EnsembleSAC(3, 3, 2, **SMALL).load_state_dict(a.state_dict())


def test_member_state_dict_has_reference_checkpoint_layout():
    agent = EnsembleSAC(2, 3, 2, hidden_dim=8, hidden_depth=2)
    m = agent.member_state_dict(1)
    assert list(m["actor"]) == [f"trunk.{i}.{n}" for i in (0, 2, 4) for n in ("weight", "bias")]
    assert m["actor"]["trunk.0.weight"].shape == (8, 3) and m["actor"]["trunk.4.weight"].shape == (4, 8)
    assert sorted(m["critic"]) == sorted(f"Q{q}.{i}.{n}" for q in (1, 2) for i in (0, 2, 4) for n in ("weight", "bias"))
    other = EnsembleSAC(2, 3, 2, hidden_dim=8, hidden_depth=2)
    other.load_member_state_dict(0, m)
    _assert_member_equal(other.member_state_dict(0), m, rtol=0, atol=0)


# ------------------------------------------------------------------- replay buffer
def test_replay_buffer_shapes_wraparound_isolation_and_resume():
    E, C = 3, 5
    buf = EnsembleReplayBuffer(E, C, obs_dim=2, act_dim=1)
    assert len(buf) == 0
    with pytest.raises(RuntimeError):
        buf.sample(4)
    member = torch.arange(E, dtype=torch.float32)
    for t in range(7):  # wraps: 7 writes into 5 slots
        obs = torch.stack([member, torch.full((E,), float(t))], dim=1)  # obs = (member id, time)
        buf.add(obs, member[:, None] * 10 + t, (member + t).numpy(), obs + 1, torch.zeros(E))
    assert len(buf) == C and buf.full and buf.idx == 2
    # slots hold times 5, 6, 2, 3, 4 after the wrap
    assert buf.data["obs"][0, :, 1].tolist() == [5.0, 6.0, 2.0, 3.0, 4.0]

    batch = buf.sample(64, generator=torch.Generator().manual_seed(0))
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        "obs": (E, 64, 2), "action": (E, 64, 1), "reward": (E, 64, 1), "next_obs": (E, 64, 2), "terminated": (E, 64, 1)}
    # isolation: every sampled row of member e is member e's own, and rows stay consistent
    assert torch.equal(batch["obs"][:, :, 0], member[:, None].expand(E, 64))
    t = batch["obs"][:, :, 1]
    assert t.min() >= 2 and t.max() <= 6
    assert torch.equal(batch["action"][..., 0], member[:, None] * 10 + t)
    assert torch.equal(batch["reward"][..., 0], member[:, None] + t)
    assert torch.equal(batch["next_obs"], batch["obs"] + 1)
    again = buf.sample(64, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], again[k]) for k in batch)

    resumed = EnsembleReplayBuffer(E, C, obs_dim=2, act_dim=1)
    resumed.load_state_dict(copy.deepcopy(buf.state_dict()))
    assert (resumed.idx, resumed.full, len(resumed)) == (buf.idx, buf.full, len(buf))
    after = resumed.sample(64, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], after[k]) for k in batch)

    part = EnsembleReplayBuffer(E, C, obs_dim=2, act_dim=1)
    part.add(torch.zeros(E, 2), torch.zeros(E, 1), torch.zeros(E), torch.zeros(E, 2), torch.ones(E, 1))
    assert len(part) == 1 and part.sample(4)["terminated"].eq(1).all()
    with pytest.raises(ValueError):
        part.add(torch.zeros(E, 3), torch.zeros(E, 1), torch.zeros(E), torch.zeros(E, 2), torch.zeros(E))


# -------------------------------------------------------------------------- hydra
PRESETS = {
    # preset: (num_train_steps, num_seed_steps, eval_frequency, num_eval_episodes, num_eval_sample_episodes, hidden, batch)
    "train": (1_000_000, 50_000, 50_000, 20, 50, 1024, 1024),
    "train_point": (5_000, 2_000, 200, 1, 50, 1024, 1024),
    "train_quick": (1_000, 200, 100, 1, 5, 64, 128),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_compose_presets_have_documented_values(preset):
    cfg = compose_sac_config(preset)
    got = (cfg.num_train_steps, cfg.num_seed_steps, cfg.eval_frequency, cfg.num_eval_episodes,
           cfg.num_eval_sample_episodes, cfg.agent.hidden_dim, cfg.agent.batch_size)
    assert got == PRESETS[preset]
    assert cfg.replay_buffer_capacity == cfg.num_train_steps
    a = cfg.agent
    assert (a.hidden_depth, list(a.log_std_bounds), a.discount, a.init_temperature) == (2, [-5.0, 2.0], 0.99, 0.1)
    assert (a.actor_update_frequency, a.critic_target_update_frequency, a.critic_tau) == (1, 2, 0.005)
    assert list(a.actor_betas) == list(a.critic_betas) == list(a.alpha_betas) == [0.9, 0.999]
    lr = 1e-3 if preset == "train_quick" else 1e-4
    assert a.actor_lr == a.critic_lr == a.alpha_lr == lr


def test_compose_overrides_and_errors():
    assert set(PRESETS) <= set(available_presets())
    cfg = compose_sac_config("train_point.yaml", ["agent.batch_size=256", "num_train_steps=300"])
    assert cfg.agent.batch_size == 256 and cfg.replay_buffer_capacity == 300
    with pytest.raises(ValueError, match="unknown SAC preset 'nope'; available: train, train_point, train_quick"):
        compose_sac_config("nope")
    with pytest.raises(ValueError, match="did you mean 'agent.batch_size'") as err:
        compose_sac_config("train", ["agent.batch_sze=1"])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="bad override"):
        compose_sac_config("train", ["num_train_steps"])
    with pytest.raises(ValueError, match="num_train_steps='many'"):
        compose_sac_config("train", ["num_train_steps=many"])


def test_agent_from_config_uses_config_values():
    cfg = compose_sac_config("train_quick")
    agent = EnsembleSAC.from_config(cfg.agent, n_members=2, obs_dim=2, action_dim=2)
    assert agent.hidden_dim == 64 and agent.batch_size == 128 and agent.discount == 0.99
    assert agent.actor.layers[0].weight.shape == (2, 2, 64) and agent.critic.layers[0].weight.shape == (4, 4, 64)
    torch.testing.assert_close(agent.alpha, torch.full((2,), 0.1))
    assert agent.target_entropy == -2.0 and agent.log_std_bounds == (-5.0, 2.0)
    assert agent.actor_optimizer.param_groups[0]["lr"] == 1e-3
    assert agent.critic_optimizer.param_groups[0]["betas"] == (0.9, 0.999)


# ------------------------------------------------------------------ learning check
def _toy_return(agent, goals, horizon=20):
    """Deterministic return on a 2-D reach-the-goal toy (point-robot rules: start at 0,
    displacement = 0.1 * action, reward -||pos - goal||, 20 steps, no early end)."""
    pos, ret = torch.zeros_like(goals), torch.zeros(len(goals))
    for _ in range(horizon):
        pos = pos + 0.1 * agent.act(pos, sample=False)
        ret += -(pos - goals).norm(dim=1)
    return ret


def test_quick_preset_sac_learns_a_reach_the_goal_toy():
    cfg = compose_sac_config("train_quick")
    torch.manual_seed(0)
    E, horizon, steps = 3, 20, 700
    angles = torch.tensor([0.0, math.pi / 2, math.pi])
    goals = torch.stack([angles.cos(), angles.sin()], dim=1)
    agent = EnsembleSAC.from_config(cfg.agent, n_members=E, obs_dim=2, action_dim=2)
    buf = EnsembleReplayBuffer(E, steps, 2, 2)
    g = torch.Generator().manual_seed(0)
    before = _toy_return(agent, goals)
    pos = torch.zeros(E, 2)
    for step in range(steps):
        if step < cfg.num_seed_steps:
            action = torch.rand(E, 2, generator=g) * 2 - 1
        else:
            action = agent.act(pos, sample=True, generator=g)
            agent.update(buf.sample(cfg.agent.batch_size, generator=g), step, generator=g)
        nxt = pos + 0.1 * action
        buf.add(pos, action, -(nxt - goals).norm(dim=1), nxt, torch.zeros(E))  # time limit: not terminal
        pos = torch.zeros(E, 2) if (step + 1) % horizon == 0 else nxt
    after = _toy_return(agent, goals)
    # random / untrained: about -20 (stays near the origin); optimum about -5.5
    assert before.mean() < -15
    assert after.mean() > -12, after
    assert (after > before + 4).all(), (before, after)
