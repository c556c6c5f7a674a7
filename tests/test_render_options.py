"""Frame size and camera through gymnasium.make (as gymnasium's MuJoCo envs take them), and ant-goal's
goal marker. Was: every frame 320x240 (256x256 for the point robot), width=/height=/camera_name= a TypeError."""

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs import gym_id, make_env
from rlkit.envs.base import RenderOptionError


@pytest.mark.parametrize("name", ["cheetah-vel", "point-robot"])
def test_width_and_height_set_the_frame_size(name):
    env = gym.make(gym_id(name), render_mode="rgb_array", width=200, height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 200, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_a_frame_larger_than_the_models_offscreen_buffer():
    """MuJoCo's default off-screen buffer is 640x480; gymnasium grows it for a larger frame, so do we."""
    env = gym.make(gym_id("cheetah-vel"), render_mode="rgb_array", width=800, height=600)
    env.reset(seed=0)
    assert env.render().shape == (600, 800, 3)
    env.close()


def test_camera_name_and_camera_id_pick_the_models_camera():
    default = gym.make(gym_id("cheetah-vel"), render_mode="rgb_array")
    by_name = gym.make(gym_id("cheetah-vel"), render_mode="rgb_array", camera_name="track")
    by_id = gym.make(gym_id("cheetah-vel"), render_mode="rgb_array", camera_id=0)
    frames = []
    for env in (default, by_name, by_id):
        env.reset(seed=0)
        frames.append(env.render())
        env.close()
    np.testing.assert_array_equal(frames[1], frames[2])  # "track" is camera 0 of half_cheetah.xml
    assert (frames[0] != frames[1]).mean() > 0.05  # not our own tracking camera's view


@pytest.mark.parametrize("kwargs,words", [
    ({"width": 0}, ["width", "positive"]),
    ({"height": -5}, ["height", "positive"]),
    ({"width": 2.5}, ["width", "positive"]),
    ({"camera_name": "nope"}, ["camera_name", "'nope'", "'track'"]),
    ({"camera_id": 7}, ["camera_id", "-1"]),
    ({"camera_id": 0, "camera_name": "track"}, ["camera_id", "camera_name"]),
])
def test_bad_render_options_are_one_line(kwargs, words):
    with pytest.raises(RenderOptionError) as exc:
        gym.make(gym_id("cheetah-vel"), render_mode="rgb_array", **kwargs)
    message = str(exc.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_the_point_robot_has_no_camera_to_pick():
    with pytest.raises(RenderOptionError, match="point-robot draws.*camera_name"):
        gym.make(gym_id("point-robot"), camera_name="track")


def _red(frame):
    return (frame[..., 0] > 150) & (frame[..., 1] < 90) & (frame[..., 2] < 90)


def test_ant_goal_frame_shows_its_goal():
    env = make_env("ant-goal", n_tasks=4)
    env.reset_task(0)
    with_marker = env.render_frame()
    assert _red(with_marker).sum() > 20
    env.scene_markers = lambda: []  # the same frame without the marker: no red anywhere
    without = env.render_frame()
    assert not _red(without).any()
    del env.scene_markers
    # the marker stands at the goal: task 2's goal is opposite task 0's, so it shows on the other side
    env.reset_task(2)
    other = env.render_frame()
    (_, x0), (_, x2) = np.argwhere(_red(with_marker)).mean(0), np.argwhere(_red(other)).mean(0)
    assert abs(x0 - x2) > 40
    # and a recorded episode's frames carry it too
    poses = np.concatenate([np.tile(env.init_qpos, (2, 1)), np.zeros((2, env.model.nv))], axis=1)
    frames = env.episode_frames(0, poses[0], poses, {}, 256)
    assert all(_red(f).sum() > 10 for f in frames)
    env.close()
