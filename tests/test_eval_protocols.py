"""Context bookkeeping of the three evaluation protocols on point-robot (docs/method.md §6)."""

import numpy as np
import pytest
import torch

from rlkit.config import load_defaults
from rlkit.envs import make_env
from rlkit.evaluation.protocols import EvalSettings, NonPrior, Protocol, evaluate, progress_row, run_protocol
from rlkit.torch.csro import CSROAgent, CSROHyperParams
from tests.sequential_protocols import LockstepDraws, OfflineSource, run_sequential

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


def test_a_fourth_protocol_is_one_class_and_one_registry_line():
    """offline_other_task (a context-shift stress test): the offline protocol fed the *next* test task's
    behaviour data. It is in the registry, so --protocols and titles know it, and off in training, so
    progress.csv, plans and figures (PROTOCOLS) are what they were."""
    from rlkit.evaluation.protocols import ALL_PROTOCOLS, PROTOCOL_TITLES, PROTOCOLS
    from rlkit.evaluate import parse_protocols

    assert PROTOCOLS == ("online", "offline", "np_online") and "offline_other_task" in ALL_PROTOCOLS
    assert PROTOCOL_TITLES["offline_other_task"] == "offline context of another task"
    assert parse_protocols("offline,offline_other_task") == ["offline", "offline_other_task"]
    agent, drawn = ScriptedAgent(), []

    def offline_context(tasks, n):
        drawn.append(tasks.clone())
        return torch.zeros(len(tasks), n, 5)

    res = run_protocol("offline_other_task", agent, "point-robot", PARAMS, [2, 5, 4], SETTINGS,
                       offline_context=offline_context)
    assert len(drawn) == 5 and all(d.tolist() == [5, 5, 4, 4, 2, 2] for d in drawn)  # each task gets the next's
    np.testing.assert_array_equal(res.context_lengths, 5 * 20)
    with pytest.raises(ValueError, match="at least two tasks"):
        run_protocol("offline_other_task", agent, "point-robot", PARAMS, [2], SETTINGS, offline_context=offline_context)


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


def test_np_uniform_explores_uniformly_throughout_with_np_onlines_draws():
    """np_uniform (a diagnostic, not run in training): np_online's rounds and re-inference, but no exploration
    action comes from the policy; its first half draws the same uniforms as np_online's with the same seed."""
    from rlkit.evaluation.protocols import PROTOCOLS

    assert "np_uniform" not in PROTOCOLS
    got = {}
    for name in ("np_online", "np_uniform"):
        agent = ScriptedAgent()
        res = run_protocol(name, agent, "point-robot", PARAMS, [3], SETTINGS, record_trace=True, seed=7)
        np.testing.assert_array_equal(res.context_lengths, 100)
        assert [int(c[0]) for c in agent.infer_calls] == [20, 40, 60, 80, 100]
        actions, exploring = res.trace["actions"][:, 0], res.trace["exploring"][:, 0]
        np.testing.assert_array_equal(actions[~exploring], np.tile(DET, (100, 1)))
        got[name] = actions[exploring].reshape(100, 2)
    uniform = got["np_uniform"]
    assert not any(np.array_equal(a, STOCH) for a in uniform)  # never the policy's sampled action
    assert np.all(np.abs(uniform) <= 1.0) and len(np.unique(uniform[:, 0])) == 100
    np.testing.assert_array_equal(uniform[:50], got["np_online"][:50])  # the shared uniform half
    assert all(np.array_equal(a, STOCH) for a in got["np_online"][50:])


def _csro_agent(obs_dim, act_dim, use_next_obs):
    """A small untrained CSRO agent whose actions depend visibly on s and z."""
    torch.manual_seed(0)
    agent = CSROAgent(obs_dim, act_dim, CSROHyperParams(latent_size=3, net_size=32,
                                                        use_next_obs_in_context=use_next_obs)).eval()
    with torch.no_grad():
        agent.policy.last_fc.weight.uniform_(-1.0, 1.0)  # the default ±1e-3 init would act ~0 whatever z is
    return agent


# (env, env_params, sparse_rewards, use_next_obs_in_context, tolerance): fixed horizons, see LockstepDraws.
# The batched and one-row forwards sum floats in different orders (~1e-7); MuJoCo's contacts amplify
# that over an episode to ~1e-4, the point robot does not.
SEQUENTIAL_CASES = {
    "point-robot": ("point-robot", dict(n_tasks=6, max_episode_steps=10), False, False, 1e-5),
    "sparse-point-robot": ("sparse-point-robot", dict(n_tasks=6, max_episode_steps=10), True, False, 1e-5),
    "cheetah-vel": ("cheetah-vel", dict(n_tasks=6, max_episode_steps=10), False, True, 1e-3),
}


@pytest.mark.parametrize("case,protocol", [(c, p) for c in ("point-robot", "cheetah-vel")
                                           for p in ("online", "offline", "np_online")]
                         + [("sparse-point-robot", "np_online")])
def test_batched_equals_sequential_reference(case, protocol):
    """The batched runner over 3 tasks x 2 repeats = tests/sequential_protocols.py run per (task, repeat).

    Same returns, same actions step by step, same context sizes and final z. Budget 50, half 25,
    threshold 20 with 10-step episodes: np_online explores randomly in rounds 1-2, half-randomly in
    round 3 and with sampled policy actions after; z is first re-inferred after the 2nd episode.
    The reference gets the batched runner's random numbers through LockstepDraws (np_online's
    uniform actions from default_rng(seed), policy noise from torch's RNG seeded here) and the same
    offline draws through OfflineSource; resets are seeded as the vector env seeds them (seed + m).
    """
    env_name, params, sparse, use_next_obs, tol = SEQUENTIAL_CASES[case]
    settings = EvalSettings(max_path_length=10, num_steps_per_eval=50, num_exp_traj_eval=2, num_evals=2,
                            sparse_rewards=sparse)
    tasks, seed, torch_seed = [0, 3, 5], 11, 5
    env = make_env(env_name, **params)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = _csro_agent(obs_dim, act_dim, use_next_obs)
    offline = OfflineSource(env_name, params, tasks, use_next_obs) if protocol == "offline" else None

    torch.manual_seed(torch_seed)
    res = run_protocol(protocol, agent, env_name, params, tasks, settings, seed=seed, record_trace=True,
                       offline_context=offline.batched() if offline else None)
    draws = LockstepDraws(len(res.task_of), act_dim, seed, torch_seed)
    for m, task in enumerate(res.task_of.tolist()):
        rep = m % settings.num_evals
        ref = run_sequential(protocol, agent, env_name, params, task, settings, reset_seed=seed + m,
                             draws=lambda j, m=m: draws.draw(m, j),
                             offline_rows=(lambda k, t=task, r=rep: offline.rows(t, r, k, 10)) if offline else None)
        active = res.trace["active"][:, m]
        np.testing.assert_allclose(res.trace["actions"][active, m], np.stack(ref.actions), rtol=tol, atol=tol)
        np.testing.assert_allclose(res.episode_returns[m], ref.returns, rtol=tol, atol=tol)
        assert res.context_lengths[m] == len(ref.context)
        np.testing.assert_allclose(res.z[m], ref.z, rtol=tol, atol=tol)
    assert len(ref.returns) == 5 and np.abs(ref.z).max() > 1e-3  # z was re-inferred
    if not sparse:  # (sparse rewards are all 0 this far from the goals)
        assert not np.allclose(res.z[0], res.z[2])  # z differs between tasks


def test_progress_row_names_and_averages():
    results = evaluate(ScriptedAgent(), "point-robot", PARAMS, [0, 3], SETTINGS, protocols=("online", "np_online"))
    row = progress_row(results)
    assert set(row) >= {"Average_OnlineReturn_all_test_tasks", "Average_NpOnlineReturn_all_test_tasks",
                        "eval/np_online_return_episode_5"}
    assert row["Average_OnlineReturn_all_test_tasks"] == pytest.approx(results["online"].average_final_return())
    assert row["eval/online_return_episode_1"] == pytest.approx(results["online"].return_curve()[0])


def test_early_termination_envs_run_their_own_episodes():
    agent = ScriptedAgent(act_dim=3)
    agent.use_next_obs_in_context = True
    settings = EvalSettings(max_path_length=50, num_steps_per_eval=100, num_exp_traj_eval=1, num_evals=2)
    res = run_protocol("np_online", agent, "hopper-rand-params", dict(n_tasks=3, max_episode_steps=50), [0, 2],
                       settings, seed=0)
    for returns, length in zip(res.episode_returns, res.context_lengths):
        assert len(returns) >= 2 and length >= 50 * len(returns)


def test_a_new_protocol_is_one_small_class():
    class RandomExploration(NonPrior):
        name = "random_exploration"

        def exploration_actions(self, rng, sampled, steps, settings):
            return rng.uniform(-1.0, 1.0, size=sampled.shape)

    agent = ScriptedAgent()
    res = run_protocol(RandomExploration(), agent, "point-robot", PARAMS, [3], SETTINGS, record_trace=True)
    assert res.protocol == "random_exploration"
    np.testing.assert_array_equal(res.context_lengths, 100)
    actions, exploring = res.trace["actions"][:, 0], res.trace["exploring"][:, 0]
    assert not (actions[exploring] == STOCH).all(axis=1).any()  # never the policy's sampled action
    np.testing.assert_array_equal(actions[~exploring], np.tile(DET, (100, 1)))
    with pytest.raises(TypeError, match="unknown context sources"):
        type("Bad", (Protocol,), {"name": "bad", "context": frozenset({"everything"}), "reinfer": "after_evaluation"})


def test_unknown_protocol_and_missing_offline_data():
    with pytest.raises(ValueError, match="unknown protocol"):
        run_protocol("bogus", ScriptedAgent(), "point-robot", PARAMS, [0], SETTINGS)
    with pytest.raises(ValueError, match="offline data"):
        run_protocol("offline", ScriptedAgent(), "point-robot", PARAMS, [0], SETTINGS)


def test_eval_settings_defaults_are_the_configs_defaults(monkeypatch):
    from rlkit.evaluation import protocols

    algo = load_defaults()[0]["algo_params"]
    s = EvalSettings()
    assert (s.max_path_length, s.num_steps_per_eval, s.num_exp_traj_eval, s.num_evals, s.sparse_rewards) == (
        algo["max_path_length"], algo["num_steps_per_eval"], algo["num_exp_traj_eval"], algo["num_evals"],
        algo["sparse_rewards"])
    # read from rlkit/defaults.py when an instance is made, not copied into this module
    monkeypatch.setattr(protocols, "_algo_defaults", lambda: {**algo, "num_evals": 7})
    assert EvalSettings(max_path_length=3).num_evals == 7


def test_a_float64_agent_is_evaluated_in_float64():
    """Observations and contexts take the agent's dtype, not float32: a float64 run's snapshot is
    evaluated as it was trained, whatever this process's default dtype (rlkit.core.precision)."""
    agent = _csro_agent(2, 2, False).double()
    settings = EvalSettings(max_path_length=10, num_steps_per_eval=20, num_exp_traj_eval=1, num_evals=1)
    offline = OfflineSource("point-robot", dict(n_tasks=6, max_episode_steps=10), [0, 3], False)
    assert torch.get_default_dtype() == torch.float32
    for protocol in ("online", "offline", "np_online"):
        res = run_protocol(protocol, agent, "point-robot", dict(n_tasks=6, max_episode_steps=10), [0, 3], settings,
                           seed=1, offline_context=offline.batched() if protocol == "offline" else None)
        assert res.z.dtype == np.float64 and np.isfinite(res.z).all() and np.abs(res.z).max() > 0
