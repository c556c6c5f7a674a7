"""Task-distribution envs: rewards, terminations, task lists, dynamics, bad input (docs/method.md §2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from rlkit.envs import ENVS, UnknownEnvError, make_env, make_wrapped_env
from rlkit.envs.base import TaskIndexError
from rlkit.envs.mujoco_base import asset_path

REPO = Path(__file__).resolve().parents[1]

ALL_ENVS = sorted(ENVS)


def _n_tasks(name):
    return 2 if name == "cheetah-dir" else 5


# ---------------------------------------------------------------- task lists
def test_point_robot_goals_on_half_circle():
    env = make_env("point-robot", n_tasks=40)
    for i in range(40):
        angle = np.pi * i / 39
        np.testing.assert_allclose(env.task_params(i)["goal"], [np.cos(angle), np.sin(angle)], atol=1e-12)
    assert list(env.get_all_task_idx()) == list(range(40))


def test_point_robot_randomized_goals_are_a_seeded_shuffle():
    a = make_env("point-robot", n_tasks=40, randomize_tasks=True)
    b = make_env("point-robot", n_tasks=40, randomize_tasks=True)
    plain = make_env("point-robot", n_tasks=40)
    ga = np.stack([a.task_params(i)["goal"] for i in range(40)])
    gp = np.stack([plain.task_params(i)["goal"] for i in range(40)])
    np.testing.assert_array_equal(ga, np.stack([b.task_params(i)["goal"] for i in range(40)]))
    assert not np.allclose(ga, gp)
    np.testing.assert_allclose(np.sort(ga[:, 0]), np.sort(gp[:, 0]))  # same set, new order
    expected = gp.copy()
    np.random.RandomState(1337).shuffle(expected)
    np.testing.assert_array_equal(ga, expected)


def test_cheetah_vel_targets():
    env = make_env("cheetah-vel", n_tasks=40)
    np.testing.assert_allclose([env.task_params(i)["velocity"] for i in range(40)], np.linspace(1, 3, 40))
    rnd = make_env("cheetah-vel", n_tasks=40, randomize_tasks=True)
    v = np.array([rnd.task_params(i)["velocity"] for i in range(40)])
    np.testing.assert_allclose(v, np.random.RandomState(1337).uniform(1, 3, 40))


def test_ant_goal_targets():
    env = make_env("ant-goal", n_tasks=40)
    for i in range(40):
        a = 2 * np.pi * i / 40
        np.testing.assert_allclose(env.task_params(i)["goal"], [2 * np.cos(a), 2 * np.sin(a)], atol=1e-12)
    rnd = make_env("ant-goal", n_tasks=6, randomize_tasks=True)
    angles = np.random.RandomState(1334).random_sample(6) * 2 * np.pi
    np.testing.assert_allclose(rnd.task_params(3)["goal"], [2 * np.cos(angles[3]), 2 * np.sin(angles[3])])


def test_humanoid_and_ant_dir_directions():
    for name in ("humanoid-dir", "ant-dir"):
        env = make_env(name, n_tasks=8)
        np.testing.assert_allclose(
            [env.task_params(i)["direction"] for i in range(8)], np.linspace(0, 2 * np.pi, 9)[:-1]
        )


def test_cheetah_dir_has_two_tasks():
    env = make_env("cheetah-dir", n_tasks=2)
    assert [env.task_params(i)["direction"] for i in range(2)] == [-1.0, 1.0]
    with pytest.raises(ValueError, match="exactly 2 tasks"):
        make_env("cheetah-dir", n_tasks=4)


def test_wind_tasks():
    env = make_env("point-robot-wind", n_tasks=10)
    winds = np.stack([env.task_params(i)["wind"] for i in range(10)])
    rng = np.random.RandomState(1337)
    np.testing.assert_allclose(winds, np.stack([rng.uniform(-0.05, 0.05, 10), rng.uniform(-0.05, 0.05, 10)], 1))
    assert all(np.array_equal(env.task_params(i)["goal"], [1.0, 0.0]) for i in range(10))


# ---------------------------------------------------------------- rewards and terminations
def test_point_robot_reward_and_horizon():
    env = make_env("point-robot", n_tasks=3, max_episode_steps=20)
    env.reset_task(2)
    goal = env.task_params()["goal"]
    pos = np.zeros(2)
    for t in range(20):
        a = np.array([0.05, -0.03]) * (t % 3 - 1)
        obs, r, term, trunc, _ = env.step(a)
        pos = pos + a
        np.testing.assert_allclose(obs, pos)
        assert r == pytest.approx(-np.linalg.norm(pos - goal))
        assert not term
        assert trunc == (t == 19)


def test_sparse_point_reward_only_within_radius():
    env = make_env("sparse-point-robot", n_tasks=2, goal_radius=0.2)
    env.reset_task(0)  # goal (1, 0)
    _, r, _, _, info = env.step(np.array([0.1, 0.0]))
    assert r == pytest.approx(-0.9) and info["sparse_reward"] == 0.0
    env.unwrapped._state = np.array([0.85, 0.0])
    _, r, _, _, info = env.step(np.array([0.0, 0.0]))
    assert r == pytest.approx(-0.15) and info["sparse_reward"] == pytest.approx(0.85)


def test_wind_drifts_the_robot():
    env = make_env("point-robot-wind", n_tasks=4)
    env.reset_task(1)
    wind = env.task_params()["wind"]
    obs, r, *_ = env.step(np.zeros(2))
    np.testing.assert_allclose(obs, wind)
    assert r == pytest.approx(-np.linalg.norm(wind - [1.0, 0.0]))


def _step_and_record(env, action):
    u = env.unwrapped
    before = dict(qpos=u.data.qpos.copy(), torso=u.body_xpos("torso") if "torso" in _bodies(u) else None)
    obs, r, term, trunc, info = env.step(action)
    return before, obs, r, term


def _bodies(u):
    return [u.model.body(i).name for i in range(u.model.nbody)]


def test_cheetah_vel_reward_formula():
    env = make_env("cheetah-vel", n_tasks=5)
    env.reset_task(3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 6)
        x0 = env.data.qpos[0]
        obs, r, term, _, _ = env.step(a)
        v = (env.data.qpos[0] - x0) / (env.model.opt.timestep * 5)
        assert r == pytest.approx(-abs(v - env.task_params()["velocity"]) - 0.05 * np.sum(a**2))
        np.testing.assert_allclose(obs, np.concatenate([env.data.qpos[1:], env.data.qvel, env.data.body("torso").xpos]))
        assert not term


def test_cheetah_dir_reward_formula():
    env = make_env("cheetah-dir", n_tasks=2)
    env.reset_task(0)
    a = np.full(6, 0.3)
    x0 = env.data.qpos[0]
    _, r, *_ = env.step(a)
    v = (env.data.qpos[0] - x0) / env.dt
    assert r == pytest.approx(-v - 0.05 * np.sum(a**2))


def test_ant_goal_reward_formula():
    env = make_env("ant-goal", n_tasks=4)
    env.reset_task(1)
    a = np.linspace(-1, 1, 8)
    obs, r, term, _, _ = env.step(a)
    xy = env.data.body("torso").xpos[:2]
    contact = 0.5e-3 * np.sum(np.clip(env.data.cfrc_ext, -1, 1) ** 2)
    expected = -np.abs(xy - env.task_params()["goal"]).sum() - 0.1 * np.sum(a**2) - contact
    assert r == pytest.approx(expected)
    assert obs.shape == (29,) and not term
    np.testing.assert_allclose(obs[:2], env.data.qpos[:2])  # x, y are observed


def test_humanoid_reward_formula_and_fall():
    env = make_env("humanoid-dir", n_tasks=4)
    env.reset_task(1)  # direction pi/2
    mass = env.model.body_mass[:, None]
    com = lambda: (mass * env.data.xipos).sum(0) / mass.sum()  # noqa: E731
    c0 = com()[:2]
    a = np.full(17, 0.1)
    obs, r, term, _, _ = env.step(a)
    d = np.pi / 2
    lin = 0.25 * np.dot([np.cos(d), np.sin(d)], com()[:2] - c0) / env.model.opt.timestep
    expected = lin - 0.1 * np.sum(env.data.ctrl**2) - min(0.5e-6 * np.sum(env.data.cfrc_ext**2), 10) + 5
    assert r == pytest.approx(expected)
    assert obs.shape == (376,)
    qpos = env.data.qpos.copy()
    qpos[2] = 0.5  # torso on the floor
    env.set_state(qpos, env.data.qvel.copy())
    *_, term, _, _ = env.step(np.zeros(17))
    assert term


def test_hopper_reward_and_fall():
    env = make_env("hopper-rand-params", n_tasks=3)
    env.reset_task(2)
    a = np.array([0.5, -0.2, 0.1])
    x0 = env.data.qpos[0]
    obs, r, term, trunc, _ = env.step(a)
    assert env.dt == pytest.approx(0.016)
    assert r == pytest.approx((env.data.qpos[0] - x0) / env.dt + 1.0 - 1e-3 * np.sum(a**2))
    np.testing.assert_allclose(obs, np.concatenate([env.data.qpos[1:], np.clip(env.data.qvel, -10, 10)]))
    assert not term
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    qpos[1] = 0.5  # height below 0.7: fallen
    env.set_state(qpos, qvel)
    *_, term, trunc, _ = env.step(np.zeros(3))
    assert term and not trunc


def test_walker_falls_on_large_angle():
    env = make_env("walker-rand-params", n_tasks=2)
    env.reset(seed=1)
    _, _, term, _, _ = env.step(np.zeros(6))
    assert not term
    qpos = env.data.qpos.copy()
    qpos[2] = 1.2
    env.set_state(qpos, np.zeros_like(env.data.qvel))
    assert env.step(np.zeros(6))[2]


def test_time_limit_truncates_not_terminates():
    env = make_env("cheetah-vel", n_tasks=2, max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(6))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


# ---------------------------------------------------------------- dynamics vs gymnasium
GYM_TWINS = {
    "cheetah-vel": ("HalfCheetah-v5", {}),
    "ant-goal": ("Ant-v5", {}),
    "humanoid-dir": ("Humanoid-v5", {}),
    "hopper-rand-params": ("Hopper-v5", {"xml_file": asset_path("hopper.xml"), "frame_skip": 4}),
    "walker-rand-params": ("Walker2d-v5", {"xml_file": asset_path("walker2d.xml"), "frame_skip": 4}),
}


@pytest.mark.parametrize("name", sorted(GYM_TWINS))
def test_dynamics_match_gymnasium(name):
    gym_id, kwargs = GYM_TWINS[name]
    ours = make_env(name, n_tasks=3)
    ours.reset_task(1)
    ref = gym.make(gym_id, **kwargs).unwrapped
    ref.reset(seed=0)
    ref.model.opt.timestep = ours.model.opt.timestep
    if hasattr(ours, "randomizer"):  # same physics in both: copy the task's parameters over
        for key, value in ours.task_params().items():
            getattr(ref.model, key)[:] = value
        mujoco.mj_setConst(ref.model, ref.data)
    ours.reset(seed=3)
    ref.set_state(ours.data.qpos.copy(), ours.data.qvel.copy())
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-0.4, 0.4, ours.action_space.shape)
        ours.step(a)
        ref.step(a)
        np.testing.assert_array_equal(ours.data.qpos, ref.data.qpos)
        np.testing.assert_array_equal(ours.data.qvel, ref.data.qvel)


# ---------------------------------------------------------------- randomized physics
@pytest.mark.parametrize("name", ["hopper-rand-params", "walker-rand-params"])
def test_rand_params_differ_apply_and_switch_exactly(name):
    env = make_env(name, n_tasks=4)
    base = env.randomizer.base
    p0, p1 = env.task_params(0), env.task_params(1)
    for key in ("body_mass", "body_inertia", "dof_damping", "geom_friction"):
        assert not np.allclose(p0[key], p1[key]), key
        nz = base[key] != 0
        ratio = p0[key][nz] / base[key][nz]
        lim = (1.3 if key == "dof_damping" else 1.5) ** 3
        assert np.all(ratio >= 1 / lim - 1e-12) and np.all(ratio <= lim + 1e-12)
    env.reset_task(1)
    for key, value in p1.items():
        np.testing.assert_array_equal(getattr(env.model, key), value)
    snapshot = {k: getattr(env.model, k).copy() for k in ("body_mass", "body_subtreemass", "dof_invweight0")}
    for _ in range(50):
        env.reset_task(2)
        env.reset_task(1)
    for key, value in snapshot.items():
        np.testing.assert_array_equal(getattr(env.model, key), value)


def test_rand_params_seeded_and_in_reference_order():
    a = make_env("hopper-rand-params", n_tasks=3)
    b = make_env("hopper-rand-params", n_tasks=3)
    for i in range(3):
        for key, value in a.task_params(i).items():
            np.testing.assert_array_equal(value, b.task_params(i)[key])
    rng = np.random.RandomState(1234)
    base = a.randomizer.base
    mass = base["body_mass"] * 1.5 ** rng.uniform(-3, 3, size=base["body_mass"].shape)
    np.testing.assert_array_equal(a.task_params(0)["body_mass"], mass)
    c = make_env("hopper-rand-params", n_tasks=3, task_seed=7)
    assert not np.allclose(c.task_params(0)["body_mass"], mass)


def test_rand_params_change_the_dynamics():
    env = make_env("hopper-rand-params", n_tasks=3)
    finals = []
    for task in (0, 1):
        env.reset_task(task)
        env.reset(seed=0)
        for _ in range(20):
            env.step(np.array([0.3, -0.3, 0.2]))
        finals.append(env.data.qpos.copy())
    assert not np.allclose(finals[0], finals[1])


# ---------------------------------------------------------------- wrapper
def test_wrapper_rescales_actions_and_normalizes_obs():
    env = make_wrapped_env("point-robot", n_tasks=2, obs_absmax=np.array([0.5, 2.0]))
    env.reset_task(0)
    obs, *_ = env.step(np.array([1.0, -0.5], dtype=np.float32))
    np.testing.assert_allclose(obs, [0.1 / 0.5, -0.05 / 2.0], rtol=1e-6)
    assert obs.dtype == np.float32
    obs, *_ = env.step(np.array([5.0, 0.0]))  # out of range: clipped to the bound
    np.testing.assert_allclose(obs, [0.2 / 0.5, -0.05 / 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="abs_max has shape"):
        make_wrapped_env("point-robot", n_tasks=2, obs_absmax=np.ones(3))


def test_wrapper_maps_to_asymmetric_bounds():
    env = make_wrapped_env("hopper-rand-params", n_tasks=2)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    env.step(np.array([1.0, -1.0, 0.0]))
    ctrl_range = env.unwrapped.model.actuator_ctrlrange
    np.testing.assert_allclose(env.unwrapped.data.ctrl, [ctrl_range[0, 1], ctrl_range[1, 0], ctrl_range[2].mean()])


# ---------------------------------------------------------------- bad input
def test_unknown_env_suggests_closest():
    with pytest.raises(UnknownEnvError, match="did you mean 'cheetah-vel'"):
        make_env("cheetah-vell")


@pytest.mark.parametrize("bad", [5, -1, 2.0, "1"])
def test_task_index_out_of_range(bad):
    env = make_env("point-robot", n_tasks=5)
    with pytest.raises(TaskIndexError):
        env.reset_task(bad if bad != 5 else 5)


def test_wrong_action_shape():
    for name in ("point-robot", "cheetah-vel"):
        env = make_env(name, n_tasks=2)
        env.reset(seed=0)
        with pytest.raises(ValueError, match="action shape"):
            env.step(np.zeros(7))
        wrapped = make_wrapped_env(name, n_tasks=2)
        wrapped.reset(seed=0)
        with pytest.raises(ValueError, match="action shape"):
            wrapped.step(np.zeros(7))


@pytest.mark.parametrize("name", ALL_ENVS)
def test_every_env_follows_the_gymnasium_api(name):
    env = make_wrapped_env(name, n_tasks=_n_tasks(name), max_episode_steps=5)
    obs = env.reset_task(_n_tasks(name) - 1)
    assert env.observation_space.contains(obs) or obs.shape == env.observation_space.shape
    obs, info = env.reset(seed=0)
    for t in range(5):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert obs.shape == env.observation_space.shape and np.isfinite(r)
        if term:
            break
    assert term or trunc


# ---------------------------------------------------------------- contact forces: the authors' zeros vs real ones


@pytest.mark.parametrize("name", ["ant-goal", "ant-dir", "humanoid-dir"])
def test_contact_forces_are_zero_by_default_as_in_the_authors_runs(name):
    """mujoco-py + MuJoCo 2.0 never filled cfrc_ext; the default reproduces that, the switch gives real forces."""
    rewards = {}
    for zero in (True, False):
        env = make_env(name, n_tasks=2, zero_contact_forces=zero)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        contact, obs = [], None
        for _ in range(30):
            obs, reward, *_ , info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            contact.append(info.get("reward_contact", info.get("reward_impact")))
        cfrc = env.data.cfrc_ext
        if zero:
            assert not np.any(cfrc) and all(c == 0.0 for c in contact)
            if name == "humanoid-dir":
                assert not np.any(obs[-84:])  # the 84 contact-force dimensions (14 bodies x 6)
        else:
            assert np.any(cfrc) and any(c != 0.0 for c in contact)
            if name == "humanoid-dir":
                assert np.any(obs[-84:])
        rewards[zero] = reward
    assert rewards[True] != rewards[False] or name == "ant-dir"


def test_contact_force_switch_is_a_config_key():
    from rlkit.config import load_config

    cfg = load_config(REPO / "configs" / "ant-goal.json", ["env_params.zero_contact_forces=false"])
    env = make_env(cfg["env_name"], **cfg["env_params"])
    assert env.zero_contact_forces is False
    assert make_env("ant-goal", n_tasks=2).zero_contact_forces is True


# ---------------------------------------------------------------- gymnasium ids


@pytest.mark.parametrize("name", sorted(ENVS))
def test_registered_in_gymnasium_and_passes_its_checker_with_rendering(name):
    import warnings

    from gymnasium.utils.env_checker import check_env

    from rlkit.envs import PAPER_TASK_SETS, gym_id

    paper = PAPER_TASK_SETS[name]
    last = paper["n_tasks"] - 1
    env = gym.make(gym_id(name), task=last, render_mode="rgb_array")  # the paper's task set, by default
    assert env.spec.id == gym_id(name) and env.spec.id.startswith("csro/") and env.spec.id.endswith("-v0")
    assert env.unwrapped.n_tasks == paper["n_tasks"] and env.unwrapped.task_idx == last
    assert env.spec.kwargs["task"] == last and env.spec.max_episode_steps == paper["max_episode_steps"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation spaces, as gymnasium's own MuJoCo envs
        check_env(env.unwrapped)  # rendering included
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    env.close()
    made = make_env(name, n_tasks=2, max_episode_steps=7)
    assert made.spec.id == gym_id(name) and made.spec.kwargs["max_episode_steps"] == 7
    assert made.max_episode_steps == 7 and made.spec.max_episode_steps == 7  # the env's own horizon
    assert made.render() is None  # no render mode asked: gymnasium's convention


@pytest.mark.parametrize("name", sorted(ENVS))
def test_each_gym_id_defaults_to_the_papers_task_set(name):
    """The id's default env_params are the paper config's, so task K of the id is task K of the configs."""
    from rlkit.envs import PAPER_TASK_SETS, gym_id

    configs = [p for p in sorted((REPO / "configs").glob("*.json"))
               if json.loads(p.read_text())["env_name"] == name]
    assert configs, f"no configs/*.json for {name}"
    for path in configs:
        assert json.loads(path.read_text())["env_params"] == PAPER_TASK_SETS[name], path.name
    k = PAPER_TASK_SETS[name]["n_tasks"] // 2
    by_id = gym.make(gym_id(name), task=k).unwrapped
    by_config = make_env(name, **PAPER_TASK_SETS[name])
    for key, value in by_config.task_params(k).items():
        np.testing.assert_array_equal(by_id.task_params()[key], value)


def test_max_episode_steps_through_gymnasium_make_sets_the_horizon():
    from rlkit.envs import gym_id

    def episode_length(env) -> int:
        env.reset(seed=0)
        for n in range(1, 1000):
            if any(env.step(env.action_space.sample())[2:4]):
                return n
        return -1

    assert episode_length(gym.make(gym_id("point-robot"))) == 20  # the paper's horizon
    longer = gym.make(gym_id("point-robot"), max_episode_steps=50)
    assert longer.spec.max_episode_steps == 50 and episode_length(longer) == 50
    assert episode_length(make_env("point-robot", n_tasks=2, max_episode_steps=9)) == 9  # the tools' bare env


def test_point_robot_frame_shows_goal_and_robot():
    env = make_env("sparse-point-robot", n_tasks=40, max_episode_steps=20)
    env.reset_task(10)
    for _ in range(5):
        env.step(np.array([0.1, 0.1]))
    frame = env.render_frame()
    red = (frame[..., 0] > 200) & (frame[..., 1] < 80)
    blue = (frame[..., 2] > 180) & (frame[..., 0] < 60)
    assert red.any() and blue.any()
    # the red goal lies up-left of the blue robot, as task 10's goal does from (0.5, 0.5)
    goal = env.task_params(10)["goal"]
    (ry, rx), (by, bx) = [np.argwhere(m).mean(0) for m in (red, blue)]
    assert np.sign(rx - bx) == np.sign(goal[0] - 0.5) and ry < by  # image rows grow downwards


def test_gym_ids_are_camel_case():
    from rlkit.envs import gym_id

    assert gym_id("point-robot") == "csro/PointRobot-v0"
    assert gym_id("walker-rand-params") == "csro/WalkerRandParams-v0"


def test_an_env_param_the_env_does_not_take_is_a_clear_error():
    from rlkit.envs import EnvParamError

    with pytest.raises(EnvParamError, match=r"env 'cheetah-vel' takes no env_params.zero_contact_forces; its "
                                            r"env_params are: n_tasks, randomize_tasks, max_episode_steps"):
        make_env("cheetah-vel", n_tasks=2, zero_contact_forces=False)
    assert make_env("ant-goal", n_tasks=2, zero_contact_forces=False).zero_contact_forces is False


def test_every_env_states_the_facts_the_tools_read():
    """A new env is one file: its SAC preset, checkpoint chunking and path figure live on the class."""
    from rlkit.config import REPO_CONFIG_DIR
    from rlkit.envs import ENVS, env_class

    presets = {p.stem for p in (REPO_CONFIG_DIR / "sac").glob("*.yaml")}
    for name in ENVS:
        cls = env_class(name)
        assert cls.sac_preset in presets, name
        assert cls.path_figure in (None, "paths", "velocity", "goal_distance"), name
        assert cls.checkpoint_episode_chunk >= 0, name
    assert env_class("point-robot").sac_preset == env_class("sparse-point-robot").sac_preset == "train_point"
    assert env_class("cheetah-vel").sac_preset == "train" and env_class("cheetah-dir").path_figure == "velocity"


def test_the_context_reward_is_the_envs_rule():
    """How a sparse run's context reward is derived lives with the env (the training step imported the
    point robot's formula before): sparse variants apply PEARL's rule, dense envs leave it unchanged."""
    import torch

    from rlkit.envs import make_env
    from rlkit.torch.networks import context_from_sample

    dense = torch.tensor([-0.05, -0.19, -0.21, -1.0])
    sparse = make_env("sparse-point-robot", n_tasks=2, goal_radius=0.2).context_reward(dense)
    torch.testing.assert_close(sparse, torch.tensor([0.95, 0.81, 0.0, 0.0]))
    assert make_env("point-robot", n_tasks=2).context_reward(dense) is dense
    part = {"obs": torch.zeros(4, 2), "actions": torch.zeros(4, 2), "rewards": dense[:, None], "next_obs": torch.zeros(4, 2)}
    ctx = context_from_sample(part, False, make_env("sparse-point-robot", n_tasks=2).context_reward)
    torch.testing.assert_close(ctx[:, 4], sparse)


def test_a_run_uses_the_envs_context_reward_only_when_it_is_sparse():
    """rlkit.envs.run_context_reward is the one switch the trainers, the generic loop and the run loader
    read: the env's rule under algo_params.sparse_rewards, no transform (None) otherwise."""
    import torch

    from rlkit.envs import make_env, run_context_reward

    env = make_env("sparse-point-robot", n_tasks=2, goal_radius=0.2)
    rule = run_context_reward(env, {"sparse_rewards": True})
    torch.testing.assert_close(rule(torch.tensor([-0.05, -1.0])), torch.tensor([0.95, 0.0]))
    assert run_context_reward(env, {"sparse_rewards": False}) is None
    assert run_context_reward(env, {}) is None


@pytest.mark.parametrize("name", ["point-robot", "sparse-point-robot", "point-robot-wind"])
def test_point_robot_relabelling_equals_stepping_the_env_in_the_other_task(name):
    """CORRO's ground-truth negatives (MultiTaskEnv.relabel_outcomes): the outcome of a stored (s, a) in
    another task must be what that task's env returns from s for a (actions at the stored [-1, 1] scale)."""
    import torch

    from rlkit.envs.vector import make_vector_env

    env = make_env(name, n_tasks=6)
    tasks = [0, 3, 5, 2]
    venv = make_vector_env(name, {"n_tasks": 6}, tasks)
    rng = np.random.default_rng(0)
    obs, _ = venv.reset(seed=0)
    for _ in range(3):  # a few steps away from the origin
        obs, *_ = venv.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
    actions = rng.uniform(-1.2, 1.2, (4, 2)).astype(np.float32)  # beyond the bound too: both clip
    nxt, rewards, *_ = venv.step(actions)
    got_next, got_r = env.relabel_outcomes(torch.as_tensor(obs), torch.as_tensor(actions, dtype=torch.float64),
                                           torch.as_tensor(tasks))
    np.testing.assert_allclose(got_next.numpy(), nxt, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_r.numpy(), rewards if name != "sparse-point-robot" else
                               -np.linalg.norm(nxt - env.task_arrays(tasks)[0], axis=-1), rtol=1e-6, atol=1e-7)


def test_envs_that_cannot_step_from_a_stored_state_refuse_relabelling_with_what_to_do():
    import torch

    from rlkit.envs import RelabelUnsupported

    env = make_env("cheetah-vel", n_tasks=2)
    with pytest.raises(RelabelUnsupported, match="corro_negatives_from=cvae"):
        env.relabel_outcomes(torch.zeros(1, 20), torch.zeros(1, 6), torch.zeros(1, dtype=torch.long))


# ---------------------------------------------------------------- replaying a recorded episode


@pytest.mark.parametrize("name", ALL_ENVS)
def test_every_env_draws_a_recorded_episode_and_a_mujoco_step_carries_its_whole_pose(name):
    """A trace (observation + step info) holds the pose the step reached: qpos_from_obs gives it back
    exactly, for every MuJoCo env, so a protocol clip is drawn from what was scored."""
    from rlkit.envs import env_class
    from rlkit.envs.mujoco_base import MujocoTaskEnv

    assert env_class(name).draws_episodes()
    env = make_env(name, n_tasks=2, max_episode_steps=50)
    if not isinstance(env, MujocoTaskEnv):
        return
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(15):
        obs, _, term, _, info = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        np.testing.assert_array_equal(env.qpos_from_obs(obs, info), env.data.qpos)
        if term:
            break
    # the root coordinates each observation leaves out: none for ant-goal (full qpos), x and y for the
    # free-body envs that drop both, x for the planar ones
    assert len(env.hidden_qpos) == {"ant-goal": 0, "ant-dir": 2, "humanoid-dir": 2}.get(name, 1)


def test_cheetah_vel_episode_frames_are_the_live_frames_with_the_target_gauge():
    env, replay = (make_env("cheetah-vel", n_tasks=4, max_episode_steps=20) for _ in range(2))
    env.reset_task(3)
    first = env.reset(seed=1)[0]
    rng = np.random.default_rng(0)
    live, next_obs, infos = [], [], {"x_velocity": [], "root_x": []}
    for _ in range(6):
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, size=env.action_space.shape))
        mujoco.mj_forward(env.model, env.data)  # after mj_step, the body positions lag qpos by a substep
        live.append(env.render_frame(256, 192))
        next_obs.append(obs)
        for key in infos:
            infos[key].append(info[key])
    frames = replay.episode_frames(3, first, np.array(next_obs), {k: np.array(v) for k, v in infos.items()}, 256)
    assert len(frames) == 6 and all(f.shape == (192, 256, 3) and f.dtype == np.uint8 for f in frames)
    for frame, want in zip(frames, live):
        np.testing.assert_array_equal(frame[:-26], want[:-26])  # the pose set is the pose simulated
    # the gauge: the target's red tick where 3.0 m/s lies on the [-1, 4] scale
    from rlkit.envs.half_cheetah import GAUGE_RANGE

    red_cols = np.flatnonzero(((frames[0][-12:, :, 0] > 200) & (frames[0][-12:, :, 1] < 80)).any(axis=0))
    lo, hi = GAUGE_RANGE
    assert abs(red_cols.mean() - (3.0 - lo) / (hi - lo) * 255) <= 1.5


def test_point_robot_episode_frames_draw_the_path_so_far():
    env = make_env("point-robot", n_tasks=10, max_episode_steps=20)
    path = np.array([[0.1 * k, 0.05 * k] for k in range(1, 5)])
    frames = env.episode_frames(2, np.zeros(2), path, {}, size=128)
    assert len(frames) == 4
    blue = [int(((f[..., 2] > 180) & (f[..., 0] < 200)).sum()) for f in frames]
    assert blue == sorted(blue) and blue[0] < blue[-1]  # the trail grows step by step


@pytest.mark.parametrize("value", ["foo", "osmesa"])
def test_a_mujoco_gl_that_cannot_load_stops_only_the_frames(value):
    """Was: MUJOCO_GL=osmesa without OSMesa, or a typo, crashed every command importing rlkit.envs (point-robot
    training included), because MuJoCo picks its OpenGL backend at import. Physics needs none: stepping works,
    and a frame is one line naming the variable. (osmesa: on a machine that has OSMesa, frames just work.)"""
    code = (
        "from rlkit.envs import make_env\n"
        "from rlkit.envs.mujoco_base import RenderError\n"
        "for name in ('point-robot', 'cheetah-vel'):\n"
        "    env = make_env(name, n_tasks=2); env.reset(seed=0); env.step(env.action_space.sample())\n"
        "try:\n"
        "    env.render_frame(); print('FRAME')\n"
        "except RenderError as exc:\n"
        "    print('ERROR', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MUJOCO_GL": value}, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    if value == "foo":
        assert lines[0].startswith("ERROR") and "MUJOCO_GL='foo'" in lines[0] and "unset it" in lines[0]
    else:  # depending on what of OpenGL is installed, MuJoCo fails at import or at the first frame
        assert lines[0] == "FRAME" or (lines[0].startswith("ERROR") and "MUJOCO_GL" in lines[0])


@pytest.mark.parametrize("value", [2.5, True, "3", 0])
def test_a_task_count_that_is_not_a_whole_number_is_refused(value):
    """Was: gym.make(..., n_tasks=2.5) built 2 tasks."""
    with pytest.raises(ValueError, match=rf"n_tasks must be a whole number >= 1, got {value!r}"):
        gym.make("csro/PointRobot-v0", n_tasks=value)
    assert gym.make("csro/PointRobot-v0", n_tasks=3.0).unwrapped.n_tasks == 3  # a JSON number written 3.0
