#!/usr/bin/env python
"""Meta-train CSRO on an offline dataset and evaluate on held-out tasks each iteration.

    python launch_experiment.py configs/point-robot.json --seed 0 [--gpu 0] [--exp_name NAME]
        [algo_params.num_iterations=5 ...] [--resume output/point-robot/CSRO/seed0] [--wandb]

A sweep, one run per (config, seed), in this process or as Ray tasks:

    python launch_experiment.py CONFIG [CONFIG ...] --seeds 0,1,2
        [--ray [ADDRESS]] [--cpus-per-run N] [--gpus-per-run F] [overrides ...]

Writes output/ENV/EXP_NAME/seedN/: variant.json, progress.csv, debug.log,
git.txt, TensorBoard events and snapshots (agent_itr_K.pth every 5
iterations, agent.pth every iteration). A sweep's runs write exactly the
folders --seed N would; running the same sweep again resumes unfinished runs
and skips finished ones. A run folder made with other settings is never
resumed or skipped into (only algo_params.num_iterations may grow): use
another --exp_name, or --restart to move the old folder aside and start over.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from rlkit.config import ConfigError, check_seed, exit_on_config_error, shipped_configs
from rlkit.errors import UserError, cli, on_interrupt, this_command


class UsageError(UserError, ValueError):
    """Options that do not go together (one line)."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="CONFIG|KEY=VALUE",
                   help="one or more configs/ENV.json (deep-merged over the defaults in rlkit/defaults.py), then dotted "
                        "overrides for all of them, e.g. algo_params.num_iterations=5")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default 0)")
    p.add_argument("--seeds", default=None, metavar="S,S,...", help="a sweep: one run per seed (and per config)")
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    p.add_argument("--exp_name", default=None,
                   help="run name under output/ENV/ (default: util_params.exp_name; where that is a method's name, "
                        "the algo_type run, e.g. CORRO for algo_type=CORRO)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a run from its last snapshot")
    p.add_argument("--restart", action="store_true",
                   help="start the run (every run of a sweep) over: an existing run folder is renamed to "
                        "replaced-seedN-TIMESTAMP beside it, never deleted")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the dataset's SHA-256 checks (= algo_params.verify_data=false)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (= util_params.wandb=true)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the sweep's runs as Ray tasks: a local Ray instance, or the cluster at ADDRESS")
    p.add_argument("--cpus-per-run", dest="cpus_per_run", type=float, default=None,
                   help="with --ray: CPUs reserved per run (default 1)")
    p.add_argument("--gpus-per-run", dest="gpus_per_run", type=float, default=None,
                   help="with --ray: GPUs per run, a fraction shares one (default 0: CPU)")
    args = p.parse_intermixed_args(argv)
    args.configs, args.overrides = split_inputs(args.inputs)
    return args


# a dotted config key: what an override without its "=VALUE" looks like
_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def split_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Configs (``*.json``, or anything without ``=``) and ``KEY=VALUE`` overrides, each in order.

    A word that is no file and reads like a dotted key (``algo_params.num_iterations``)
    is an override missing its value, and is reported as one, not as a missing config.
    """
    for x in inputs:
        if "=" not in x and not x.endswith(".json") and _DOTTED_KEY.fullmatch(x) and not Path(x).exists() \
                and x not in shipped_configs():
            raise UsageError(f"{x!r} is neither a config file nor an override: an override needs a value, "
                             f"KEY=VALUE (e.g. {x}=5); the shipped env configs are named by env: "
                             f"{', '.join(shipped_configs())}")
    configs = [x for x in inputs if x.endswith(".json") or "=" not in x]
    overrides = [x for x in inputs if x not in configs]
    if not configs:
        raise UsageError("no config given: launch_experiment.py configs/ENV.json [KEY=VALUE ...]")
    return configs, overrides


def check_sweep_args(args: argparse.Namespace) -> bool:
    """Whether the command is a sweep; a bad combination of options is a one-line error."""
    if args.seed is not None and args.seeds is not None:
        raise UsageError("give either --seed N (one run) or --seeds A,B,... (a sweep), not both")
    from rlkit.launchers.sweep import grid_axes

    sweep = args.seeds is not None or len(args.configs) > 1 or args.ray is not None or bool(grid_axes(args.overrides)[1])
    if sweep and args.resume:
        raise UsageError("--resume continues one run; a sweep resumes its unfinished runs by itself (run it again)")
    if args.resume and args.restart:
        raise UsageError("--resume continues a run and --restart starts it over: give one of them")
    if args.seed is not None:
        try:
            check_seed(args.seed)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if args.ray is not None and "=" in args.ray and "://" not in args.ray:
        # argparse gives --ray the next word: an override there would be dropped without a word
        raise UsageError(f"--ray took {args.ray!r} for the Ray address; put KEY=VALUE overrides before --ray, "
                         "or write --ray=ADDRESS")
    if args.ray is None and (args.cpus_per_run is not None or args.gpus_per_run is not None):
        raise UsageError("--cpus-per-run / --gpus-per-run apply to Ray tasks: add --ray")
    if args.ray is not None and args.gpu is not None:
        raise UsageError("with --ray, GPUs are given per run: use --gpus-per-run instead of --gpu")
    return sweep


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    sweep = check_sweep_args(args)
    overrides = list(args.overrides)
    if args.exp_name is not None:
        overrides.append(f"util_params.exp_name={args.exp_name}")
    if not args.verify:
        overrides.append("algo_params.verify_data=false")
    if args.wandb:
        overrides.append("util_params.wandb=true")
    if sweep:
        return run_sweep(args, overrides)
    from rlkit.core.logger import RunDirError, SnapshotError
    from rlkit.data import DatasetError
    from rlkit.launchers.meta_train import TrainingDiverged, load_run_config, run_directory, run_experiment

    try:
        cfg = load_run_config(args.configs[0], overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)
    seed = 0 if args.seed is None else args.seed
    target = run_directory(cfg, seed)
    on_interrupt(where=lambda: f"run {target} stopped {_progress_of(target)}",
                 command=lambda: _resume_command(argv, target),
                 how=lambda: "start it over with" if _must_start_over(target) else "continue it with")
    try:
        run_dir = run_experiment(cfg, seed, gpu=args.gpu, resume=args.resume, restart=args.restart)
    except (DatasetError, RunDirError, SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"run directory: {run_dir}")
    return 0


def run_sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    """Plan every (config, seed) run (all configs checked first), run them, print a summary."""
    from rlkit.core.tracking import import_wandb
    from rlkit.launchers import sweep

    seeds = sweep.parse_seeds(args.seeds) if args.seeds is not None else [0 if args.seed is None else args.seed]
    try:
        runs = sweep.plan_sweep(args.configs, seeds, overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)
    if any(r.cfg["util_params"]["wandb"] for r in runs):
        import_wandb()  # missing: one error now, not one per run
    # changed settings refuse the whole sweep before any run starts (or Ray does); --restart starts all over
    states = None if args.restart else sweep.refuse_changed_settings(runs)
    on_interrupt(where=lambda: _sweep_stopped_at(runs),
                 how="run the same command again without --restart (finished runs are kept, unfinished "
                     "ones resume)" if args.restart else
                 "run the same command again (finished runs are kept, unfinished ones resume)")
    if args.ray is None:
        outcomes = sweep.run_sequential(runs, gpu=args.gpu, restart=args.restart)
    else:
        outcomes = sweep.run_on_ray(runs, None if args.ray == "local" else args.ray,
                                    cpus_per_run=1 if args.cpus_per_run is None else args.cpus_per_run,
                                    gpus_per_run=0 if args.gpus_per_run is None else args.gpus_per_run,
                                    restart=args.restart, states=states)
    return sweep.summarize(outcomes)


def _progress_of(run_dir: Path) -> str:
    """``after iteration K`` (its last progress row) or ``before its first iteration finished``."""
    from rlkit.core.logger import PROGRESS_FILE

    last = None
    try:
        with open(Path(run_dir) / PROGRESS_FILE, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                last = row.get("Epoch") or last
        return f"after iteration {int(float(last))}" if last is not None else "before its first iteration finished"
    except (OSError, ValueError, csv.Error):
        return "before its first iteration finished"


def _must_start_over(run_dir: Path) -> bool:
    """Progress rows but no snapshot (the first snapshot lost to a full disk, or a kill between the row
    and the snapshot): the same command and --resume both refuse such a folder; --restart moves it aside."""
    from rlkit.core.logger import holds_a_run, latest_snapshot

    return latest_snapshot(run_dir) is None and holds_a_run(run_dir)


def _resume_command(argv: list[str] | None, run_dir: Path) -> list[str]:
    """The command that continues an interrupted (or failed) run: the same one with ``--resume RUN_DIR``,
    once the run has a snapshot; with ``--restart`` when it has progress rows but no snapshot
    (:func:`_must_start_over`); before that, the same command (it starts the run again)."""
    from rlkit.core.logger import latest_snapshot

    args = list(sys.argv[1:] if argv is None else argv)
    if _must_start_over(run_dir):
        return this_command([*_without_run_flags(args), "--restart"])
    if latest_snapshot(run_dir) is None:
        return this_command(args)
    return this_command([*_without_run_flags(args), "--resume", str(run_dir)])


def _without_run_flags(args: list[str]) -> list[str]:
    """``args`` without --resume X / --resume=X and --restart (argparse also takes --resu, --resum, --resta)."""
    kept, skip = [], False
    for a in args:
        name = a.split("=", 1)[0]
        if len(name) >= 6 and "--restart".startswith(name):
            continue
        if skip or (len(name) >= 4 and "--resume".startswith(name)):
            skip = not skip and "=" not in a
            continue
        kept.append(a)
    return kept


def _sweep_stopped_at(runs) -> str:
    """The sweep's run that was going when it stopped: the one whose debug.log was written last."""
    from rlkit.core.logger import DEBUG_LOG

    logs = [(r.run_dir / DEBUG_LOG, r) for r in runs if (r.run_dir / DEBUG_LOG).is_file()]
    if not logs:
        return f"the sweep of {len(runs)} run(s) stopped before its first run started"
    _, run = max(logs, key=lambda item: item[0].stat().st_mtime)
    return f"the sweep of {len(runs)} run(s) stopped in {run.run_dir} {_progress_of(run.run_dir)}"


if __name__ == "__main__":
    sys.exit(main())
