#!/usr/bin/env python
"""Draw what a trained agent does on test tasks under each evaluation protocol (docs/method.md §1.3).

    python show_path.py configs/point-robot.json --seed 1 --exp_name NAME [--gpu G] [--itr K]
        [--base_log_dir output] [--out DIR] [--protocols online,offline,np_online]
        [--tasks 2,6,10 | --num_tasks 4] [--num_evals 1] [--format png] [--data_dir DIR]

Loads output/ENV/EXP_NAME/seedN (the config gives ENV, --exp_name defaults to
its util_params.exp_name), rolls out the protocols on a few test tasks with
every step recorded and writes, into --out (default RUN_DIR/figures):

* point-robot family: ``paths_itrK.png``, the 2-D paths, one panel per
  protocol; dashed = exploration (np_online's exploration episodes, online's
  episodes with z still at the prior), solid = evaluation (later episodes
  darker, the scored last one thick), stars = goals, black dot = the start;
* cheetah envs: ``velocity_itrK.png``, x-velocity over the rollout's steps
  against the target velocity (cheetah-vel);
* ant-goal: ``goal_distance_itrK.png``, distance of the torso to the goal;
* every env: ``returns_itrK.png``, the return of each episode in order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rlkit.errors import cli
from rlkit.fileio import atomic_file
from rlkit.core.device import choose_device
from rlkit.envs import env_class
from rlkit.evaluation.episodes import first_env_of, labelled_episodes, rollouts
from rlkit.evaluation.protocols import ALL_PROTOCOLS, PROTOCOLS

STYLE = {"exploration": dict(ls="--", lw=0.8, alpha=0.45), "last": dict(ls="-", lw=2.2, alpha=1.0)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="configs/ENV.json of the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exp_name", default=None, help="run name under BASE/ENV/ (default: the config's exp_name)")
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    p.add_argument("--itr", type=int, default=None, help="snapshot iteration (default: the newest)")
    p.add_argument("--base_log_dir", default=None, help="default: the config's util_params.base_log_dir")
    p.add_argument("--out", default=None, help="figure folder (default: RUN_DIR/figures)")
    p.add_argument("--protocols", default=",".join(PROTOCOLS),
                   help="comma-separated, of " + ",".join(ALL_PROTOCOLS) + " (default: those run in training)")
    p.add_argument("--tasks", default=None, help="comma-separated test task ids (default: --num_tasks spread out)")
    p.add_argument("--num_tasks", type=int, default=4, help="how many test tasks to draw")
    p.add_argument("--num_evals", type=int, default=1, help="repeats per task (the first one is drawn)")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"))
    p.add_argument("--data_dir", default=None, help="offline dataset, if it moved since training")
    p.add_argument("--video", action="store_true",
                   help="also write protocols_taskT_itrK.gif (and .mp4 when imageio-ffmpeg or av is installed): "
                        "one test task under each protocol, side by side, titled with the method "
                        "(MuJoCo envs render off-screen: MUJOCO_GL=egl or osmesa)")
    p.add_argument("--video_task", type=int, default=None, help="the task of the clip (default: the first drawn)")
    return p.parse_args(argv)


def pick_tasks(test_tasks: list[int], tasks: str | None, num_tasks: int) -> list[int]:
    """Explicit ids (checked against the run's test tasks) or ``num_tasks`` evenly spread ones."""
    if tasks:
        try:
            chosen = [int(t) for t in tasks.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"--tasks must be comma-separated integers, got {tasks!r}") from None
        bad = [t for t in chosen if t not in test_tasks]
        if bad or not chosen:
            raise ValueError(f"--tasks {bad or tasks} are not test tasks of this run; test tasks: {test_tasks}")
        return chosen
    if num_tasks < 1:
        raise ValueError(f"--num_tasks must be >= 1, got {num_tasks}")
    idx = np.unique(np.linspace(0, len(test_tasks) - 1, min(num_tasks, len(test_tasks))).round().astype(int))
    return [test_tasks[i] for i in idx]


def _task_colors(tasks):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if len(tasks) <= 10 else "tab20")
    return {t: cmap(i % cmap.N) for i, t in enumerate(tasks)}


def _eval_style(k: int, n: int) -> dict:
    return dict(ls="-", lw=1.0, alpha=0.25 + 0.6 * (k + 1) / max(n, 1))


def _legend_handles(extra=()):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="grey", **STYLE["exploration"], label="exploration"),
            Line2D([], [], color="grey", ls="-", lw=1.0, alpha=0.6, label="evaluation"),
            Line2D([], [], color="grey", **STYLE["last"], label="last evaluation (scored)"), *extra]


def plot_point_paths(run, results: dict, tasks, path: Path) -> Path:
    """One panel per protocol: the 2-D paths of the first repeat of each task."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from rlkit.envs import make_env

    env = make_env(run.env_name, **run.env_params)
    goals = np.array([task["goal"] for task in env.tasks])
    scale = run.obs_absmax if run.obs_absmax is not None else 1.0
    colors = _task_colors(tasks)
    settings = run.settings()
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.4), squeeze=False)
    for ax, (protocol, result) in zip(axes[0], results.items()):
        ax.scatter(goals[:, 0], goals[:, 1], s=8, color="lightgrey", zorder=1)
        tr = result.trace
        for task in tasks:
            m = first_env_of(result, task)
            episodes = labelled_episodes(result, m, settings.num_exp_traj_eval, settings.max_path_length)
            n_eval = sum(ep["kind"] != "exploration" for ep in episodes)
            k = 0
            for ep in episodes:
                s = ep["steps"]
                xy = np.concatenate([tr["obs"][s[:1], m], tr["next_obs"][s, m]]) * scale
                if ep["kind"] == "evaluation":
                    style, k = _eval_style(k, n_eval), k + 1
                else:
                    style = STYLE[ep["kind"]]
                ax.plot(xy[:, 0], xy[:, 1], color=colors[task], zorder=2, **style)
            goal = env.tasks[task]["goal"]
            ax.scatter([goal[0]], [goal[1]], marker="*", s=220, color=colors[task], edgecolor="black", zorder=4)
        ax.scatter([0], [0], s=40, color="black", zorder=5)
        scored = np.mean([result.final_returns()[result.task_ids.index(t)] for t in tasks])
        ax.set_title(f"{protocol}  (last return {scored:.2f})")
        ax.set_aspect("equal")
        ax.set_xlabel("x position")
        ax.set_ylabel("y position")
    extra = [Line2D([], [], marker="*", ls="", color="grey", markersize=12, label="goal"),
             Line2D([], [], marker="o", ls="", color="black", label="start")]
    _legend_below(fig, _legend_handles(extra))
    fig.suptitle(f"{run.env_name}: tasks {', '.join(map(str, tasks))} (iteration {run.iteration})")
    return _save(fig, path)


def plot_task_quantity(run, results: dict, tasks, path: Path, quantity: str) -> Path:
    """Per protocol, a per-step quantity along the rollout: ``velocity`` or ``goal_distance``."""
    import matplotlib.pyplot as plt

    from rlkit.envs import make_env

    env = make_env(run.env_name, **run.env_params)
    colors = _task_colors(tasks)
    settings = run.settings()
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.8), squeeze=False, sharey=True)
    for ax, (protocol, result) in zip(axes[0], results.items()):
        info = result.trace["info"]
        for task in tasks:
            m = first_env_of(result, task)
            episodes = labelled_episodes(result, m, settings.num_exp_traj_eval, settings.max_path_length)
            if quantity == "velocity":
                values = info["x_velocity"][:, m]
            else:
                values = np.linalg.norm(info["xy"][:, m] - np.asarray(env.tasks[task]["goal"]), axis=-1)
            t0, k, n_eval = 0, 0, sum(ep["kind"] != "exploration" for ep in episodes)
            for ep in episodes:
                s = ep["steps"]
                if ep["kind"] == "evaluation":
                    style, k = _eval_style(k, n_eval), k + 1
                else:
                    style = STYLE[ep["kind"]]
                ax.plot(np.arange(t0, t0 + len(s)), values[s], color=colors[task], **{**style, "lw": 0.8})
                t0 += len(s)
            if quantity == "velocity" and "velocity" in env.tasks[task]:
                ax.axhline(env.tasks[task]["velocity"], color=colors[task], ls=":", lw=1.5)
        ax.set_title(protocol)
        ax.set_xlabel("env step (episodes back to back)")
    if quantity == "velocity":
        axes[0][0].set_ylabel("x-velocity (m/s; dotted: target)")
    else:
        axes[0][0].set_ylabel("distance to goal (position units)")
        axes[0][0].axhline(0.0, color="black", lw=0.5)
    _legend_below(fig, _legend_handles())
    fig.suptitle(f"{run.env_name}: tasks {', '.join(map(str, tasks))} (iteration {run.iteration})")
    return _save(fig, path)


def plot_episode_returns(run, results: dict, tasks, path: Path) -> Path:
    """Per protocol, each episode's return in order (hollow: exploration, filled: evaluation)."""
    import matplotlib.pyplot as plt

    colors = _task_colors(tasks)
    settings = run.settings()
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.6), squeeze=False, sharey=True)
    for ax, (protocol, result) in zip(axes[0], results.items()):
        for task in tasks:
            m = first_env_of(result, task)
            episodes = labelled_episodes(result, m, settings.num_exp_traj_eval, settings.max_path_length)
            x = np.arange(1, len(episodes) + 1)
            y = np.array([ep["return"] for ep in episodes])
            explore = np.array([ep["kind"] == "exploration" for ep in episodes])
            ax.plot(x, y, color=colors[task], lw=0.8, alpha=0.6, label=f"task {task}")
            ax.scatter(x[~explore], y[~explore], color=colors[task], s=14)
            ax.scatter(x[explore], y[explore], facecolor="none", edgecolor=colors[task], s=14)
        ax.set_title(protocol)
        ax.set_xlabel("episode (in order)")
    axes[0][0].set_ylabel("episode return (hollow: exploration)")
    _legend_below(fig, axes[0][-1].get_legend_handles_labels()[0])
    fig.suptitle(f"{run.env_name}: episode returns (iteration {run.iteration})")
    return _save(fig, path)


def _legend_below(fig, handles) -> None:
    """The legend under the panels, where it covers no path or curve."""
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 6),
               fontsize=7, frameon=False)


def _save(fig, path: Path) -> Path:
    """Save and close ``fig``; atomically, so a full disk leaves no empty or cut figure under ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format=Path(path).suffix.lstrip("."), dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def make_figures(run, out_dir, protocols=PROTOCOLS, tasks=None, num_evals: int = 1,
                 seed: int = 0, fmt: str = "png", video_task: int | None = None) -> list[Path]:
    """Roll out ``protocols`` on ``tasks`` (default: 4 test tasks) and save the figures; returns their paths.

    With ``video_task`` (one of ``tasks``), also the GIF of that task under each protocol (and its
    MP4 when an encoder is importable; :mod:`rlkit.evaluation.protocol_video`), from the same rollouts
    as the figures."""
    import matplotlib

    matplotlib.use("Agg")
    tasks = list(tasks) if tasks is not None else pick_tasks(run.test_tasks, None, 4)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = rollouts(run, protocols, tasks, num_evals=num_evals, seed=seed)
    info = next(iter(results.values())).trace["info"]
    name = lambda stem: out_dir / f"{stem}_itr{run.iteration}.{fmt}"  # noqa: E731
    paths = []
    figure = env_class(run.env_name).path_figure
    if figure == "paths":
        paths.append(plot_point_paths(run, results, tasks, name("paths")))
    elif figure == "velocity" and "x_velocity" in info:
        paths.append(plot_task_quantity(run, results, tasks, name("velocity"), "velocity"))
    elif figure == "goal_distance" and "xy" in info:
        paths.append(plot_task_quantity(run, results, tasks, name("goal_distance"), "goal_distance"))
    paths.append(plot_episode_returns(run, results, tasks, name("returns")))
    if video_task is not None:
        from rlkit.evaluation.protocol_video import write_protocol_video

        paths.extend(write_protocol_video(run, results, video_task,
                                          out_dir / f"protocols_task{video_task}_itr{run.iteration}.gif"))
    return paths


def check_same_env(cfg, run, config_path) -> None:
    """The figures are drawn in the run's own env; a config of another env or other env_params (the
    sparse variant's radius, another task count) would label them with settings they were not made
    with, so it is refused rather than silently replaced by the run's."""
    from rlkit.core.logger import changed_keys, json_roundtrip

    if cfg["env_name"] != run.env_name:
        raise ValueError(f"{config_path} is a {cfg['env_name']!r} config, but the run at {run.run_dir} was trained on "
                         f"{run.env_name!r}: pass the config the run was trained with")
    diff = changed_keys(json_roundtrip(dict(run.env_params)), json_roundtrip(dict(cfg["env_params"])), "env_params.")
    if diff:
        raise ValueError(f"{config_path} sets {', '.join(d.rstrip('.') for d in diff)} other than the run at "
                         f"{run.run_dir} was trained with: pass the config the run was trained with")


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    from rlkit.config import ConfigError, exit_on_config_error, load_config
    from rlkit.core.logger import run_dir_path
    from rlkit.evaluate import parse_protocols
    from rlkit.evaluation.run_loader import RunLoadError, load_run

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        exit_on_config_error(exc)
    util = cfg["util_params"]
    run_dir = run_dir_path(args.base_log_dir or util["base_log_dir"], cfg["env_name"],
                           args.exp_name or util["exp_name"], args.seed)
    try:
        protocols = parse_protocols(args.protocols)
        if args.num_evals < 1:
            raise ValueError(f"--num_evals must be >= 1, got {args.num_evals}")
        run = load_run(run_dir, args.itr, device=choose_device(args.gpu), data_dir=args.data_dir)
        check_same_env(cfg, run, args.config)
        tasks = pick_tasks(run.test_tasks, args.tasks, args.num_tasks)
        video_task = None
        if args.video or args.video_task is not None:
            from rlkit.evaluation.protocol_video import check_video

            check_video(run.env_name)
            video_task = tasks[0] if args.video_task is None else pick_tasks(run.test_tasks, str(args.video_task), 1)[0]
            tasks = tasks if video_task in tasks else [video_task, *tasks]
        paths = make_figures(run, args.out or run_dir / "figures", protocols, tasks, args.num_evals,
                             seed=args.seed, fmt=args.format, video_task=video_task)
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
