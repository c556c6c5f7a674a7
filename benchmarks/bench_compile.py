"""Does ``torch.compile`` pay for the CSRO step? Eager vs every network compiled, same batches.

Compiles each network of the trainer in place (``nn.Module.compile``: the
forward passes; the optimizers and the step's Python stay eager) and times
the point-robot and cheetah-vel steps of ``bench_csro_step`` against eager,
after warm-up (compilation time reported apart). Also reports how far the
weights drift from eager's after the timed steps, from the same start: fused
kernels round differently, so "same numbers" means within float tolerance.

    python -m benchmarks.bench_compile [--steps 10] [--device cpu|cuda] [--configs point-robot cheetah-vel]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from benchmarks.common import (
    max_weight_drift,
    print_table,
    result_name,
    step_trainer_and_batches,
    time_train_steps,
    write_results,
)


def measure(name: str, steps: int, device: torch.device) -> dict:
    eager, batches = step_trainer_and_batches(name, device)
    compiled = copy.deepcopy(eager)
    for module in compiled.modules().values():
        module.compile()
    torch.manual_seed(5)
    t0 = time.perf_counter()
    time_train_steps(compiled, batches, 2, device)  # compiles (forward and backward graphs)
    compile_s = time.perf_counter() - t0
    torch.manual_seed(5)
    time_train_steps(eager, batches, 2, device)
    torch.manual_seed(6)
    t_eager = sorted(time_train_steps(eager, batches, steps, device))[steps // 2]
    torch.manual_seed(6)
    t_comp = sorted(time_train_steps(compiled, batches, steps, device))[steps // 2]
    drift = max_weight_drift(eager, compiled)
    return {"config": name, "eager_ms": t_eager * 1e3, "compiled_ms": t_comp * 1e3,
            "speedup": t_eager / t_comp, "compile_s": compile_s, "max_weight_drift": drift}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="3 timed steps, point-robot only (smoke run)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=["point-robot", "cheetah-vel"])
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.configs = 3, ["point-robot"]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [measure(name, args.steps, device) for name in args.configs]
    print_table(rows, ["config", "eager_ms", "compiled_ms", "speedup", "compile_s", "max_weight_drift"])
    out = {"device": str(device), "threads": args.threads, "steps": args.steps, "rows": rows}
    write_results(result_name("bench_compile", args.device), out)
    return out


if __name__ == "__main__":
    main()
