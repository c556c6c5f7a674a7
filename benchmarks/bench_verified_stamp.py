"""What checking the dataset's integrity costs on every load: the verified stamp vs hashing every file.

Meta-training checks the SHA-256 of every file it loads, unless the file is in the
verified stamp (``DATASET/.verified.json``, rlkit.data.loader.VerifiedStamp) with the
same size, modification time, inode change time and inode as when it last passed. The
two extra fields (ctime, inode) are what catches a file edited in place with its size
and mtime kept; they come from the stat call the stamp already made. This script
times, on the point-robot selection (40 tasks x 14 checkpoints x 51 episodes, 560
native files, what meta-training loads):

* ``no check``: ``verify=False``, sizes only (the baseline);
* ``stamp hit``: ``verify=True`` with a warm stamp (every later run);
* ``hash every file``: ``verify=True`` with the stamp removed before each load (the
  first run, or every run without the stamp);
* ``stamp keys``: the per-file stat and key of all 560 files, the stamp's own cost,
  with the (size, mtime) key of before and the (size, mtime, ctime, inode) key of now.

    python -m benchmarks.bench_verified_stamp [--quick] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny dataset, 2 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from benchmarks.common import median_time, print_table, write_results
    from rlkit.data import load_offline_data, split_tasks
    from rlkit.data.loader import VerifiedStamp
    from rlkit.data.native import read_metadata
    from rlkit.data.synthetic import write_synthetic_dataset

    if args.quick:
        n_tasks, n_train, n_test, epochs, n_trj, repeats = 4, 3, 1, [2200, 2600, 200], 5, 2
    else:
        n_tasks, n_train, n_test, epochs, n_trj, repeats = 40, 30, 10, [2200, 5000, 200], 50, args.repeats
    train, test = split_tasks(n_tasks, n_train, n_test, interpolation=True)
    work = Path(tempfile.mkdtemp(prefix="bench_verified_stamp_"))
    try:
        root = write_synthetic_dataset(work / "d", n_tasks, list(range(*epochs)), n_deterministic=1, n_sampled=n_trj,
                                       length=20, obs_dim=2, act_dim=2, seed=0, env_name="point-robot")
        stamp = root / VerifiedStamp.NAME

        def load(verify: bool, cold: bool = False) -> None:
            if cold:
                stamp.unlink(missing_ok=True)
            for tasks in (train, test):
                load_offline_data(root, tasks, epochs, n_trj, 1, obs_dim=2, act_dim=2, verify=verify)

        files = read_metadata(root)["files"]

        def keys(fields) -> None:
            for rel in files:
                st = (root / rel).stat()
                [getattr(st, f) for f in fields]

        rows = []
        for name, fn in (("no check", lambda: load(False)), ("stamp hit", lambda: load(True)),
                         ("hash every file", lambda: load(True, cold=True)),
                         ("stamp keys (size, mtime)", lambda: keys(("st_size", "st_mtime_ns"))),
                         ("stamp keys (size, mtime, ctime, inode)",
                          lambda: keys(("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")))):
            med, times = median_time(fn, repeats)
            rows.append({"variant": name, "files": len(files), "median_s": med, "times_s": times})
        base = rows[0]["median_s"]
        for r in rows[:3]:
            r["vs_no_check"] = r["median_s"] / base
        rows[3]["vs_no_check"] = rows[4]["vs_no_check"] = None
        rows[4]["vs_old_key"] = rows[4]["median_s"] / rows[3]["median_s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["variant", "files", "median_s", "vs_no_check", "vs_old_key"])
    payload = {"quick": args.quick, "repeats": repeats, "load_avg": os.getloadavg(), "rows": rows}
    if not args.quick:
        write_results("bench_verified_stamp", payload)
    return payload


if __name__ == "__main__":
    main()
