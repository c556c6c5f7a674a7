"""Prompt-DT (rlkit.torch.prompt_dt): the loss and the attention against written-out versions, causality, the
prompt's effect, gradient routing, the batches, the agent under every protocol (its prompt only from what the
protocol lets join the context, its return-to-go decremented by the rewards), state round trip, the trainer."""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlkit.config import ConfigError
from rlkit.data.buffer import MultiTaskBuffer
from rlkit.data.synthetic import synthetic_offline_data
from rlkit.torch.networks import build_context
from rlkit.torch.prompt_dt import (PromptDecisionTransformer, PromptDTAgent, PromptDTHyperParams, PromptDTStep,
                                   action_loss, episode_prompt, offline_context, sample_batch)
from tests.helpers import assert_resumes_identically

OBS, ACT = 3, 2


def tiny_hp(**kw):
    base = dict(embed_dim=8, n_layer=2, n_head=2, K=4, prompt_length=3, windows_per_task=5, warmup_steps=3,
                dropout=0.0, scale=10.0, target_return=-2.0)
    base.update(kw)
    return PromptDTHyperParams.from_mapping(base)


@pytest.fixture(scope="module")
def buffer():
    # task 0: episodes of 7, 6 and 2 steps; task 1: 3 and 8 (short episodes exercise the padding)
    return MultiTaskBuffer(synthetic_offline_data([[7, 6, 2], [3, 8]], obs_dim=OBS, act_dim=ACT, seed=3))


def _batch(buffer, hp, seed=0):
    return sample_batch(buffer, torch.tensor([0, 1]), hp, generator=torch.Generator().manual_seed(seed))


def _inputs(b=2, k=4, l=3, seed=0, pad=1, prompt_pad=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    hist = {"obs": r(b, k, OBS), "actions": r(b, k, ACT).tanh(), "rtg": r(b, k, 1),
            "timesteps": torch.arange(k).repeat(b, 1), "mask": torch.arange(k).repeat(b, 1) >= pad}
    prompt = {"obs": r(b, l, OBS), "actions": r(b, l, ACT), "rtg": r(b, l, 1),
              "timesteps": torch.arange(l).repeat(b, 1) + 5, "mask": torch.arange(l).repeat(b, 1) >= prompt_pad}
    return hist, prompt


def _net(hp=None, seed=0):
    torch.manual_seed(seed)
    return PromptDecisionTransformer(OBS, ACT, hp or tiny_hp()).eval()


def _call(net, hist, prompt):
    return net(hist["obs"], hist["actions"], hist["rtg"], hist["timesteps"], hist["mask"], prompt)


# ---------------------------------------------------------------- settings


def test_the_settings_table_gives_the_authors_values_and_refuses_unknowns():
    ch = PromptDTHyperParams.preset("cheetah-vel")
    assert (ch.embed_dim, ch.n_layer, ch.n_head, ch.K, ch.prompt_length, ch.windows_per_task) == (128, 3, 1, 20, 5, 16)
    assert (ch.learning_rate, ch.weight_decay, ch.warmup_steps, ch.dropout, ch.grad_clip) == (1e-4, 1e-4, 10000, 0.1, 0.25)
    assert (ch.scale, ch.target_return) == (500.0, 0.0)
    pr = PromptDTHyperParams.preset("point-robot")
    assert pr.scale == 10.0 and pr.target_return is None  # the best return of the training data
    assert PromptDTHyperParams.preset("point-robot", K=7).K == 7
    with pytest.raises(ConfigError, match="no settings for env 'walker-rand-params'"):
        PromptDTHyperParams.preset("walker-rand-params")
    with pytest.raises(ConfigError, match="unknown Prompt-DT settings kk"):
        PromptDTHyperParams.preset("point-robot", kk=1)
    with pytest.raises(ConfigError, match="not a multiple of n_head"):
        PromptDTHyperParams.preset("point-robot", embed_dim=10, n_head=3)


# ---------------------------------------------------------------- the loss and the attention, written out


def test_the_loss_is_the_written_out_mean_over_real_steps_and_action_dims():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(3, 5, ACT, generator=g), torch.randn(3, 5, ACT, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.4
    total, count = 0.0, 0
    for b in range(3):
        for t in range(5):
            if mask[b, t]:
                for d in range(ACT):
                    total += float(pred[b, t, d] - target[b, t, d]) ** 2
                    count += 1
    assert math.isclose(float(action_loss(pred, target, mask)), total / count, rel_tol=1e-6)
    # the authors' form: the mean over the selected rows
    assert torch.allclose(action_loss(pred, target, mask), torch.mean((pred[mask] - target[mask]) ** 2))


def slow_forward(net, hist, prompt):
    """The transformer written out: tokens one by one, attention query by query over the allowed keys."""
    b, k = hist["obs"].shape[:2]
    outs = []
    for i in range(b):
        toks, real = [], []
        for part, emb, src in (("prompt", net.prompt_embed, prompt), ("hist", net.embed, hist)):
            for t in range(src["obs"].shape[1]):
                te = emb.timestep.weight[int(src["timesteps"][i, t])]
                s = net.norm(src["obs"][i, t])
                for tok in (emb.ret(src["rtg"][i, t]) + te, emb.state(s) + te, emb.action(src["actions"][i, t]) + te):
                    toks.append(net.embed_ln(tok) if part == "hist" else tok)
                    real.append(bool(src["mask"][i, t]))
        x = torch.stack(toks)
        n = len(toks)
        for block in net.blocks:
            h = block.ln1(x)
            q, kk, v = block.attn.qkv(h).split(h.shape[-1], dim=-1)
            heads, d = block.attn.n_head, h.shape[-1] // block.attn.n_head
            rows = []
            for j in range(n):
                keys = [u for u in range(n) if (u <= j and real[u]) or u == j]
                per_head = []
                for hh in range(heads):
                    sl = slice(hh * d, (hh + 1) * d)
                    w = torch.softmax(torch.stack([q[j, sl] @ kk[u, sl] for u in keys]) / math.sqrt(d), 0)
                    per_head.append(sum(w[c] * v[u, sl] for c, u in enumerate(keys)))
                rows.append(torch.cat(per_head))
            x = x + block.attn.proj(torch.stack(rows))
            x = x + block.out(block.act(block.fc(block.ln2(x))))
        x = net.ln_f(x)
        outs.append(net.predict_action(x[n - 3 * k + 1::3]))
    return torch.stack(outs)


def test_the_transformer_equals_the_written_out_attention_over_prompt_then_history():
    net = _net()
    hist, prompt = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(_call(net, hist, prompt), slow_forward(net, hist, prompt), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- causality, the prompt, padding


def test_a_later_token_never_changes_an_earlier_prediction():
    net = _net()
    hist, prompt = _inputs(pad=0)
    with torch.no_grad():
        base = _call(net, hist, prompt)
        for t in range(hist["obs"].shape[1]):
            for key in ("obs", "rtg", "actions"):
                changed = copy.deepcopy(hist)
                changed[key][:, t] += 3.0
                out = _call(net, changed, prompt)
                # R_t and s_t come before the prediction of a_t, a_t after it
                first = t + 1 if key == "actions" else t
                torch.testing.assert_close(out[:, :first], base[:, :first], rtol=0, atol=1e-6)
                if first < out.shape[1]:  # (the last action comes after every prediction: it changes none)
                    assert not torch.allclose(out[:, first:], base[:, first:]), (key, t)


def test_the_prompt_changes_the_prediction_and_a_padded_prompt_is_no_prompt():
    net = _net()
    hist, prompt = _inputs()
    with torch.no_grad():
        with_prompt = _call(net, hist, prompt)
        other = copy.deepcopy(prompt)
        other["obs"][:, -1] += 2.0
        assert not torch.allclose(_call(net, hist, other), with_prompt)
        assert not torch.allclose(_call(net, hist, None), with_prompt)
        # padded prompt steps (and padded history steps) are invisible, whatever they hold
        padded = {k: v.clone() for k, v in prompt.items()}
        padded["mask"][:] = False
        padded["obs"] += 100.0
        torch.testing.assert_close(_call(net, hist, padded)[:, 1:], _call(net, hist, None)[:, 1:])
        junk = copy.deepcopy(hist)
        junk["obs"][:, 0] += 50.0  # step 0 is padding (mask False)
        junk["actions"][:, 0] -= 10.0  # the authors pad actions with -10
        torch.testing.assert_close(_call(net, junk, prompt)[:, 1:], with_prompt[:, 1:])


def test_the_loss_moves_both_embeddings_the_blocks_and_the_head_never_the_data_statistics():
    torch.manual_seed(0)
    net = PromptDecisionTransformer(OBS, ACT, tiny_hp()).train()
    hist, prompt = _inputs()
    for x in (*hist.values(), *prompt.values()):
        if x.is_floating_point():
            x.requires_grad_(True)
    loss = action_loss(_call(net, hist, prompt), hist["actions"].detach(), hist["mask"])
    loss.backward()
    for name, p in net.named_parameters():
        if "timestep" in name:  # only the rows of the timesteps used
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert {n for n, _ in net.named_buffers()} == {"obs_mean", "obs_std"}  # statistics, not parameters
    # padded steps of the history and of the prompt get no gradient
    assert (hist["obs"].grad[:, 0] == 0).all() and (hist["obs"].grad[:, 1:].abs().sum() > 0)
    assert (prompt["obs"].grad[:, 0] == 0).all() and (prompt["obs"].grad[:, 1:].abs().sum() > 0)
    # without a prompt the prompt's embeddings are not moved at all
    net.zero_grad(set_to_none=True)
    action_loss(_call(net, hist, None), hist["actions"].detach(), hist["mask"]).backward()
    assert all(p.grad is None for p in net.prompt_embed.parameters())


# ---------------------------------------------------------------- batches and prompts


def test_batches_are_left_padded_windows_and_prompts_are_episode_tails_of_the_same_task(buffer):
    hp = tiny_hp(K=4, prompt_length=3, windows_per_task=40)
    batch = _batch(buffer, hp)
    h, p = batch.history, batch.prompt
    assert h["obs"].shape == (80, 4, OBS) and p["obs"].shape == (80, 3, OBS)
    task = torch.tensor([0, 1]).repeat_interleave(40)
    for part in (h, p):  # synthetic obs[..., 0] is the task id
        assert (part["obs"][..., 0][part["mask"]] == task[:, None].expand_as(part["mask"])[part["mask"]]).all()
        assert (part["mask"].int().diff(dim=1) >= 0).all()  # left padding: real steps last
        assert (part["obs"][~part["mask"]] == 0).all() and (part["timesteps"][~part["mask"]] == 0).all()
    # the synthetic reward is the step: the return-to-go of step t of an episode of n steps is sum(t..n-1)
    lengths = {0: [7, 6, 2], 1: [3, 8]}
    for part in (h, p):
        ep = part["obs"][..., 1].long()
        for i in range(80):
            for t in np.flatnonzero(part["mask"][i].numpy()):
                n, s = lengths[int(task[i])][int(ep[i, t])], int(part["timesteps"][i, t])
                assert math.isclose(float(part["rtg"][i, t]) * hp.scale, sum(range(s, n)), rel_tol=1e-6)
    # a prompt is the window ending one step before its episode's last step (shorter episodes: from the start)
    ep = p["obs"][..., 1].long()
    for i in range(80):
        real = p["mask"][i]
        n = lengths[int(task[i])][int(ep[i][real][0])]
        assert p["timesteps"][i][real].tolist() == list(range(max(0, n - 4), max(0, n - 4) + min(3, n)))[:int(real.sum())]


def test_the_agents_episode_prompt_is_the_training_prompt_of_the_same_episode(buffer):
    """The evaluation prompt of a whole episode's rows equals the training sampler's prompt of that episode."""
    hp = tiny_hp()
    starts = buffer.episode_tail_starts(torch.tensor([0, 1]), 6, hp.prompt_length, skip=1,
                                        generator=torch.Generator().manual_seed(4))
    train = buffer.segments_at(starts, hp.prompt_length, padding="left")
    whole = buffer.segments_at(buffer.episode_starts(torch.tensor([0, 1]), 6, torch.Generator().manual_seed(4)),
                               buffer.max_episode_length, padding="right")
    rows = build_context(whole["obs"], whole["actions"], whole["rewards"]).reshape(12, buffer.max_episode_length, -1)
    mine = episode_prompt(rows, whole["mask"].reshape(12, -1).sum(1), OBS, ACT, hp.prompt_length, hp.scale)
    flat = lambda x: x.reshape(12, *x.shape[2:])  # noqa: E731
    torch.testing.assert_close(mine["obs"], flat(train["obs"]))
    torch.testing.assert_close(mine["actions"], flat(train["actions"]))
    torch.testing.assert_close(mine["rtg"], flat(train["returns_to_go"]) / hp.scale)
    assert torch.equal(mine["timesteps"], flat(train["timesteps"])) and torch.equal(mine["mask"], flat(train["mask"]))
    empty = episode_prompt(rows[:2], torch.zeros(2, dtype=torch.long), OBS, ACT, 3, 1.0)
    assert not empty["mask"].any() and (empty["obs"] == 0).all()


def test_offline_context_is_an_episodes_last_steps(buffer):
    rows = offline_context(buffer, torch.Generator().manual_seed(0))(torch.tensor([0, 1, 0]), 4)
    assert rows.shape == (3, 4, OBS + ACT + 1)
    r = rows[..., OBS + ACT]
    # rewards count the steps: the block ends at its episode's last step (the 2-step episode: left-padded)
    ends = {0: {6, 5, 1}, 1: {2, 7}}
    for i, t in enumerate([0, 1, 0]):
        assert int(r[i, -1]) in ends[t]


# ---------------------------------------------------------------- the agent under the protocols


class _Recording(PromptDTAgent):
    """Records, at every act, the prompt and the (return-to-go, timestep) of the current step; and the offline
    blocks it is given."""

    def reset(self, tasks, rollout):
        super().reset(tasks, rollout)
        self.acts, self.offline = [], [[] for _ in range(len(tasks))]

    def observe(self, transitions):
        if transitions.offline:
            rows = transitions.rows(np.ones(len(transitions.envs), dtype=bool))
            for i, m in enumerate(transitions.envs):
                self.offline[m].append(rows[i].clone())
        super().observe(transitions)

    def act(self, obs, deterministic):
        st = self.state
        self.acts.append(({k: v.clone() for k, v in st["prompt"].items()}, st["rtg"].clone(), st["t"].clone(),
                          {k: v.clone() for k, v in self._history(obs).items()}))
        return super().act(obs, deterministic)


@pytest.mark.parametrize("protocol", ["offline", "online", "np_online"])
def test_the_agent_prompts_only_from_what_the_protocol_lets_join_and_decrements_its_target(protocol):
    from rlkit.evaluation.protocols import EvalSettings, run_protocol, trace_episodes
    torch.manual_seed(0)
    hp = tiny_hp(K=3, prompt_length=4, target_return=-3.0)
    agent = _Recording(2, 2, hp)
    data = synthetic_offline_data([[20, 20], [20]], obs_dim=2, act_dim=2, task_ids=[1, 4], seed=0)
    source = offline_context(MultiTaskBuffer(data), torch.Generator().manual_seed(1))
    settings = EvalSettings(max_path_length=20, num_steps_per_eval=60, num_exp_traj_eval=1, num_evals=1)
    res = run_protocol(protocol, agent, "point-robot", dict(n_tasks=6, max_episode_steps=20), [1, 4], settings,
                       offline_context=source, seed=3, record_trace=True)
    tr = res.trace
    assert len(agent.acts) == len(tr["obs"]) and all(len(r) == 3 for r in res.episode_returns)
    for m in range(2):
        episodes = trace_episodes(tr, m)
        joined = None  # the rows of the last episode whose transitions joined the context
        offline_blocks = iter(agent.offline[m])
        for e in episodes:
            steps = e["steps"]
            rows = build_context(torch.as_tensor(tr["obs"][steps, m]), torch.as_tensor(tr["actions"][steps, m]),
                                 torch.as_tensor(tr["rewards"][steps, m], dtype=torch.float32))
            if protocol == "offline":
                block = next(offline_blocks)  # the task's offline data, drawn before this evaluation episode
                src, n = block, len(block)
            else:
                src, n = (joined, len(joined)) if joined is not None else (rows[:1] * 0, 0)
            want = episode_prompt(src[None].float(), torch.tensor([n]), 2, 2, hp.prompt_length, hp.scale)
            for i, s in enumerate(steps):
                prompt, rtg, t, hist = agent.acts[s]
                # the history: this episode's last K steps, the current one's action slot zero
                seen = steps[max(0, i - hp.K + 1):i + 1]
                real = hist["mask"][m]
                assert int(real.sum()) == len(seen) and bool(real[-len(seen):].all())
                torch.testing.assert_close(hist["obs"][m][-len(seen):], torch.as_tensor(tr["obs"][seen, m]))
                torch.testing.assert_close(hist["actions"][m][-len(seen):-1], torch.as_tensor(tr["actions"][seen[:-1], m]))
                assert (hist["actions"][m][-1] == 0).all() and hist["timesteps"][m][-len(seen):].tolist() == \
                    list(range(i - len(seen) + 1, i + 1))
                for key, value in want.items():
                    torch.testing.assert_close(prompt[key][m], value[0].to(prompt[key].dtype), msg=f"{key} {e} {i}")
                expect = (hp.target_return - float(tr["rewards"][steps[:i], m].sum())) / hp.scale
                assert math.isclose(float(rtg[m]), expect, rel_tol=1e-5, abs_tol=1e-5)
                assert int(t[m]) == i
            joins = {"offline": False, "online": not e["exploring"], "np_online": e["exploring"]}[protocol]
            if joins:
                joined = rows
        if protocol == "online":  # the first episode has nothing to prompt from; the others their predecessor
            assert not agent.acts[episodes[0]["steps"][0]][0]["mask"][m].any()
            assert agent.acts[episodes[1]["steps"][0]][0]["mask"][m].all()
        if protocol == "np_online":
            assert sum(e["exploring"] for e in episodes) == 3


def test_act_changes_nothing_and_a_new_episode_starts_from_the_target():
    from rlkit.core.eval_agent import Transitions
    hp = tiny_hp(K=3)
    torch.manual_seed(0)
    agent = PromptDTAgent(OBS, ACT, hp)
    agent.reset(torch.tensor([0, 1]), SimpleNamespace(settings=SimpleNamespace(max_path_length=5)))
    obs = torch.randn(2, OBS)
    a1, a2 = agent.act(obs, True), agent.act(obs, False)
    assert torch.equal(a1, a2) and a1.shape == (2, ACT)
    row = build_context(obs, a1, torch.tensor([[1.0], [2.0]]))[:, None]
    agent.observe(Transitions(np.array([0, 1]), np.array([True, False]), np.zeros(2, bool), False,
                              lambda pos: row[torch.as_tensor(pos)]))
    # both steps count in the history and the return-to-go; only the first joins the context
    torch.testing.assert_close(agent.state["rtg"], (torch.tensor([-2.0, -2.0]) - torch.tensor([1.0, 2.0])) / hp.scale)
    assert agent.state["past"]["mask"][:, -1].all() and agent.state["t"].tolist() == [1, 1]
    assert agent.state["n"].tolist() == [1, 0]
    agent.end_episodes(np.array([True, True]), np.array([True, True]), np.array([1, 1]))
    assert agent.state["prompt"]["mask"][0].sum() == 1 and not agent.state["prompt"]["mask"][1].any()
    torch.testing.assert_close(agent.state["rtg"], torch.full((2,), -2.0 / hp.scale))
    assert agent.state["t"].tolist() == [0, 0] and not agent.state["past"]["mask"].any()


# ---------------------------------------------------------------- the step


def test_state_dict_round_trip_gives_the_identical_next_update(buffer):
    hp = tiny_hp(dropout=0.1)  # dropout draws from torch's global RNG, which a run's snapshot restores
    assert_resumes_identically(lambda: PromptDTStep(OBS, ACT, hp),
                               [_batch(buffer, hp, seed=s) for s in range(2)], _batch(buffer, hp, seed=7))


def test_the_warmup_clipping_and_a_tiny_training_that_learns(buffer):
    torch.manual_seed(0)
    hp = tiny_hp(warmup_steps=4, learning_rate=3e-3, embed_dim=16)
    step = PromptDTStep(OBS, ACT, hp)
    assert [step.learning_rate()] == [3e-3 / 4]
    g = torch.Generator().manual_seed(5)
    losses = []
    for i in range(80):
        losses.append(float(step.train_step(sample_batch(buffer, torch.tensor([0, 1]), hp, g), True)["Action Loss"]))
        if i < 4:
            assert math.isclose(step.optimizer.param_groups[0]["lr"], 3e-3 * (i + 1) / 4)
    assert step.optimizer.param_groups[0]["lr"] == 3e-3
    # synthetic actions[..., 0] is the episode number, seen in obs[..., 1]: learnable from the state
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_the_trainer_drives_a_direct_training_loop_and_reloads_the_agent(buffer):
    from rlkit.trainers.prompt_dt import PromptDTMethod
    tiny = dict(embed_dim=8, n_layer=1, K=3, prompt_length=2, windows_per_task=3, warmup_steps=2)
    cfg = {"env_name": "cheetah-vel", "prompt_dt": tiny,
           "algo_params": {"meta_batch": 3, "batch_size": 8, "mb_replace": True, "sparse_rewards": False}}
    env = SimpleNamespace(observation_space=SimpleNamespace(shape=(OBS,)), action_space=SimpleNamespace(shape=(ACT,)))
    data = SimpleNamespace(train=buffer, test=buffer, train_tasks=[0, 1], obs_absmax=None)
    torch.manual_seed(0)
    m = PromptDTMethod.from_config(cfg, data, env, torch.device("cpu"))
    assert (m.hp.scale, m.hp.target_return, m.hp.K) == (500.0, 0.0, 3)  # the env's block, then the overrides
    net = m.eval_agent().net
    mean, std = buffer.obs_moments()
    torch.testing.assert_close(net.obs_mean, mean)
    torch.testing.assert_close(net.obs_std, std + 1e-6)
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for _ in range(2):
        plan = m.plan_iteration(rng, 2)
        assert plan[0].shape == (3,)
        for i, p in enumerate(plan):
            stats = m.train_step(m.sample(p, g), with_stats=i == 1)
    assert m.steps_done == 4 and set(stats) == set(m.progress_columns())
    agent = PromptDTMethod.load_agent(cfg, OBS, ACT, m.state_dict())
    assert agent is not m.eval_agent() and isinstance(agent, PromptDTAgent)
    for k, v in m.eval_agent().state_dict().items():
        assert torch.equal(v, agent.state_dict()[k]), k
    # target_return null: the best episode return of the training data (rewards count steps: 8 steps, 28)
    best = PromptDTMethod.from_config({**cfg, "env_name": "point-robot"}, data, env, "cpu")
    assert float(best.eval_agent().target_return) == 28.0 == float(buffer.episode_returns().max())
    assert not PromptDTMethod.task_embedding
    with pytest.raises(ConfigError, match="sparse-reward run"):
        PromptDTMethod.from_config({**cfg, "algo_params": {**cfg["algo_params"], "sparse_rewards": True}}, data, env,
                                   "cpu")
