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

from benchmarks.bench_csro_step import CONFIGS
from benchmarks.common import print_table, result_name, write_results


def _trainer_and_batches(name: str, device: torch.device):
    from rlkit.torch.csro import CSROHyperParams, CSROTrainer, MetaBatch

    torch.manual_seed(0)
    obs, act, overrides, t, b, n = CONFIGS[name]
    hp = CSROHyperParams(**overrides)
    trainer = CSROTrainer(obs, act, hp, device=device)
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    batches = [MetaBatch(task_ids=torch.arange(t, device=device), context=r(t, n, obs + act + 1), obs=r(t, b, obs),
                         actions=torch.tanh(r(t, b, act)), rewards=r(t, b, 1), next_obs=r(t, b, obs),
                         terminals=torch.zeros(t, b, 1, device=device), extra_obs=r(hp.c_iter - 1, t, b, obs),
                         extra_actions=torch.tanh(r(hp.c_iter - 1, t, b, act))) for _ in range(4)]
    return trainer, batches


def _run(trainer, batches, steps: int, device: torch.device) -> list[float]:
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        trainer.train_step(batches[i % len(batches)])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def measure(name: str, steps: int, device: torch.device) -> dict:
    eager, batches = _trainer_and_batches(name, device)
    compiled = copy.deepcopy(eager)
    for module in compiled.modules().values():
        module.compile()
    torch.manual_seed(5)
    t0 = time.perf_counter()
    _run(compiled, batches, 2, device)  # compiles (forward and backward graphs)
    compile_s = time.perf_counter() - t0
    torch.manual_seed(5)
    _run(eager, batches, 2, device)
    torch.manual_seed(6)
    t_eager = sorted(_run(eager, batches, steps, device))[steps // 2]
    torch.manual_seed(6)
    t_comp = sorted(_run(compiled, batches, steps, device))[steps // 2]
    drift = max((a - b).abs().max().item() for ma, mb in zip(eager.modules().values(), compiled.modules().values())
                for a, b in zip(ma.state_dict().values(), mb.state_dict().values()) if a.is_floating_point())
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
