"""rlkit.load: one trained agent on one env in the env's own units (issue 31)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import rlkit
from rlkit.evaluation.protocols import run_protocol
from rlkit.evaluation.run_loader import RunLoadError, load_run

REPO = Path(__file__).resolve().parents[1]


def _online(run, task):
    return run_protocol("online", run.agent, run.env_name, run.env_params, [task], run.settings(num_evals=1),
                        obs_absmax=run.obs_absmax, seed=0, record_trace=True)


def test_replaying_the_online_protocol_gives_its_actions_and_z(tiny_csro_run):
    run = load_run(tiny_csro_run.run_dir)
    task = tiny_csro_run.test_tasks[0]
    res = _online(run, task)
    tr = res.trace
    absmax = 1.0 if run.obs_absmax is None else run.obs_absmax
    policy = rlkit.load(tiny_csro_run.run_dir)
    low, high = policy.action_space.low.astype(np.float64), policy.action_space.high.astype(np.float64)
    policy.reset(new_task=True)
    n_episodes = 0
    for t in range(len(tr["obs"])):
        if not tr["active"][t, 0]:
            break
        obs, next_obs = tr["obs"][t, 0] * absmax, tr["next_obs"][t, 0] * absmax
        action = policy.act(obs)
        expected = np.clip(low + (tr["actions"][t, 0].astype(np.float64) + 1.0) * 0.5 * (high - low), low, high)
        np.testing.assert_allclose(action, expected, atol=1e-5)
        policy.observe(obs, action, float(tr["rewards"][t, 0]), next_obs, done=bool(tr["ended"][t, 0]))
        if tr["ended"][t, 0]:
            n_episodes += 1
            policy.reset()
    assert n_episodes == len(res.episode_returns[0]) >= 2
    z, _ = policy.belief()
    assert np.abs(res.z[0]).sum() > 0  # z moved off the prior, so the comparison means something
    np.testing.assert_allclose(z, res.z[0], atol=1e-5)
    policy.reset(new_task=True)
    np.testing.assert_array_equal(policy.belief()[0], np.zeros_like(z))


def test_driving_an_env_gives_the_online_protocols_returns(tiny_csro_run):
    from rlkit.envs import make_env

    run = load_run(tiny_csro_run.run_dir)
    task = tiny_csro_run.test_tasks[1]
    res = _online(run, task)
    policy = rlkit.load(tiny_csro_run.run_dir)
    env = make_env(run.env_name, **run.env_params)
    mpl = run.settings().max_path_length
    returns = []
    policy.reset(new_task=True)
    for _ in range(len(res.episode_returns[0])):
        obs, _ = env.reset(options={"task": task})
        ret = 0.0
        for step in range(mpl):
            action = policy.act(obs)
            next_obs, reward, term, trunc, _ = env.step(action)
            ret += reward
            done = term or trunc or step == mpl - 1
            policy.observe(obs, action, reward, next_obs, done=done)
            obs = next_obs
            if done:
                break
        returns.append(ret)
        policy.reset()
    np.testing.assert_allclose(returns, res.episode_returns[0], rtol=1e-4, atol=1e-4)


def test_observation_normalizer_and_action_rescaling_written_out(tiny_csro_run):
    policy = rlkit.load(tiny_csro_run.run_dir)
    policy.obs_absmax = np.array([2.0, 0.5])
    low, high = np.array([-3.0, 0.0]), np.array([1.0, 4.0])
    policy._low, policy._high = low, high
    obs = np.array([0.3, -0.2])
    policy.reset(new_task=True)
    got = policy.act(obs)
    seen = torch.as_tensor((obs / np.array([2.0, 0.5])).astype(np.float32)[None])
    z = torch.zeros(1, policy.agent.z_dim)
    a = policy.agent.model.act(seen, z, deterministic=True).numpy()[0].astype(np.float64)
    np.testing.assert_allclose(got, np.clip(low + (a + 1.0) * 0.5 * (high - low), low, high), rtol=1e-6)
    assert np.all(got >= low) and np.all(got <= high)


def test_predict_has_sb3s_shape(tiny_csro_run):
    policy = rlkit.load(tiny_csro_run.run_dir)
    obs = np.zeros(policy.obs_dim)
    action, state = policy.predict(obs, state=None, episode_start=None, deterministic=True)
    assert state is None and action.shape == policy.action_space.shape
    np.testing.assert_array_equal(action, policy.act(obs))


def test_errors_name_the_argument(tiny_csro_run, tmp_path):
    with pytest.raises(RunLoadError, match="does not exist"):
        rlkit.load(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "agent.pth").write_bytes(b"not a snapshot")
    with pytest.raises(RunLoadError):
        rlkit.load(tmp_path / "bad")
    policy = rlkit.load(tiny_csro_run.run_dir)
    with pytest.raises(ValueError, match=r"obs must be one observation of shape \(2,\), got shape \(3,\)"):
        policy.act(np.zeros(3))
    with pytest.raises(ValueError, match=r"action must be one action of shape \(2,\)"):
        policy.observe(np.zeros(2), np.zeros(5), 0.0, np.zeros(2))
    with pytest.raises(ValueError, match=r"next_obs must be one observation"):
        policy.observe(np.zeros(2), np.zeros(2), 0.0, np.zeros((1, 2)))


def test_readme_snippet_runs(tiny_csro_run):
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 5
    code = code.replace('"output/point-robot/CSRO/seed0"', repr(str(tiny_csro_run.run_dir)))
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["action"].shape == (2,)
