"""Does the fused Adam kernel (``algo_params.fused_adam``) pay for the CSRO step?

Two trainers from the same start, one with ``torch.optim.Adam`` as shipped
and one with ``fused=True`` for all of its optimizers, take the same steps on
the same batches with the same random draws. Timing alternates between them in
rounds, so a noisy, shared machine slows both alike; medians are reported.
After the timed steps the weights are compared: the fused kernel rounds
differently, so "same numbers" means within float tolerance, not bit-identical.

    python -m benchmarks.bench_fused_adam [--rounds 5] [--steps 3] [--device cpu|cuda] [--configs ...]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import (
    max_weight_drift,
    print_table,
    result_name,
    step_trainer_and_batches,
    time_train_steps,
    write_results,
)


def measure(name: str, rounds: int, steps: int, device: torch.device) -> dict:
    plain, batches = step_trainer_and_batches(name, device, fused_adam=False)
    fused, _ = step_trainer_and_batches(name, device, fused_adam=True)
    assert max_weight_drift(plain, fused) == 0.0  # same start
    times = {"plain": [], "fused": []}
    for r in range(rounds + 1):  # round 0 warms up (allocator, kernels), untimed
        for label, trainer in (("plain", plain), ("fused", fused)):
            torch.manual_seed(100 + r)  # both take the same policy and CLUB draws
            t = time_train_steps(trainer, batches, steps, device)
            if r:
                times[label] += t
    plain_ms, fused_ms = (statistics.median(times[k]) * 1e3 for k in ("plain", "fused"))
    return {"config": name, "plain_ms": plain_ms, "fused_ms": fused_ms, "speedup": plain_ms / fused_ms,
            "steps_compared": (rounds + 1) * steps, "max_weight_drift": max_weight_drift(plain, fused)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds, each alternating plain and fused")
    p.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps, point-robot only (smoke run)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=["point-robot", "cheetah-vel"])
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.configs = 2, 2, ["point-robot"]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [measure(name, args.rounds, args.steps, device) for name in args.configs]
    print_table(rows, ["config", "plain_ms", "fused_ms", "speedup", "steps_compared", "max_weight_drift"])
    out = {"device": str(device), "threads": args.threads, "rounds": args.rounds, "steps": args.steps, "rows": rows}
    write_results(result_name("bench_fused_adam", args.device), out)
    return out


if __name__ == "__main__":
    main()
