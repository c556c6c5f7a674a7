"""``show_path.py --video``: one test task under each protocol, side by side, as an animated GIF.

Context shift is easier to see than to read about: the same trained agent on the same task, once
with the behaviour policies' context (offline), once collecting its own (online), once with the
non-prior exploration episode first (np_online). Each panel replays the recorded rollout step by
step with the task drawn by the env (point robot: its goal in red, the other tasks' in grey, the
path; cheetah-vel: a gauge of the target and the actual velocity) and, in the corner, the protocol,
the episode (exploration or evaluation k) and its return so far. A clip that ends earlier holds its
last frame.

The frames are drawn from the rollout's trace (``record_trace``), not by running the env again, so
what is shown is exactly what was scored: each env draws a recorded episode itself
(:meth:`rlkit.envs.base.MultiTaskEnv.episode_frames`). The point robot's observation is its
position; a MuJoCo env's step info carries the root coordinates its observation leaves out, so the
pose is set and rendered off-screen (``mujoco.Renderer``).

Short episodes (point robot, 20 steps) are shown whole: exploration and the first two evaluation
episodes. Long ones (MuJoCo, 200 steps) would make a clip of minutes, so each panel shows the first
evaluation episode after its protocol's context collection, every ``stride``-th step.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from rlkit.evaluation.episodes import first_env_of, labelled_episodes
from rlkit.fileio import atomic_file

FPS = 10
EPISODES = 2  # evaluation episodes per clip of short episodes, after the protocol's exploration ones
LONG_EPISODE = 50  # steps: longer episodes get one evaluation episode per clip, subsampled
FRAMES_PER_LONG_EPISODE = 100  # about 10 s at FPS


def supports_video(env_name: str) -> bool:
    """The envs that can draw a recorded episode (all registered ones do today)."""
    from rlkit.envs import env_class

    return env_class(env_name).draws_episodes()


def check_video(env_name: str) -> None:
    """A one-line ValueError for an env whose clips cannot be drawn (checked before any rollout)."""
    if not supports_video(env_name):
        raise ValueError(f"{env_name} cannot draw a recorded episode (episode_frames), so it has no "
                         "protocol clips: leave --video out")


def _label(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """``lines`` in the top-left corner, dark on a white box so they read on any background."""
    from PIL import Image, ImageDraw

    from rlkit.envs import colours

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    width = max(int(draw.textlength(text)) for text in lines)
    draw.rectangle((2, 2, 10 + width, 6 + 12 * len(lines)), fill=colours.BACKGROUND)
    for i, text in enumerate(lines):
        draw.text((6, 4 + 12 * i), text, fill=colours.TEXT)
    return np.asarray(img)


def method_name(run) -> str:
    """The method a run trained (``algo_type``), with its experiment name when that says more
    (``CSRO (ablation-1)``): side-by-side clips of two runs must say which is which."""
    cfg = run.config
    algo = cfg.get("algo_type", "CSRO")
    exp = (cfg.get("util_params") or {}).get("exp_name")
    return algo if not exp or exp == algo else f"{algo} ({exp})"


def panel_title(method: str, protocol: str, kind: str, ret: float) -> list[str]:
    """A panel's corner text: method and protocol, the episode, its return so far."""
    return [f"{method}: {protocol}", kind, f"return {ret:.2f}"]


def clip_plan(max_path_length: int) -> tuple[bool, int, int]:
    """(show exploration episodes, evaluation episodes shown, stride in steps) for this episode length."""
    if max_path_length <= LONG_EPISODE:
        return True, EPISODES, 1
    return False, 1, max(1, -(-max_path_length // FRAMES_PER_LONG_EPISODE))


def protocol_frames(run, result, task: int, protocol: str, size: int = 256,
                    episodes: int | None = None) -> list[np.ndarray]:
    """The frames of ``task``'s first repeat under one protocol, as :func:`clip_plan` picks them:
    every step (or every stride-th) of its exploration episodes (short episodes only) and of its first
    ``episodes`` evaluation episodes."""
    from rlkit.envs import make_env

    env = make_env(run.env_name, **run.env_params)
    settings = run.settings()
    show_exploration, default_episodes, stride = clip_plan(settings.max_path_length)
    episodes = default_episodes if episodes is None else episodes
    scale = run.obs_absmax if run.obs_absmax is not None else 1.0
    tr = result.trace
    method = method_name(run)
    m = first_env_of(result, task)
    frames, k = [], 0
    try:
        for ep in labelled_episodes(result, m, settings.num_exp_traj_eval, settings.max_path_length):
            if k == episodes:
                break
            exploring = ep["kind"] == "exploration"
            if exploring and not show_exploration:
                continue
            kind = "exploration" if exploring else f"evaluation {k + 1}"
            k += not exploring
            steps = np.asarray(ep["steps"])
            returns = np.cumsum(np.asarray(tr["rewards"][steps, m], dtype=np.float64))
            shown = list(range(stride - 1, len(steps), stride))
            if shown[-1:] != [len(steps) - 1]:
                shown.append(len(steps) - 1)  # the episode's end, with its final return
            at = steps[shown]
            drawn = env.episode_frames(task, np.asarray(tr["obs"][steps[0], m]) * scale,
                                       np.asarray(tr["next_obs"][at, m]) * scale,
                                       {key: v[at, m] for key, v in tr["info"].items()}, size)
            for frame, t in zip(drawn, shown):
                frames.append(_label(frame, panel_title(method, protocol, kind, returns[t])))
    finally:
        env.close()
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


GIF_COLOURS = 64  # one palette for the whole clip: a rendered floor needs no more, and the file stays small


def shared_palette(frames: list[np.ndarray], colours: int = GIF_COLOURS):
    """A palette image for every frame of a clip: the drawing colours (:mod:`rlkit.envs.colours`)
    exactly, the rest fitted to a sample of the frames.

    One palette without dithering lets the GIF's compression see what did not change between frames:
    a 2-panel, 100-frame cheetah test clip took 1.07 MB against 1.5 MB with Pillow's palette per frame.
    """
    from PIL import Image

    from rlkit.envs.colours import ALL

    sample = np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0)
    fitted = Image.fromarray(sample).quantize(colors=colours - len(ALL), dither=Image.Dither.NONE)
    palette = Image.new("P", (1, 1))
    palette.putpalette(fitted.getpalette()[: 3 * (colours - len(ALL))] + [c for rgb in ALL for c in rgb])
    return palette


def write_gif(frames: list[np.ndarray], path: Path, fps: int = FPS) -> Path:
    from PIL import Image

    palette = shared_palette(frames)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    with atomic_file(path, "wb") as f:  # a full disk leaves no empty or cut clip
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                       optimize=False)
    return path


def mp4_encoder() -> str | None:
    """The MP4 encoder importable here: ``"imageio-ffmpeg"`` (its bundled ffmpeg), ``"pyav"``, or None.

    Neither is a dependency (the GIF needs only Pillow); an MP4 is a tenth of the GIF's size and plays
    in slides and browsers at full colour, so it is written whenever it can be.
    """
    for module, name in (("imageio_ffmpeg", "imageio-ffmpeg"), ("av", "pyav")):
        try:
            __import__(module)
        except ImportError:
            continue
        return name
    return None


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: pad the last row / column with white."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)


def write_mp4(frames: list[np.ndarray], path: Path, fps: int, encoder: str) -> Path:
    """An H.264 MP4 of ``frames`` with ``encoder`` (:func:`mp4_encoder`), written beside and renamed over
    ``path`` so a failed encode leaves no cut file."""
    path = Path(path)
    part = path.with_name(path.stem + ".part.mp4")
    frames = [_even(np.asarray(f, dtype=np.uint8)) for f in frames]
    try:
        if encoder == "imageio-ffmpeg":
            import imageio_ffmpeg

            h, w = frames[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(str(part), (w, h), fps=fps, codec="libx264",
                                                 pix_fmt_out="yuv420p", macro_block_size=1)
            writer.send(None)
            for f in frames:
                writer.send(np.ascontiguousarray(f))
            writer.close()
        else:
            import av

            with av.open(str(part), mode="w", format="mp4") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = frames[0].shape[:2]
                stream.pix_fmt = "yuv420p"
                for f in frames:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
                container.mux(stream.encode())
        os.replace(part, path)
    finally:
        if part.exists():
            part.unlink()
    return path


def write_clip(frames: list[np.ndarray], gif_path: Path, fps: int = FPS) -> list[Path]:
    """The GIF, and an MP4 beside it (same name, ``.mp4``) when an encoder is importable; without one,
    one line on stderr says so. Returns the paths written, the GIF first."""
    gif_path = Path(gif_path)
    paths = [write_gif(frames, gif_path, fps)]
    encoder = mp4_encoder()
    if encoder is None:
        print(f"no MP4 encoder importable (pip install imageio-ffmpeg, or av): wrote {gif_path.name} only",
              file=sys.stderr)
    else:
        paths.append(write_mp4(frames, gif_path.with_suffix(".mp4"), fps, encoder))
    return paths


def write_protocol_video(run, results: dict, task: int, path: Path, size: int = 256,
                         episodes: int | None = None) -> list[Path]:
    """The clip of ``task`` under every protocol in ``results`` (in their order), side by side, each
    panel as :func:`protocol_frames` picks its episodes: the GIF at ``path``, and an MP4 beside it
    when an encoder is importable (:func:`write_clip`)."""
    check_video(run.env_name)
    clips = [protocol_frames(run, result, task, protocol, size, episodes) for protocol, result in results.items()]
    return write_clip(side_by_side(clips), Path(path))
