#!/usr/bin/env python
"""Meta-train CSRO on an offline dataset and evaluate on held-out tasks each iteration.

    python launch_experiment.py configs/point-robot.json --seed 0 [--gpu 0] [--exp_name NAME]
        [algo_params.num_iterations=5 ...] [--resume output/point-robot/CSRO/seed0]

Writes output/ENV/EXP_NAME/seedN/: variant.json, progress.csv, debug.log,
git.txt, TensorBoard events and snapshots (agent_itr_K.pth every 5
iterations, agent.pth every iteration).
"""

from __future__ import annotations

import argparse
import sys

from rlkit.config import ConfigError, exit_on_config_error, load_config
from rlkit.errors import cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="configs/ENV.json (deep-merged over configs/default.py)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algo_params.num_iterations=5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    p.add_argument("--exp_name", default=None, help="run name under output/ENV/ (default: util_params.exp_name)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a run from its last snapshot")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the dataset's SHA-256 checks (= algo_params.verify_data=false)")
    return p.parse_intermixed_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.exp_name is not None:
        overrides.append(f"util_params.exp_name={args.exp_name}")
    if not args.verify:
        overrides.append("algo_params.verify_data=false")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)
    from rlkit.core.logger import RunDirError, SnapshotError
    from rlkit.data import DatasetError
    from rlkit.launchers.meta_train import TrainingDiverged, run_experiment

    try:
        run_dir = run_experiment(cfg, args.seed, gpu=args.gpu, resume=args.resume)
    except (DatasetError, RunDirError, SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
