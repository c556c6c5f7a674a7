"""Lockstep stepping of many tasks (rlkit.envs.vector)."""

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from rlkit.envs import make_wrapped_env
from rlkit.envs.vector import make_vector_env


@pytest.mark.parametrize("name", ["point-robot", "point-robot-wind", "sparse-point-robot"])
def test_point_vector_env_matches_single_envs(name):
    params = dict(n_tasks=6, max_episode_steps=20)
    tasks = [0, 3, 5, 3]
    absmax = np.array([1.5, 0.7])
    venv = make_vector_env(name, params, tasks, obs_absmax=absmax)
    singles = [make_wrapped_env(name, obs_absmax=absmax, **params) for _ in tasks]
    for env, t in zip(singles, tasks):
        env.reset_task(t)
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(20):
        actions = rng.uniform(-1.2, 1.2, size=(len(tasks), 2)).astype(np.float32)
        obs, rew, term, trunc, info = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(actions[i])
            if tr:
                np.testing.assert_allclose(info["final_obs"][i], o, rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_allclose(obs[i], o, rtol=1e-6, atol=1e-7)
            assert rew[i] == pytest.approx(r) and term[i] == te and trunc[i] == tr
            if "sparse_reward" in inf:
                assert info["sparse_reward"][i] == pytest.approx(inf["sparse_reward"])
    assert trunc.all()
    np.testing.assert_array_equal(obs, 0.0)  # same-step autoreset put every robot back at the origin


def test_mujoco_vector_env_matches_single_envs():
    params = dict(n_tasks=4, max_episode_steps=5)
    tasks = [1, 3]
    venv = make_vector_env("cheetah-vel", params, tasks, seed=10)
    singles = [make_wrapped_env("cheetah-vel", **params) for _ in tasks]
    for i, (env, t) in enumerate(zip(singles, tasks)):
        env.reset_task(t)
    obs, _ = venv.reset(seed=10)
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=10 + i)
        np.testing.assert_array_equal(obs[i], o)
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.uniform(-1, 1, size=(2, 6)).astype(np.float32)
        obs, rew, term, trunc, info = venv.step(a)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(a[i])
            assert rew[i] == pytest.approx(r)
    assert trunc.all() and "final_obs" in info


def test_disabled_autoreset_with_reset_mask():
    venv = make_vector_env("point-robot", dict(n_tasks=3), [0, 1, 2], autoreset_mode=AutoresetMode.DISABLED)
    venv.reset()
    obs, *_ = venv.step(np.ones((3, 2), dtype=np.float32))
    np.testing.assert_allclose(obs, 0.1)
    obs, _ = venv.reset(options={"reset_mask": np.array([True, False, True])})
    np.testing.assert_allclose(obs, [[0, 0], [0.1, 0.1], [0, 0]])


def test_vector_env_bad_input():
    with pytest.raises(IndexError):
        make_vector_env("point-robot", dict(n_tasks=3), [0, 3])
    venv = make_vector_env("point-robot", dict(n_tasks=3), [0, 1])
    venv.reset()
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        make_vector_env("point-robot", dict(n_tasks=3), [])
