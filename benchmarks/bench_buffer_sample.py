"""Cheetah-vel-sized buffer (issue #3): load time, and meta-batch sampling vs a per-task loop.

Dataset: 40 tasks x 18 checkpoints x (20 deterministic + 50 sampled) episodes
of 200 steps, obs 20, act 6, native format; the selection (n_trj 50, sample 1)
is 180,000 transitions per task, 7.2 M in all. "load" = the 30 train tasks
and the 10 test tasks from disk into two MultiTaskBuffers. Target: < 15 s.

Sampling: a meta batch of 16 train tasks x (256 RL + 100 context) transitions.

* ``baseline``: the reference's way — per-task NumPy buffers (capacity
  200,000), and for each task ``np.random.randint`` + fancy indexing of six
  arrays, ``torch.from_numpy(..).float()``, then ``torch.cat`` (``sample_sac``
  for 256 and ``sample_context`` for 100, context concatenated on the last dim).
* ``ours (256 + 100)``: ``buffer.sample(tasks, 256)`` + ``buffer.sample_context(tasks, 100)``.
* ``ours (356)``: one ``buffer.sample(tasks, 356)``.
* ``gather floor``: ``np.take`` of 16 x 356 random rows of the packed buffer,
  indices drawn beforehand — the memory-latency cost no sampler can avoid.

Target: ours at least 20x faster than the baseline.

    python -m benchmarks.bench_buffer_sample [--quick] [--repeats 300] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

LOAD_TARGET_S = 15.0
SPEEDUP_TARGET = 20.0


class ReferenceStyleBuffers:
    """Per-task NumPy arrays sampled task by task, as the reference's MultiTaskReplayBuffer."""

    def __init__(self, data, capacity: int):
        self.buffers = {}
        for j, task in enumerate(data.task_ids):
            a, b = int(data.task_offsets[j]), int(data.task_offsets[j + 1])
            n = b - a
            cap = max(capacity, n)
            buf = {
                "observations": np.zeros((cap, data.obs_dim), np.float32),
                "actions": np.zeros((cap, data.act_dim), np.float32),
                "rewards": np.zeros((cap, 1), np.float32),
                "terminals": np.zeros((cap, 1), np.uint8),
                "next_observations": np.zeros((cap, data.obs_dim), np.float32),
                "sparse_rewards": np.zeros((cap, 1), np.float32),
            }
            buf["observations"][:n] = data.obs[a:b]
            buf["actions"][:n] = data.actions[a:b]
            buf["rewards"][:n, 0] = data.rewards[a:b]
            buf["terminals"][:n, 0] = data.episode_ends[a:b]
            buf["next_observations"][:n] = data.next_obs[a:b]
            self.buffers[int(task)] = (buf, n)

    def _batch(self, task, batch_size):
        import torch

        buf, size = self.buffers[int(task)]
        idx = np.random.randint(0, size, batch_size)
        batch = {k: torch.from_numpy(v[idx]).float().to("cpu") for k, v in buf.items()}
        return [batch["observations"][None], batch["actions"][None], batch["rewards"][None],
                batch["next_observations"][None], batch["terminals"][None]]

    def _cat(self, tasks, batch_size):
        import torch

        per_task = [self._batch(t, batch_size) for t in tasks]
        return [torch.cat([p[i] for p in per_task], dim=0) for i in range(5)]

    def sample_meta_batch(self, tasks, rl_batch, context_batch):
        import torch

        rl = self._cat(tasks, rl_batch)
        ctx = torch.cat(self._cat(tasks, context_batch)[:-2], dim=2)
        return rl, ctx


def _timeit(fn, repeats, warmup=10):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.percentile(times, 90))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny dataset, few repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=300, help="timed meta batches per sampler (median reported)")
    parser.add_argument("--load-repeats", type=int, default=3, help="timed loads (median reported)")
    parser.add_argument("--workdir", help="where to write the synthetic dataset (default: a temp dir)")
    parser.add_argument("--json", help="also write the results here (default: benchmarks/results/ unless --quick)")
    parser.add_argument("--device", default="cpu", help="where the buffers live (cuda, ...)")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.common import print_table, result_name, write_results
    from rlkit.data import MultiTaskBuffer, load_offline_data, split_tasks
    from rlkit.data.synthetic import write_synthetic_dataset

    if args.quick:
        n_tasks, n_train, n_test, steps, n_det, n_trj, length, od, ad = 4, 3, 1, [1, 3, 1], 1, 3, 20, 20, 6
        meta_batch, rl_batch, ctx_batch, repeats, load_repeats = 2, 16, 8, 5, 1
    else:
        n_tasks, n_train, n_test, steps, n_det, n_trj, length, od, ad = (
            40, 30, 10, [100000, 1000000, 50000], 20, 50, 200, 20, 6)
        meta_batch, rl_batch, ctx_batch = 16, 256, 100
        repeats, load_repeats = args.repeats, args.load_repeats
    train, test = split_tasks(n_tasks, n_train, n_test, interpolation=True)

    own_dir = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_buffer_sample_"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "cheetah-vel"
    try:
        t0 = time.perf_counter()
        write_synthetic_dataset(root, n_tasks, list(range(*steps)), n_deterministic=n_det, n_sampled=n_trj,
                                length=length, obs_dim=od, act_dim=ad, seed=0, env_name="cheetah-vel")
        write_s = time.perf_counter() - t0
        disk_bytes = sum(p.stat().st_size for p in root.rglob("*.npy"))

        def load():
            tr = load_offline_data(root, train, steps, n_trj, 1, obs_dim=od, act_dim=ad)
            te = load_offline_data(root, test, steps, n_trj, 1, obs_dim=od, act_dim=ad)
            return tr, MultiTaskBuffer(tr, args.device), MultiTaskBuffer(te, args.device)

        load_times = []
        for _ in range(load_repeats):
            t0 = time.perf_counter()
            train_data, buffer, test_buffer = load()
            load_times.append(time.perf_counter() - t0)
            if len(load_times) < load_repeats:
                del train_data, buffer, test_buffer
        n_train_rows, n_test_rows = len(buffer), len(test_buffer)
        del test_buffer
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(root, ignore_errors=True)

    reference = ReferenceStyleBuffers(train_data, capacity=200_000)
    del train_data
    rng = np.random.default_rng(0)
    task_lists = [rng.choice(train, meta_batch, replace=False) for _ in range(1000)]
    counter = iter(range(10**12))

    def next_tasks():
        return task_lists[next(counter) % len(task_lists)]

    np.random.seed(0)
    torch.manual_seed(0)
    packed = buffer._packed_np  # noqa: SLF001 - the floor measurement needs the raw array
    index_pool = [buffer.sample_indices(next_tasks(), rl_batch + ctx_batch).reshape(-1).cpu().numpy()
                  for _ in range(1000)]
    samplers = {
        "baseline (per-task loop)": lambda: reference.sample_meta_batch(next_tasks(), rl_batch, ctx_batch),
        f"ours ({rl_batch} + {ctx_batch})": lambda: (buffer.sample(next_tasks(), rl_batch),
                                                    buffer.sample_context(next_tasks(), ctx_batch)),
        f"ours ({rl_batch + ctx_batch})": lambda: buffer.sample(next_tasks(), rl_batch + ctx_batch),
    }
    if packed is not None:  # host buffers only: the floor of a numpy gather
        samplers["gather floor (np.take only)"] = lambda: np.take(packed, index_pool[next(counter) % 1000], axis=0)
    rows = []
    for name, fn in samplers.items():
        med, p90 = _timeit(fn, repeats)
        rows.append({"sampler": name, "median_us": med * 1e6, "p90_us": p90 * 1e6})
    base = rows[0]["median_us"]
    for r in rows:
        r["speedup_vs_baseline"] = base / r["median_us"]

    load_row = {"load_s_median": float(np.median(load_times)), "load_times_s": load_times, "target_s": LOAD_TARGET_S,
                "meets_target": float(np.median(load_times)) < LOAD_TARGET_S, "train_transitions": n_train_rows,
                "test_transitions": n_test_rows, "disk_bytes": disk_bytes, "write_s": write_s,
                "buffer_bytes": buffer.nbytes()}
    print_table([load_row], ["load_s_median", "target_s", "meets_target", "train_transitions", "test_transitions",
                             "disk_bytes", "write_s"])
    print()
    print_table(rows, ["sampler", "median_us", "p90_us", "speedup_vs_baseline"])
    best = max(r["speedup_vs_baseline"] for r in rows[1:3])
    payload = {
        "quick": args.quick, "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(),
        "dataset": {"tasks": n_tasks, "epochs": steps, "n_det": n_det, "n_trj": n_trj, "length": length,
                    "obs_dim": od, "act_dim": ad},
        "meta_batch": {"tasks": meta_batch, "rl_batch": rl_batch, "context_batch": ctx_batch},
        "load": load_row, "sampling": rows, "speedup_target": SPEEDUP_TARGET,
        "meets_speedup_target": best >= SPEEDUP_TARGET,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))
    elif not args.quick:
        write_results(result_name("bench_buffer_sample", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
