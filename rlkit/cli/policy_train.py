#!/usr/bin/env python
"""Train one SAC behaviour policy per task and write the offline dataset (docs/method.md §1, §3).

    python policy_train.py --config configs/point-robot.json [--split K --split_idx j] [--gpu G]
        [--tasks 0,5,7] [--seed S] [--data_dir DIR] [--preset train|train_point|train_quick]
        [--legacy-layout] [--eval] [--restart] [--ray [ADDRESS]] [hydra overrides, e.g. num_train_steps=2000]

All selected tasks train together in one process (batched networks, lockstep
envs). A killed run restarted with the same command continues from its last
checkpoint. The dataset goes to ``algo_params.data_dir`` of the config unless
``--data_dir`` is given.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rlkit.config import ConfigError, exit_on_config_error, load_config
from rlkit.errors import cli, fail, on_interrupt, this_command, tool_command
from rlkit.core.device import choose_device
from rlkit.data.selection import fitting_steps, range_of
from rlkit.envs import env_class



def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="configs/ENV.json (env_name, env_params, data_dir)")
    p.add_argument("overrides", nargs="*", help="hydra overrides of the SAC preset, e.g. num_train_steps=2000")
    p.add_argument("--split", type=int, default=1, help="split the tasks into K equal groups")
    p.add_argument("--split_idx", type=int, default=0, help="which group this process trains")
    p.add_argument("--tasks", default=None, help="comma-separated task ids (instead of --split)")
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", default=None, help="dataset folder (default: the config's algo_params.data_dir)")
    p.add_argument("--preset", default=None,
                   help="SAC preset: train (MuJoCo), train_point, train_quick (default: by env)")
    p.add_argument("--legacy-layout", dest="legacy_layout", action="store_true",
                   help="write the reference's goal_idx{i}/trj_eval*_step*.npy files")
    p.add_argument("--eval", action="store_true", help="regenerate stochastic episodes from saved checkpoints")
    p.add_argument("--restart", action="store_true",
                   help="generate the selected tasks again although the folder has checkpoints of them: the old "
                        "ones are moved to DATA_DIR/_replaced/TIMESTAMP/, never deleted (without it a job "
                        "never rewrites a checkpoint another job wrote)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run task groups as Ray tasks (no ADDRESS: a local Ray instance)")
    p.add_argument("--groups", type=int, default=None, help="task groups for --ray (default: one per GPU for CUDA jobs, else CPUs//2, at most one per task)")
    p.add_argument("--ray-shared-fs", dest="ray_shared_fs", action="store_true",
                   help="with --ray ADDRESS: the workers see --data_dir too and write into it directly")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_intermixed_args(argv)


def select_tasks(args, n_tasks: int) -> list[int]:
    from rlkit.data import generation_tasks

    if args.tasks:
        try:
            tasks = sorted({int(t) for t in args.tasks.split(",") if t.strip()})
        except ValueError:
            fail(f"--tasks must be comma-separated integers, got {args.tasks!r}")
        bad = [t for t in tasks if not 0 <= t < n_tasks]
        if bad or not tasks:
            fail(f"--tasks {bad or args.tasks} outside 0..{n_tasks - 1} (env_params.n_tasks)")
        return tasks
    try:
        return list(generation_tasks(n_tasks, args.split, args.split_idx))
    except ValueError as exc:
        fail(f"{exc}")


def build_job(args):
    from rlkit.behavior.config import compose_sac_config
    from rlkit.behavior.generate import GenerationJob

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        exit_on_config_error(exc)
    facts = env_class(cfg["env_name"])
    preset = args.preset or facts.sac_preset
    try:
        sac = compose_sac_config(preset, list(args.overrides))
    except ValueError as exc:
        fail(f"{exc}")
    device = choose_device(args.gpu)
    data_dir = Path(args.data_dir or cfg["algo_params"]["data_dir"])
    tasks = select_tasks(args, cfg["env_params"]["n_tasks"])
    return GenerationJob(env_name=cfg["env_name"], env_params=dict(cfg["env_params"]), tasks=tasks, sac=sac,
                         data_dir=data_dir, seed=args.seed, device=str(device), legacy_layout=args.legacy_layout,
                         progress=args.progress, eval_chunk=facts.checkpoint_episode_chunk,
                         extra_config={"preset": preset, "overrides": list(args.overrides)},  # the command that continues it
                         restart=args.restart)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.restart and args.eval:
        fail("--restart regenerates whole checkpoints and --eval only their sampled episodes: give one of them")
    job = build_job(args)
    from rlkit.behavior.generate import tasks_text

    on_interrupt(where=f"generation of {tasks_text(job.tasks)} into {job.data_dir} stopped "
                       "(finished checkpoints and episodes are kept)",
                 how="continue it with the same command" if not args.restart else "continue it with",
                 command=None if not args.restart else [a for a in this_command() if a != "--restart"])
    from rlkit.core.logger import SnapshotError
    from rlkit.data import DatasetError

    try:
        if args.ray is not None:
            from rlkit.behavior.distributed import run_with_ray

            run_with_ray(job, address=None if args.ray == "local" else args.ray, groups=args.groups,
                         regenerate=args.eval, shared_fs=True if args.ray_shared_fs else None)
        elif args.eval:
            from rlkit.behavior.generate import regenerate_sampled

            n = regenerate_sampled(job)
            print(f"regenerated stochastic episodes of {n} checkpoint(s)")
        else:
            from rlkit.behavior.generate import BehaviourPolicyGenerator

            BehaviourPolicyGenerator(job).run()
    except (DatasetError, SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dataset: {job.data_dir} ({tasks_text(job.tasks)})")
    missing = tasks_still_missing(job)
    if missing:
        n_tasks = int(job.env_params["n_tasks"])
        print(f"{len(missing)} of {n_tasks} tasks have no complete data yet; meta-training reads every task, "
              "so generate them first with:\n  " + generate_command(args, missing))
    else:
        print("meta-train on it with:\n  " + meta_train_command(args.config, job))
    return 0


def tasks_still_missing(job) -> list[int]:
    """The config's tasks whose data is absent or lacks a checkpoint of this job's schedule.

    A job on ``--tasks`` or one ``--split`` group writes part of the dataset; the
    meta-training command would then stop at the first missing task, so the next
    step to suggest is generating the rest.
    """
    from rlkit.data.tools import dataset_info

    schedule = set(job.checkpoint_steps())
    info = dataset_info(job.data_dir)
    lacking = {int(t) for t in info["checkpoints"]["tasks_missing_steps"]}
    have = set(info["checkpoints"]["steps"])
    complete = set() if not schedule <= have else set(info["tasks_with_data"]) - lacking
    return [t for t in range(int(job.env_params["n_tasks"])) if t not in complete]


def generate_command(args, tasks: list[int]) -> str:
    """This command again, on ``tasks`` instead of the tasks it was given."""
    parts = [*tool_command("generate"), "--config", str(args.config), "--tasks", ",".join(map(str, tasks))]
    for flag, value in (("--preset", args.preset), ("--data_dir", args.data_dir)):
        if value is not None:
            parts += [flag, str(value)]
    if args.seed != 0:
        parts += ["--seed", str(args.seed)]
    if args.legacy_layout:
        parts.append("--legacy-layout")
    return shlex.join(parts + list(args.overrides))


def meta_train_command(config: str, job) -> str:
    """The launch_experiment.py command whose data selection fits what this job wrote.

    The config's own train_epoch / eval_epoch / n_trj are the paper's; a
    dataset made with another preset or shorter schedule needs them overridden,
    which is easy to get wrong by hand.
    """
    sac = job.sac
    steps = job.checkpoint_steps()
    parts = [*tool_command("train"), str(config), "--seed", "0", f"algo_params.data_dir={job.data_dir}"]
    if steps:  # the rule of train_epoch=auto (rlkit.data.selection), written out
        epochs = ",".join(str(x) for x in range_of(fitting_steps(steps)))
        parts += [f"algo_params.train_epoch=[{epochs}]", f"algo_params.eval_epoch=[{epochs}]"]
    parts.append(f"algo_params.n_trj={int(sac.num_eval_sample_episodes)}")
    return shlex.join(parts)  # a path with a space or a quote must survive the copy and paste


if __name__ == "__main__":
    sys.exit(main())
