"""`make bench`: every hot-path benchmark in turn; each prints a table and writes benchmarks/results/*.json.

    python -m benchmarks.run_all [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

BENCHMARKS = [
    "benchmarks.bench_data_load",       # issue #3: dataset loading (native vs legacy)
    "benchmarks.bench_minari_load",     # issue 21: loading from a Minari copy (first load, cached) vs native
    "benchmarks.bench_verified_stamp",  # issue 19: the integrity check's cost per load (stamp vs hashing)
    "benchmarks.bench_buffer_sample",   # issue #3: meta-batch sampling vs per-task loop
    "benchmarks.bench_sequence_batch",  # issue 29: trajectory-segment batches vs per-task / per-window loops
    "benchmarks.bench_sac_update",      # issue #4: batched SAC update vs per-task loop
    "benchmarks.bench_generation",      # issue #4: data-generation env steps/s vs one task at a time
    "benchmarks.bench_csro_step",       # issue #5: ms per CSRO meta-training step
    "benchmarks.bench_method_steps",    # issue 29: every method preset's step against CSRO's
    "benchmarks.bench_thread_policy",   # issue 31: the step beside a held core, per thread policy
    "benchmarks.bench_relabel",         # CORRO-relabel's negatives: queried rows vs the whole context
    "benchmarks.bench_eval",            # issue #6: one evaluation pass, batched vs sequential
    "benchmarks.bench_compile",         # issue #9: does torch.compile of the step's networks pay?
    "benchmarks.bench_fused_adam",      # issue #9: does the fused Adam kernel pay?
]


# benchmarks without a device: the CPU-only hot paths (reading files into host memory)
HOST_ONLY = {"benchmarks.bench_data_load", "benchmarks.bench_verified_stamp", "benchmarks.bench_minari_load"}


def main(argv=None) -> int:
    """``--quick`` goes to every benchmark, ``--device D`` to those that place work on a device."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes: a smoke run, not a measurement")
    p.add_argument("--device", default=None, help="cpu or cuda, for the benchmarks that place work on a device")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    host_argv = ["--quick"] if args.quick else []
    argv = host_argv + (["--device", args.device] if args.device else [])
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        importlib.import_module(name).main(host_argv if name in HOST_ONLY else argv)
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
