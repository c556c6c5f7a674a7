"""Loading the point-robot selection from a Minari copy against the native dataset.

Minari keeps one HDF5 group per episode; the selection meta-training loads (40 tasks x 14
checkpoints x 51 episodes) is ~28,000 of them. The conversion seeds the namespace's native cache
(``_csro_native/``, checked against the checksums the conversion recorded); a namespace copied
without it rebuilds the native files from the episodes on its first load and caches them. Rows,
all with checksum verification as training does it (``verify=True``):

* ``native``: the native dataset, verified stamp warm (every run after the first);
* ``minari, first load``: a namespace without its cache, rebuilt from the Minari episodes (the
  cache removed before each repeat);
* ``minari, cached``: with the cache: the converting machine's first load, and every later load.

    python -m benchmarks.bench_minari_load [--quick] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 tasks, 2 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_minari_load_"))
    old_store = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(work / "store")
    try:
        from benchmarks.common import median_time, print_table, write_results
        from rlkit.data import load_offline_data
        from rlkit.data.convert import convert_dataset
        from rlkit.data.minari_format import NATIVE_CACHE, resolve
        from rlkit.data.synthetic import write_synthetic_dataset

        n_tasks, repeats = (4, 2) if args.quick else (40, args.repeats)
        epochs, n_trj = [2200, 5000, 200], 50
        root = write_synthetic_dataset(work / "point-robot", n_tasks, list(range(*epochs)), n_deterministic=1,
                                       n_sampled=n_trj, length=20, obs_dim=2, act_dim=2, seed=0,
                                       env_name="point-robot")
        convert_dataset(root, "minari:bench/point-robot", "minari")
        cache = resolve("minari:bench/point-robot")[0] / NATIVE_CACHE
        tasks = list(range(n_tasks))

        def load(src) -> int:
            return len(load_offline_data(src, tasks, epochs, n_trj, 1, obs_dim=2, act_dim=2, verify=True))

        def first_load() -> int:
            shutil.rmtree(cache, ignore_errors=True)
            return load("minari:bench/point-robot")

        rows = []
        for name, fn in (("native", lambda: load(root)), ("minari, first load", first_load),
                         ("minari, cached", lambda: load("minari:bench/point-robot"))):
            med, times = median_time(fn, repeats)
            rows.append({"source": name, "transitions": fn(), "median_s": med, "times_s": times})
        for r in rows:
            r["vs_native"] = r["median_s"] / rows[0]["median_s"]
    finally:
        if old_store is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old_store
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ["source", "transitions", "median_s", "vs_native"])
    payload = {"quick": args.quick, "repeats": repeats, "tasks": n_tasks, "load_avg": os.getloadavg(), "rows": rows}
    if not args.quick:
        write_results("bench_minari_load", payload)
    return payload


if __name__ == "__main__":
    main()
