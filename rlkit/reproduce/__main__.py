"""``python -m rlkit.reproduce ENV [--scale cpu|paper] [--budget 50m] ...``: see :mod:`rlkit.reproduce`.

``--methods CSRO --seeds 1`` narrows the work to part of the plan (say, the run
a table still lacks first, or one share of the plan per machine); the table is
always assembled from every record there is.

Exit status: 0 when every run of the plan (or of the selection) has its record, 3 when the budget ran out with work left (run the same command
again: it resumes), 2 on a user error (one line on stderr), 130 when
interrupted by Ctrl-C and 143 by SIGTERM (the children are stopped first, one
line names the command that resumes: the same one).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rlkit.config import ConfigError
from rlkit.errors import cli, on_interrupt, usage_name
from rlkit.fileio import atomic_write_text
from rlkit.reproduce.plan import load_plan, plan_path
from rlkit.reproduce.records import load_dataset_profile, load_records
from rlkit.reproduce.renames import PlanRenamed
from rlkit.reproduce.report import markdown, plot_curves
from rlkit.reproduce.runner import (
    BUDGET_EXIT,
    Budget,
    Layout,
    ReproduceError,
    Reproduction,
    parse_budget,
)

REPO = Path(__file__).resolve().parents[2]


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, e.g. CSRO or CSRO,FOCAL")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers, e.g. 0 or 0,1") from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.reproduce"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env", help="env of the plan (point-robot, cheetah-vel, ...) or a plan file PLAN.yaml")
    p.add_argument("--scale", default="cpu", help="plan scale: configs/reproduce/ENV-SCALE.yaml (default: cpu)")
    p.add_argument("--budget", default=None, help="wall-clock budget, e.g. 50m or 2h; stops cleanly, resumes next time")
    p.add_argument("--parallel", type=int, default=None, help="runs side by side (default: the plan's)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: the plan's threads_per_run; 0 lets torch decide)")
    p.add_argument("--methods", type=_names, default=None,
                   help="only these of the plan's methods, comma-separated (default: all)")
    p.add_argument("--seeds", type=_seeds, default=None,
                   help="only these of the plan's seeds, comma-separated (default: all)")
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index for every child (default: CPU)")
    p.add_argument("--out", type=Path, default=REPO / "output" / "reproduce",
                   help="work folder: datasets, run directories, logs (default: output/reproduce)")
    p.add_argument("--records", type=Path, default=REPO / "docs" / "results" / "records",
                   help="where result records go (committed; default: docs/results/records)")
    p.add_argument("--report-dir", type=Path, default=REPO / "docs" / "results",
                   help="where ENV-SCALE.md and its figure are written (default: docs/results)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table and figure from the records")
    p.add_argument("--status", action="store_true",
                   help="only say what is done: the dataset and each run (recorded, iterations, last returns)")
    return p.parse_args(argv)


def write_report(plan, records_root: Path, report_dir: Path, command: str) -> Path:
    records = load_records(records_root, plan)
    report_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_curves(plan, records, report_dir / f"{plan.name}.png")
    md = report_dir / f"{plan.name}.md"
    atomic_write_text(md, markdown(plan, records, figure.name if figure else None, command,  # a committed page:
                                   load_dataset_profile(records_root, plan)))  # never half of one
    return md


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        budget_s = parse_budget(args.budget)  # before anything else: a budget too small to start anything
        try:
            plan = load_plan(plan_path(args.env, args.scale))
        except PlanRenamed as renamed:  # the old name still answers --status: where its records went
            if not args.status:
                raise
            print(f"{renamed.rename.line(args.records)}: python -m rlkit.reproduce {args.env} --scale "
                  f"{renamed.rename.new.removeprefix(args.env + '-')} --status")
            return 0
        if args.parallel is not None and args.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1, got {args.parallel}")
        if args.threads is not None and args.threads < 0:
            raise ConfigError(f"--threads must be 0 (torch decides) or more, got {args.threads}")
        budget = Budget(budget_s)
        if args.status:
            repro = Reproduction(plan, Layout.for_plan(args.out, plan, args.records), budget,
                                 methods=args.methods, seeds=args.seeds)
            print(f"[{plan.name}] " + "\n  ".join(repro.status()))
            return 0
        command = f"python -m rlkit.reproduce {args.env} --scale {args.scale}"
        done = True
        if not args.report_only:
            layout = Layout.for_plan(args.out, plan, args.records)
            repro = Reproduction(plan, layout, budget, gpu=args.gpu, parallel=args.parallel, threads=args.threads,
                                 echo=lambda m: print(m, flush=True), methods=args.methods, seeds=args.seeds)
            print(f"[{plan.name}] {len(repro.methods)} methods x {len(repro.seeds)} seeds; work in {layout.root}; "
                  f"budget {args.budget or 'none'}", flush=True)
            # Ctrl-C and SIGTERM (rlkit.errors.cli) stop the children first: they run in sessions of their
            # own, so they would otherwise outlive the runner and hold their run locks
            on_interrupt(where=f"[{plan.name}] the reproduction stopped (finished runs, records and the dataset "
                               "so far are kept)", how="continue it with the same command")
            done = repro.run()
        md = write_report(plan, args.records, args.report_dir, command)
    except (ConfigError, ReproduceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[{plan.name}] table: {md}")
    if not done:
        print(f"[{plan.name}] budget reached with work left; run the same command again to continue:\n  "
              + " ".join(shlex.quote(a) for a in ["python", "-m", "rlkit.reproduce", *(argv or sys.argv[1:])]))
        return BUDGET_EXIT
    if not args.report_only and (args.methods or args.seeds):
        rest = Reproduction(plan, Layout.for_plan(args.out, plan, args.records), budget).pending()
        if rest:
            print(f"[{plan.name}] the selected runs are done; still without a record: "
                  + ", ".join(f"{m} seed {s}" for m, s in rest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
