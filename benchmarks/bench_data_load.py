"""Seconds to load the point-robot selection (issue #3): native format vs the reference layout.

The dataset has the point-robot shape: 40 tasks x 14 checkpoints (2200..4800)
x (1 deterministic + 50 sampled) episodes of 20 steps, obs 2, act 2. The
selection is what meta-training loads: train tasks (30) with ``train_epoch``
and test tasks (10) with ``eval_epoch``, both [2200, 5000, 200], n_trj 50,
sample 1: 28,000 legacy files, 560,000 transitions. The authors' loader takes
11.5 s for it on the reference machine. Targets: native < 0.25 s, legacy < 4 s.

Synthetic data is written to ``--workdir`` (default: a fresh temp dir, deleted
afterwards); page cache is warm after writing, so the medians are warm-cache
times (the first load is reported too).

    python -m benchmarks.bench_data_load [--quick] [--repeats 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

AUTHORS_SECONDS = 11.5
TARGETS = {"native": 0.25, "legacy": 4.0}


def _load_selection(root, train, test, steps, n_trj, workers=None):
    from rlkit.data import load_offline_data

    a = load_offline_data(root, train, steps, n_trj, 1, obs_dim=2, act_dim=2, workers=workers)
    b = load_offline_data(root, test, steps, n_trj, 1, obs_dim=2, act_dim=2, workers=workers)
    return len(a) + len(b)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny dataset, 2 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", help="where to write the synthetic datasets (default: a temp dir)")
    parser.add_argument("--json", help="also write the results here (default: benchmarks/results/ unless --quick)")
    args = parser.parse_args(argv)

    from benchmarks.common import median_time, print_table, write_results
    from rlkit.data import split_tasks
    from rlkit.data.synthetic import write_synthetic_dataset

    if args.quick:
        n_tasks, n_train, n_test, steps, n_trj, repeats = 4, 3, 1, [2200, 2600, 200], 5, 2
    else:
        n_tasks, n_train, n_test, steps, n_trj, repeats = 40, 30, 10, [2200, 5000, 200], 50, args.repeats
    step_list = list(range(*steps))
    train, test = split_tasks(n_tasks, n_train, n_test, interpolation=True)

    own_dir = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data_load_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for layout in ("native", "legacy"):
            root = work / f"point-robot-{layout}"
            t0 = time.perf_counter()
            write_synthetic_dataset(root, n_tasks, step_list, n_deterministic=1, n_sampled=n_trj, length=20,
                                    obs_dim=2, act_dim=2, layout=layout, seed=0, env_name="point-robot")
            write_s = time.perf_counter() - t0
            # legacy: the default (one process on <= 3 CPUs) and 2 worker processes
            variants = [("", None)] if layout == "native" else [("", None), (" (2 processes)", 2)]
            files = sum(len(fs) for _, _, fs in os.walk(root))
            for suffix, workers in variants:
                t0 = time.perf_counter()
                n = _load_selection(root, train, test, steps, n_trj, workers)
                first = time.perf_counter() - t0
                med, times = median_time(lambda: _load_selection(root, train, test, steps, n_trj, workers),
                                         repeats, warmup=0)
                rows.append({
                    "layout": layout + suffix, "files_on_disk": files, "transitions": n, "first_s": first,
                    "median_s": med, "times_s": times, "target_s": TARGETS[layout],
                    "meets_target": med < TARGETS[layout], "authors_s": AUTHORS_SECONDS,
                    "speedup_vs_authors": AUTHORS_SECONDS / med, "write_s": write_s,
                })
            shutil.rmtree(root)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)

    print_table(rows, ["layout", "files_on_disk", "transitions", "first_s", "median_s", "target_s", "meets_target",
                       "authors_s", "speedup_vs_authors"])
    payload = {"quick": args.quick, "repeats": repeats, "load_avg": os.getloadavg(),
               "selection": {"tasks": n_tasks, "train": n_train, "test": n_test, "epochs": steps, "n_trj": n_trj},
               "rows": rows}
    if args.json:
        Path(args.json).write_text(__import__("json").dumps(payload, indent=2))
    elif not args.quick:
        write_results("bench_data_load", payload)
    return payload


if __name__ == "__main__":
    main()
