"""``show_path.py --video``: one test task under each protocol, side by side, as an animated GIF.

Context shift is easier to see than to read about: the same trained agent on the same task, once
with the behaviour policies' context (offline), once collecting its own (online), once with the
non-prior exploration episode first (np_online). Each panel replays the recorded rollout step by
step: the task's goal (red, with the sparse reward's radius where the env has one), the other
tasks' goals (grey), the path of the current episode, and in the corner the protocol, the episode
(exploration or evaluation k) and its return so far. A clip that ends earlier holds its last frame.

The frames are drawn from the rollout's recorded positions (``record_trace``), not by running the
env again, so what is shown is exactly what was scored. That needs the env's state in the trace:
the point-robot family, whose observation is the position. The MuJoCo envs' observations leave out
the body's x position, so their clips would need a re-simulation; they are refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FPS = 10


def supports_video(env_name: str) -> bool:
    """The envs whose clips can be drawn from a recorded trace: those with the 2-D path figure."""
    from rlkit.envs import env_class

    return env_class(env_name).path_figure == "paths"


def check_video(env_name: str) -> None:
    """A one-line ValueError for an env whose clips cannot be drawn (checked before any rollout)."""
    if not supports_video(env_name):
        raise ValueError(f"--video draws its clips from recorded positions, which {env_name} does not record "
                         "(a MuJoCo observation leaves out the x position): leave --video out")


def _label(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((6, 4 + 12 * i), text, fill=(20, 20, 20))
    return np.asarray(img)


EPISODES = 2  # evaluation episodes per clip, after the protocol's exploration ones: a few seconds


def protocol_frames(run, result, task: int, protocol: str, size: int = 256,
                    episodes: int = EPISODES) -> list[np.ndarray]:
    """The frames of ``task``'s first repeat under one protocol: one per env step, through its
    exploration episodes (if any) and its first ``episodes`` evaluation episodes."""
    from rlkit.cli.show_path import _first_env_of, labelled_episodes
    from rlkit.envs import make_env
    from rlkit.envs.point_robot import draw_point_robot

    env = make_env(run.env_name, **run.env_params)
    goals = [t["goal"] for t in env.tasks]
    goal = env.tasks[task]["goal"]
    radius = getattr(env, "goal_radius", None)
    scale = run.obs_absmax if run.obs_absmax is not None else 1.0
    settings = run.settings()
    tr = result.trace
    m = _first_env_of(result, task)
    frames, k = [], 0
    for ep in labelled_episodes(result, m, settings.num_exp_traj_eval, settings.max_path_length):
        if k == episodes:
            break
        steps = ep["steps"]
        kind = "exploration" if ep["kind"] == "exploration" else f"evaluation {k + 1}"
        k += ep["kind"] != "exploration"
        trail = [np.asarray(tr["obs"][steps[0], m]) * scale]
        total = 0.0
        for s in steps:
            trail.append(np.asarray(tr["next_obs"][s, m]) * scale)
            total += float(tr["rewards"][s, m])
            frame = draw_point_robot(size, goals, goal, np.array(trail), radius)
            frames.append(_label(frame, [protocol, kind, f"return {total:.2f}"]))
    return frames


def side_by_side(clips: list[list[np.ndarray]], gap: int = 4) -> list[np.ndarray]:
    """One frame per time step with the clips next to each other; a shorter clip holds its last frame."""
    n = max(len(c) for c in clips)
    out = []
    for t in range(n):
        parts = []
        for c in clips:
            parts.append(c[min(t, len(c) - 1)])
            parts.append(np.full((c[0].shape[0], gap, 3), 255, np.uint8))
        out.append(np.concatenate(parts[:-1], axis=1))
    return out


def write_gif(frames: list[np.ndarray], path: Path, fps: int = FPS) -> Path:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   optimize=True)
    return path


def write_protocol_video(run, results: dict, task: int, path: Path, size: int = 256,
                         episodes: int = EPISODES) -> Path:
    """The GIF of ``task`` under every protocol in ``results`` (in their order), side by side: each one's
    exploration episodes and first ``episodes`` evaluation episodes."""
    check_video(run.env_name)
    clips = [protocol_frames(run, result, task, protocol, size, episodes) for protocol, result in results.items()]
    return write_gif(side_by_side(clips), Path(path))
