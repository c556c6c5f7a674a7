"""Time one behaviour-SAC update: E tasks batched (EnsembleSAC) vs E single-task agents in a loop.

The baseline is what the reference does per task (one process per task, a
plain nn.Linear SAC each; here: ``SingleTaskSAC`` agents updated one after the
other). Both sides get ready-made batches already on the device, so this times
the update only (critic + actor + temperature step; the target update on every
other step, as in training). Medians over repeats.

    python -m benchmarks.bench_sac_update            # full table (a few minutes on 2 CPU cores)
    python -m benchmarks.bench_sac_update --quick    # smoke run, seconds
    python -m benchmarks.bench_sac_update --keep-freed-memory   # same, glibc keeps big blocks
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time

import torch

from benchmarks.common import print_table, result_name, write_results
from rlkit.behavior.reference_sac import SingleTaskSAC
from rlkit.behavior.sac import EnsembleSAC

# name: (hidden_dim, batch_size, obs_dim, act_dim, repeats)
SIZES = {
    "quick": (64, 128, 2, 2, 30),         # configs/sac/train_quick.yaml, point-robot dims
    "reference": (1024, 1024, 20, 6, 7),  # configs/sac/train.yaml, cheetah-vel dims
}
SMOKE = {"smoke": (32, 32, 2, 2, 3)}


def _batch(E: int, B: int, obs_dim: int, act_dim: int, device: torch.device, g: torch.Generator) -> dict:
    r = lambda *s: torch.randn(*s, generator=g).to(device)
    return {"obs": r(E, B, obs_dim), "action": torch.tanh(r(E, B, act_dim)), "reward": r(E, B, 1),
            "next_obs": r(E, B, obs_dim), "terminated": torch.zeros(E, B, 1, device=device)}


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks instead of returning them to the OS.

    With glibc's defaults every tensor over 32 MiB is mmap-ed and unmapped again,
    so each update page-faults its big activations back in (E=8 at hidden 1024,
    batch 1024: ~4M minor faults per 10 updates, ~20% of the batched update's
    time on CPU). Process-wide and irreversible; only for ``--keep-freed-memory``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, step: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn(step)
    _sync(device)
    return time.perf_counter() - t0


def bench_one(E: int, hidden: int, batch: int, obs_dim: int, act_dim: int, repeats: int,
              device: torch.device, warmup: int = 2) -> dict:
    """Seconds per update of all E tasks: batched ensemble vs a python loop of single agents.

    The two are timed alternately (batched, loop, batched, ...) so that load from
    other processes on the machine hits both alike.
    """
    g = torch.Generator().manual_seed(0)
    data = _batch(E, batch, obs_dim, act_dim, device, g)
    kw = dict(hidden_dim=hidden, hidden_depth=2, batch_size=batch)
    ens = EnsembleSAC(E, obs_dim, act_dim, device, **kw)
    singles = [SingleTaskSAC(obs_dim, act_dim, device, **kw) for _ in range(E)]
    per_task = [{k: v[e] for k, v in data.items()} for e in range(E)]

    def batched(step: int) -> None:
        ens.update(data, step)

    def loop(step: int) -> None:
        for agent, b in zip(singles, per_task):
            agent.update(b, step)

    for step in range(1, warmup + 1):
        batched(step)
        loop(step)
    times: dict[str, list[float]] = {"batched": [], "loop": []}
    for step in range(warmup + 1, warmup + 1 + repeats):  # odd and even steps: target update every 2
        times["batched"].append(_timed(batched, step, device))
        times["loop"].append(_timed(loop, step, device))
    b_med, l_med = statistics.median(times["batched"]), statistics.median(times["loop"])
    return {"E": E, "hidden_dim": hidden, "batch_size": batch, "obs_dim": obs_dim, "act_dim": act_dim,
            "repeats": repeats, "batched_median_s": b_med, "loop_median_s": l_med, "speedup": l_med / b_med,
            "batched_per_task_s": b_med / E, "batched_s": times["batched"], "loop_s": times["loop"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--members", type=int, nargs="+", default=[1, 8], help="ensemble sizes E")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc: reuse freed large blocks (no mmap/munmap per update); "
                        "writes bench_sac_update_keepmem.json")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    keepmem = args.keep_freed_memory and keep_freed_memory()
    device = torch.device(args.device)
    sizes = SMOKE if args.quick else SIZES
    members = [1, 2] if args.quick else args.members
    rows = []
    for name, (hidden, batch, obs_dim, act_dim, repeats) in sizes.items():
        for E in members:
            row = {"size": name, **bench_one(E, hidden, batch, obs_dim, act_dim, repeats, device)}
            rows.append(row)
            print(f"{name} E={E}: batched {1e3 * row['batched_median_s']:.2f} ms, "
                  f"loop {1e3 * row['loop_median_s']:.2f} ms", flush=True)

    table = [{"size": r["size"], "E": r["E"], "hidden": r["hidden_dim"], "batch": r["batch_size"],
              "batched_ms": 1e3 * r["batched_median_s"], "loop_ms": 1e3 * r["loop_median_s"],
              "speedup": r["speedup"], "batched_ms_per_task": 1e3 * r["batched_per_task_s"]} for r in rows]
    print_table(table, list(table[0]))
    result = {
        "what": "seconds per SAC update of E tasks; batched EnsembleSAC vs python loop over SingleTaskSAC",
        "device": str(device), "threads": args.threads, "quick": args.quick, "keep_freed_memory": keepmem,
        "rows": rows,
    }
    name = result_name("bench_sac_update", str(device)) + ("_quick" if args.quick else "") + ("_keepmem" if keepmem else "")
    write_results(name, result)
    return result


if __name__ == "__main__":
    main()
