"""Milliseconds per CSRO meta-training step (issue #5), with peak memory and a profile.

Configs: point-robot as shipped (no BRAC, so no dual critic), point-robot with
the dual critic trained as the reference does (3 updates; the work the
authors' 7.66 s/step includes), cheetah-vel (BRAC on), and the point-robot
step with the other methods' encoder objectives (FOCAL, CORRO, UNICORN-SS),
reported as a cost ratio against CSRO's. Data is random:
the step's cost does not depend on values. Each config runs in a fresh
subprocess so that its peak RSS is its own.

    python -m benchmarks.bench_csro_step [--quick] [--device cuda] [--profile]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from benchmarks.common import STEP_CONFIGS


def _peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM). ru_maxrss would include the parent's
    high-water mark, which Linux carries across fork + exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(name: str, steps: int, device: str, profile: bool) -> dict:
    import torch

    from benchmarks.common import median_time, step_trainer_and_batches

    torch.set_num_threads(2)
    dev = torch.device(device)
    trainer, batches = step_trainer_and_batches(name, dev)
    counter = iter(range(10**9))

    def step():
        trainer.train_step(batches[next(counter) % 4])
        if dev.type == "cuda":
            torch.cuda.synchronize()

    med, times = median_time(step, repeats=steps, warmup=2)
    out = {"config": name, "ms_per_step": med * 1e3, "times_ms": [x * 1e3 for x in times],
           "peak_rss_mb": _peak_rss_mb()}
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof

        with prof(activities=[ProfilerActivity.CPU]) as p:
            for _ in range(3):
                step()
        table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        out["profile"] = table
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed steps per config (smoke run)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per config (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="print the top ops of a torch.profiler run")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    args = parser.parse_args(argv)
    steps = 3 if args.quick else args.steps
    if args.one:
        print(json.dumps(_measure(args.one, steps, args.device, args.profile)))
        return {}

    from benchmarks.common import print_table, result_name, write_results

    rows = []
    for name in STEP_CONFIGS:
        cmd = [sys.executable, "-m", "benchmarks.bench_csro_step", "--one", name, "--steps", str(steps),
               "--device", args.device] + (["--profile"] if args.profile else [])
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        if args.profile:
            print(f"--- profile: {name}\n{row['profile']}")
    authors = {"point-robot+c": 7660.0}
    csro_ms = next(r["ms_per_step"] for r in rows if r["config"] == "point-robot")
    for r in rows:
        r["authors_ms"] = authors.get(r["config"])
        r["speedup_vs_authors"] = r["authors_ms"] / r["ms_per_step"] if r["authors_ms"] else None
        # another method's step against CSRO's on the same point-robot batch (same networks, other objectives)
        r["cost_vs_csro"] = r["ms_per_step"] / csro_ms if r["config"].startswith("point-robot ") else None
    print_table(rows, ["config", "ms_per_step", "peak_rss_mb", "authors_ms", "speedup_vs_authors", "cost_vs_csro"])
    payload = {"device": args.device, "steps": steps, "rows": [{k: v for k, v in r.items() if k != "profile"}
                                                               for r in rows]}
    if not args.quick:
        write_results(result_name("bench_csro_step", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
