"""gym.make_vec reaches the fast vector env (rlkit.envs.vector), one task per sub-env. Was: no
vector_entry_point, and make_vec's sync/async sub-envs all got the same task."""

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs import gym_id
from rlkit.envs.point_robot import PointRobotVectorEnv
from rlkit.envs.vector import MujocoTaskVectorEnv


def test_make_vec_defaults_to_the_fast_vector_env_on_tasks_0_to_n_minus_1():
    venv = gym.make_vec(gym_id("point-robot"), num_envs=4)
    assert isinstance(venv, PointRobotVectorEnv)
    obs, info = venv.reset(seed=0)
    assert list(info["task"]) == [0, 1, 2, 3] and obs.shape == (4, 2)
    np.testing.assert_array_equal(venv.goals, [gym.make(gym_id("point-robot"), task=t).unwrapped.task_params()["goal"]
                                               for t in range(4)])
    venv.close()


def test_vector_entry_point_with_chosen_tasks_matches_single_envs():
    venv = gym.make_vec(gym_id("cheetah-vel"), num_envs=2, vectorization_mode="vector_entry_point",
                        tasks=[5, 30], max_episode_steps=3)
    assert isinstance(venv, MujocoTaskVectorEnv) and list(venv.task_ids) == [5, 30]
    venv.reset(seed=0)
    actions = np.zeros((2, 6), np.float32)
    _, rewards, _, truncated, _ = [venv.step(actions) for _ in range(3)][-1]
    assert truncated.all()  # max_episode_steps reached the sub-envs
    # the two sub-envs run different tasks: task 5's and task 30's target velocities
    target = [gym.make(gym_id("cheetah-vel"), task=t).unwrapped.task_params()["velocity"] for t in (5, 30)]
    assert target[0] != target[1]
    venv.close()


@pytest.mark.parametrize("kwargs,words", [
    ({"num_envs": 41}, ["41 sub-envs", "40 tasks"]),
    ({"num_envs": 2, "tasks": [0, 40]}, ["task index 40", "0..39"]),
    ({"num_envs": 3, "tasks": [0, 1]}, ["tasks", "3"]),
    ({"num_envs": 2, "task": 3}, ["tasks=[", "task="]),
])
def test_bad_vector_input_is_one_line(kwargs, words):
    with pytest.raises((ValueError, IndexError)) as exc:
        gym.make_vec(gym_id("point-robot"), vectorization_mode="vector_entry_point", **kwargs)
    message = str(exc.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sync_and_async_refuse_to_give_every_sub_env_one_task(mode):
    with pytest.raises(ValueError) as exc:
        gym.make_vec(gym_id("point-robot"), num_envs=2, vectorization_mode=mode)
    message = str(exc.value)
    assert "\n" not in message and "vector_entry_point" in message and "SyncVectorEnv" in message, message


def test_one_sub_env_in_sync_mode_is_the_plain_env():
    """num_envs=1 cannot mix tasks up, and is what gymnasium's own tools build (make_vec in checkers)."""
    venv = gym.make_vec(gym_id("point-robot"), num_envs=1, vectorization_mode="sync", task=7)
    assert venv.reset(seed=0)[1]["task"].tolist() == [7]
    venv.close()


def test_make_vec_passes_the_autoreset_mode():
    from gymnasium.vector import AutoresetMode

    venv = gym.make_vec(gym_id("point-robot"), num_envs=2, autoreset_mode=AutoresetMode.DISABLED)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    venv.close()
