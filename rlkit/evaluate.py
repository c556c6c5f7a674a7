"""Evaluate a trained run's snapshot with the test-time protocols, outside training.

    python -m rlkit.evaluate RUN_DIR [--itr K] [--protocols online,offline,np_online]
        [--tasks train|test|all] [--num_evals N] [--seed S] [--gpu G] [--out FILE] [--data_dir DIR]

Runs the same batched protocols as meta-training (rlkit/evaluation/protocols.py)
on the chosen tasks, so the numbers are comparable with progress.csv, but on
any snapshot, on train tasks too, and with more repeats. Writes
``RUN_DIR/eval_itrK.csv`` and ``.json`` (or ``--out``; its suffix is replaced)
and prints a table of final returns.

CSV: one row per (protocol, task) with columns ``protocol, split, task, key,
final_return, final_return_std, num_repeats, num_episodes,
return_episode_1..N``, then one row per (protocol, split) with ``task = all``
and ``key`` the reference's column name (``Average_OnlineReturn_all_test_tasks``).
JSON: the same plus run metadata and every repeat's episode returns.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rlkit.errors import cli, usage_name
from rlkit.fileio import atomic_file, atomic_write_text
from rlkit.evaluation.protocols import (ALL_PROTOCOLS, OFFLINE_DATA, PROGRESS_KEYS, PROTOCOL_CLASSES, PROTOCOLS,
                                       ProtocolResult)
from rlkit.core.device import choose_device
from rlkit.evaluation.run_loader import RunLoadError, add_run_arguments, load_run

SPLITS = ("train", "test")


def average_key(protocol: str, split: str) -> str:
    """The reference's name for a protocol's average (``..._all_test_tasks``; train: ``..._all_train_tasks``)."""
    return PROGRESS_KEYS[protocol].replace("_all_test_tasks", f"_all_{split}_tasks")


def parse_protocols(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in ALL_PROTOCOLS]
    if bad or not names:
        raise ValueError(f"unknown protocol(s) {', '.join(bad) or repr(text)}; choose from {', '.join(ALL_PROTOCOLS)}")
    return list(dict.fromkeys(names))


def per_task_rows(result: ProtocolResult, split_of) -> list[dict]:
    """One record per task: final return (mean/std over repeats) and the per-episode curve."""
    rows = []
    for task in result.task_ids:
        reps = [result.episode_returns[i] for i in np.flatnonzero(result.task_of == task)]
        finals = np.array([r[-1] for r in reps])
        n = min(len(r) for r in reps)
        curve = np.mean([r[:n] for r in reps], axis=0)
        rows.append({
            "protocol": result.protocol, "split": split_of(task), "task": int(task),
            "final_return": float(finals.mean()), "final_return_std": float(finals.std()),
            "num_repeats": len(reps), "num_episodes": int(n),
            "return_curve": [float(v) for v in curve], "episode_returns": [[float(v) for v in r] for r in reps],
        })
    return rows


def summarize(results: dict[str, ProtocolResult], split_of) -> dict:
    """Per-task records, averages under the reference's names and mean return curves per split."""
    tasks, averages, curves = [], {}, {}
    for protocol, result in results.items():
        rows = per_task_rows(result, split_of)
        tasks += rows
        for split in SPLITS:
            mine = [r for r in rows if r["split"] == split]
            if not mine:
                continue
            averages[average_key(protocol, split)] = float(np.mean([r["final_return"] for r in mine]))
            n = min(len(r["return_curve"]) for r in mine)
            curves.setdefault(protocol, {})[split] = [float(v) for v in
                                                      np.mean([r["return_curve"][:n] for r in mine], axis=0)]
    return {"averages": averages, "return_curves": curves, "per_task": tasks}


def write_csv(path: Path, summary: dict) -> None:
    """The CSV described in the module docstring, written atomically: a full disk or a kill leaves the
    previous file or none, never a truncated one."""
    rows = summary["per_task"]
    n_ep = max([len(r["return_curve"]) for r in rows] + [0])
    columns = ["protocol", "split", "task", "key", "final_return", "final_return_std", "num_repeats",
               "num_episodes"] + [f"return_episode_{k + 1}" for k in range(n_ep)]
    with atomic_file(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in columns if k in r}, "key": "",
                             **{f"return_episode_{k + 1}": v for k, v in enumerate(r["return_curve"])}})
        for protocol, by_split in summary["return_curves"].items():
            for split, curve in by_split.items():
                mine = [r for r in rows if r["protocol"] == protocol and r["split"] == split]
                writer.writerow({"protocol": protocol, "split": split, "task": "all",
                                 "key": average_key(protocol, split),
                                 "final_return": summary["averages"][average_key(protocol, split)],
                                 "final_return_std": float(np.std([r["final_return"] for r in mine])),
                                 "num_repeats": mine[0]["num_repeats"], "num_episodes": len(curve),
                                 **{f"return_episode_{k + 1}": v for k, v in enumerate(curve)}})


def format_table(summary: dict, protocols: Sequence[str], max_tasks: int = 12) -> str:
    """Tasks x protocols final returns (up to ``max_tasks`` rows), then the averages under their reference names."""
    finals = {(r["task"], r["protocol"]): r["final_return"] for r in summary["per_task"]}
    split = {r["task"]: r["split"] for r in summary["per_task"]}
    tasks = list(dict.fromkeys(r["task"] for r in summary["per_task"]))
    head = f"{'task':>6} {'split':>5} " + " ".join(f"{p:>10}" for p in protocols)
    lines = [head, "-" * len(head)]
    for task in tasks[:max_tasks]:
        cells = " ".join(f"{finals.get((task, p), math.nan):>10.3f}" for p in protocols)
        lines.append(f"{task:>6} {split[task]:>5} {cells}")
    if len(tasks) > max_tasks:
        lines.append(f"... {len(tasks) - max_tasks} more tasks in the CSV / JSON")
    lines.append("-" * len(head))
    width = max(len(k) for k in summary["averages"])
    lines += [f"{k:<{width}}  {v:.4f}" for k, v in summary["averages"].items()]
    return "\n".join(lines)


def output_paths(run_dir: Path, iteration: int, out: str | None) -> tuple[Path, Path]:
    """(csv, json): ``RUN_DIR/eval_itrK.*`` by default; ``--out X.csv`` / ``X.json`` / ``X`` all give ``X.*``."""
    base = run_dir / f"eval_itr{iteration}" if out is None else Path(out)
    if base.suffix in (".csv", ".json"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    return base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")


def run_evaluation(run, protocols: Sequence[str] = PROTOCOLS, tasks: str = "test", num_evals: int | None = None,
                   seed: int = 0) -> dict:
    """Evaluate a :class:`~rlkit.evaluation.run_loader.LoadedRun`; returns the JSON-ready summary."""
    from rlkit.core.progress import progress
    from rlkit.evaluation.protocols import eval_transitions, evaluate

    torch.manual_seed(seed)  # np_online samples policy actions: the same --seed gives the same returns
    task_ids = run.tasks(tasks)
    settings = run.settings(num_evals=num_evals)
    # what the protocols put in their context, not their names: any that reads offline data needs it
    offline = run.offline_context(seed) if any(OFFLINE_DATA in PROTOCOL_CLASSES[p].context for p in protocols) else None
    if offline is not None:  # fail before any rollout if the data is missing
        for split in {run.split_of(t) for t in task_ids}:
            run.offline_buffer(split)
    with progress(total=eval_transitions(settings, len(task_ids), len(protocols)), desc="evaluate",
                  unit="transition") as bar:
        results = evaluate(run.agent, run.env_name, run.env_params, task_ids, settings, protocols=protocols,
                           offline_context=offline, obs_absmax=run.obs_absmax, seed=seed, device=run.device,
                           progress=bar)
    summary = summarize(results, run.split_of)
    meta = {
        "run_dir": str(run.run_dir), "snapshot": str(run.snapshot_path), "iteration": run.iteration,
        "env_name": run.env_name, "protocols": list(protocols), "tasks": tasks, "task_ids": task_ids,
        "seed": seed, "num_evals": settings.num_evals, "num_steps_per_eval": settings.num_steps_per_eval,
        "max_path_length": settings.max_path_length, "num_exp_traj_eval": settings.num_exp_traj_eval,
    }
    return {**meta, **summary}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.evaluate"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--protocols", default=",".join(PROTOCOLS),
                   help="comma-separated subset of " + ",".join(ALL_PROTOCOLS) + " (default: those run in training)")
    p.add_argument("--tasks", choices=("train", "test", "all"), default="test")
    p.add_argument("--num_evals", type=int, default=None, help="repeats per task (default: the run's num_evals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output path without suffix (default: RUN_DIR/eval_itrK)")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)

    try:
        protocols = parse_protocols(args.protocols)
        if args.num_evals is not None and args.num_evals < 1:
            raise ValueError(f"--num_evals must be >= 1, got {args.num_evals}")
        run = load_run(args.run_dir, args.itr, device=choose_device(args.gpu), data_dir=args.data_dir)
        summary = run_evaluation(run, protocols, args.tasks, args.num_evals, args.seed)
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    csv_path, json_path = output_paths(Path(args.run_dir), run.iteration, args.out)
    write_csv(csv_path, summary)
    atomic_write_text(json_path, json.dumps(summary, indent=2) + "\n")
    print(f"{run.env_name} iteration {run.iteration} ({run.snapshot_path.name}), "
          f"{summary['num_evals']} repeat(s) per task, seed {args.seed}")
    print(format_table(summary, protocols))
    print(f"wrote {csv_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
