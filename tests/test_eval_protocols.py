"""Context bookkeeping of the three evaluation protocols on point-robot (docs/method.md §6)."""

import numpy as np
import pytest
import torch

from rlkit.evaluation.protocols import EvalSettings, evaluate, progress_row, run_protocol

DET = np.array([1.0, 0.0], dtype=np.float32)  # deterministic policy action
STOCH = np.array([0.0, 1.0], dtype=np.float32)  # sampled policy action


class ScriptedAgent:
    """z = number of context rows; acts with marker actions so the test can tell who acted."""

    latent_dim = 1
    use_next_obs_in_context = False

    def __init__(self, act_dim=2):
        self.act_dim = act_dim
        self.infer_calls = []  # (indices count, lengths) per call

    def infer_z(self, context, lengths):
        self.infer_calls.append(lengths.clone())
        mask = torch.arange(context.shape[1])[None] < lengths[:, None]
        assert torch.all(context[~mask] == 0)  # padding never holds data
        return lengths.float()[:, None]

    def act(self, obs, z, deterministic):
        a = torch.zeros(self.act_dim)
        a[:2] = torch.as_tensor(DET if deterministic else STOCH)
        return a.expand(obs.shape[0], self.act_dim).clone()


SETTINGS = EvalSettings(max_path_length=20, num_steps_per_eval=100, num_exp_traj_eval=1, num_evals=2)
PARAMS = dict(n_tasks=6, max_episode_steps=20)


def test_online_protocol_context_and_reinference():
    agent = ScriptedAgent()
    res = run_protocol("online", agent, "point-robot", PARAMS, [1, 4], SETTINGS, record_trace=True)
    assert res.task_of.tolist() == [1, 1, 4, 4]
    assert all(len(r) == 5 for r in res.episode_returns)  # 100 eval steps / 20
    np.testing.assert_array_equal(res.context_lengths, 100)  # every transition enters the context
    # re-inferred after each episode once >= 20 eval transitions: after episodes 1..5
    assert [int(c[0]) for c in agent.infer_calls] == [20, 40, 60, 80, 100]
    assert np.all(res.trace["actions"] == DET)  # online: deterministic policy throughout


def test_online_respects_num_exp_traj_eval():
    agent = ScriptedAgent()
    settings = EvalSettings(max_path_length=20, num_steps_per_eval=100, num_exp_traj_eval=3, num_evals=1)
    run_protocol("online", agent, "point-robot", PARAMS, [0], settings)
    assert [int(c[0]) for c in agent.infer_calls] == [60, 80, 100]


def test_offline_protocol_adds_only_offline_context():
    agent = ScriptedAgent()
    drawn = []

    def offline_context(tasks, n):
        drawn.append(tasks.clone())
        rows = torch.zeros(len(tasks), n, 5)
        rows[..., 0] = tasks[:, None].float() + 1.0  # mark the task the rows came from
        return rows

    res = run_protocol("offline", agent, "point-robot", PARAMS, [2, 5], SETTINGS, offline_context=offline_context)
    assert len(drawn) == 5 and all(d.tolist() == [2, 2, 5, 5] for d in drawn)
    np.testing.assert_array_equal(res.context_lengths, 5 * 20)  # 20 offline rows per episode, none of its own
    assert [int(c[0]) for c in agent.infer_calls] == [20, 40, 60, 80, 100]  # before every episode


def test_np_online_protocol_random_then_policy_exploration():
    agent = ScriptedAgent()
    res = run_protocol("np_online", agent, "point-robot", PARAMS, [3], SETTINGS, record_trace=True, seed=7)
    assert all(len(r) == 5 for r in res.episode_returns)
    # 5 rounds x 20 exploration transitions in the context; evaluation episodes add nothing
    np.testing.assert_array_equal(res.context_lengths, 100)
    actions, exploring = res.trace["actions"][:, 0], res.trace["exploring"][:, 0]
    assert len(actions) == 200 and exploring.sum() == 100
    np.testing.assert_array_equal(actions[~exploring], np.tile(DET, (100, 1)))  # eval: deterministic
    rounds = actions[exploring].reshape(5, 20, 2)
    # round k starts after 20k eval transitions; random while 20k + t < 50
    for k in range(5):
        for t in range(20):
            random = 20 * k + t < 50
            is_policy = np.array_equal(rounds[k, t], STOCH)
            assert is_policy != random, (k, t)
    assert [int(c[0]) for c in agent.infer_calls] == [20, 40, 60, 80, 100]


class TinyAgent(torch.nn.Module):
    """A deterministic torch agent: z = masked mean of a linear map of the context."""

    latent_dim = 3
    use_next_obs_in_context = False

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(5, 3)
        self.pi = torch.nn.Linear(5, 2)

    def infer_z(self, context, lengths):
        mask = (torch.arange(context.shape[1])[None] < lengths[:, None]).float()[..., None]
        return (self.enc(context) * mask).sum(1) / lengths.clamp(min=1)[:, None]

    def act(self, obs, z, deterministic):
        return torch.tanh(self.pi(torch.cat([obs, z], -1)))


def test_batched_equals_sequential():
    agent = TinyAgent()

    def offline_context(tasks, n):
        g = torch.Generator().manual_seed(0)
        base = torch.rand(n, 5, generator=g)
        return base[None] + tasks[:, None, None].float()

    together = evaluate(agent, "point-robot", PARAMS, [0, 3, 5], SETTINGS, protocols=("online", "offline"),
                        offline_context=offline_context)
    for t_pos, task in enumerate([0, 3, 5]):
        alone = evaluate(agent, "point-robot", PARAMS, [task], SETTINGS, protocols=("online", "offline"),
                         offline_context=offline_context)
        for p in ("online", "offline"):
            for rep in range(2):
                np.testing.assert_allclose(together[p].episode_returns[2 * t_pos + rep],
                                           alone[p].episode_returns[rep], rtol=1e-5)
    row = progress_row(together)
    assert set(row) >= {"Average_OnlineReturn_all_test_tasks", "Average_OfflineReturn_all_test_tasks"}
    assert row["Average_OnlineReturn_all_test_tasks"] == pytest.approx(together["online"].average_final_return())


def test_early_termination_envs_run_their_own_episodes():
    agent = ScriptedAgent(act_dim=3)
    agent.use_next_obs_in_context = True
    settings = EvalSettings(max_path_length=50, num_steps_per_eval=100, num_exp_traj_eval=1, num_evals=2)
    res = run_protocol("np_online", agent, "hopper-rand-params", dict(n_tasks=3, max_episode_steps=50), [0, 2],
                       settings, seed=0)
    for returns, length in zip(res.episode_returns, res.context_lengths):
        assert len(returns) >= 2 and length >= 50 * len(returns)


def test_unknown_protocol_and_missing_offline_data():
    with pytest.raises(ValueError, match="unknown protocol"):
        run_protocol("bogus", ScriptedAgent(), "point-robot", PARAMS, [0], SETTINGS)
    with pytest.raises(ValueError, match="offline data"):
        run_protocol("offline", ScriptedAgent(), "point-robot", PARAMS, [0], SETTINGS)
