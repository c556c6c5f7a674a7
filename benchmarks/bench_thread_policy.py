"""The default thread policy on a busy machine: one CSRO step, quiet vs beside a process that holds a core.

On a 2-core machine a 2-thread torch step whose partner core is busy runs
slower than one thread would (measured 1.09 s against 0.68 s), because
OpenMP's worker threads spin while they wait for each other. Importing
:mod:`rlkit` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (the
policy this script measures), so waiting threads sleep instead.

Each variant runs in a fresh subprocess, because OpenMP reads its settings
once, when torch loads it:

* ``1 thread``: the baseline every busy ratio is against;
* ``2 threads, torch's default``: torch imported before rlkit, OpenMP's own
  spin-then-sleep wait (what every run did before the policy);
* ``2 threads, rlkit's policy``: rlkit imported first (every command does);
* ``2 threads, short spin``: torch's default wait with ``GOMP_SPINCOUNT=10000``
  (spin briefly, then sleep), the alternative policy.

Each is timed on the quiet machine and beside a competitor the script starts
itself (a Python busy loop, one per ``--hold`` core), over ``--steps`` steps
(median). The step is ``benchmarks.common``'s point-robot step with the dual
critic, the work of the authors' step. The machine's load average before each
measurement is recorded: on a machine that is already busy the "quiet" rows
are not quiet, and the script says so.

    python -m benchmarks.bench_thread_policy [--quick] [--steps 15] [--hold 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

STEP = "point-robot+c"
QUICK_STEP = "point-robot"  # the smoke run's step: no dual critic
VARIANTS = {  # name: (threads, import rlkit before torch, extra environment)
    "1 thread": (1, True, {}),
    "2 threads, torch's default": (2, False, {}),
    "2 threads, rlkit's policy": (2, True, {}),
    "2 threads, short spin": (2, False, {"GOMP_SPINCOUNT": "10000"}),  # the alternative: spin briefly, then sleep
}
BUSY_LOOP = "while True:\n    pass\n"


def _worker(threads: int, rlkit_first: bool, steps: int, step: str, warmup: int = 2) -> dict:
    """Time ``steps`` steps in this process (called in a fresh interpreter by :func:`_run_variant`)."""
    policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")  # what OpenMP reads when torch loads it
    if rlkit_first:
        import rlkit  # noqa: F401 - sets the thread policy before torch loads OpenMP

        policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    import torch

    from benchmarks.common import median_time, step_trainer_and_batches

    torch.set_num_threads(threads)
    trainer, batches = step_trainer_and_batches(step, torch.device("cpu"))
    counter = iter(range(10**9))
    med, times = median_time(lambda: trainer.train_step(batches[next(counter) % len(batches)]), steps, warmup=warmup)
    return {"s_per_step": med, "times_s": times, "omp_wait_policy": policy}


def _run_variant(name: str, steps: int, step: str, warmup: int) -> dict:
    threads, rlkit_first, extra = VARIANTS[name]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **extra)
    code = (f"import json; from benchmarks.bench_thread_policy import _worker; "
            f"print(json.dumps(_worker({threads}, {rlkit_first}, {steps}, {step!r}, {warmup})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start_competitors(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
    time.sleep(1.0)  # let the scheduler settle them on their cores
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 step a variant of the cheaper point-robot step (smoke run); writes no results")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per variant and condition (median)")
    parser.add_argument("--hold", type=int, default=1, help="cores the competitor holds (busy loops started here)")
    parser.add_argument("--json", help="also write the results here (default: benchmarks/results/ unless --quick)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hold < 1:
        parser.error("--steps and --hold must be at least 1")

    from benchmarks.common import print_table, result_name, write_results

    steps, step, warmup = (1, QUICK_STEP, 0) if args.quick else (args.steps, STEP, 2)
    rows = []
    for condition in ("quiet", f"{args.hold} core held"):
        for name in VARIANTS:
            load = os.getloadavg()[0]
            procs = _start_competitors(args.hold) if condition != "quiet" else []
            try:
                res = _run_variant(name, steps, step, warmup)
            finally:
                _stop(procs)
            rows.append({"condition": condition, "variant": name, "s_per_step": res["s_per_step"],
                         "omp_wait_policy": res["omp_wait_policy"], "load_before": load, "times_s": res["times_s"]})
    base = {r["condition"]: r["s_per_step"] for r in rows if r["variant"] == "1 thread"}
    quiet_default = next(r["s_per_step"] for r in rows if r["condition"] == "quiet" and r["variant"] == "2 threads, torch's default")
    for r in rows:
        r["vs_1_thread"] = r["s_per_step"] / base[r["condition"]]
        r["vs_quiet_torch_default"] = r["s_per_step"] / quiet_default
    print_table(rows, ["condition", "variant", "omp_wait_policy", "s_per_step", "vs_1_thread", "load_before"])
    cores = len(os.sched_getaffinity(0))
    if any(r["load_before"] > 0.5 for r in rows if r["condition"] == "quiet"):
        print("note: the machine was not quiet (load average above 0.5 before a 'quiet' row)")
    payload = {"quick": args.quick, "steps": steps, "step": step, "hold": args.hold, "cores": cores, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    elif not args.quick:
        write_results(result_name("bench_thread_policy", "cpu"), payload)
    return payload


if __name__ == "__main__":
    main()
