"""Sequence meta batches (issue 29 part 3): the buffer's one-gather segment sampler vs per-task loops.

A sequence batch is, for each of T tasks, K windows of L consecutive steps of one
episode with their (s, a, r, s', done), returns-to-go, timestep and mask
(``MultiTaskBuffer.sample_segments``). Two sizes, in-memory synthetic data
(``rlkit.data.synthetic.synthetic_offline_data``, random values, real layout):

* ``point-robot``: 40 tasks x 700 episodes of 20 steps (14,000 transitions a
  task, the point-robot selection), obs 2, act 2; K 16, L 10.
* ``cheetah-vel``: 40 tasks x 900 episodes of 200 steps (180,000 a task, the
  cheetah-vel selection, 7.2 M rows), obs 20, act 6; K 16, L 20.

The meta batch is 16 of the 40 tasks (the presets' ``meta_batch``), drawn anew
for every batch. Each size is timed with full windows only (``padding`` none)
and with left padding (a decision transformer's windows; starts anywhere, cut
at the episode's end). Samplers, all on the same data, returns-to-go
precomputed for every one of them (computing it per sample, as DT's own
``get_batch`` does, would only slow the loops down):

* ``per-task loop`` (the baseline every ratio is against): for each task,
  NumPy draws and fancy indexing of that task's six arrays (obs, actions,
  reward, next_obs, done, return-to-go) with ``start + arange(L)``, then
  ``np.stack`` and ``torch.from_numpy`` — the reference buffer's per-task way
  (benchmarks/bench_buffer_sample.py) applied to windows;
* ``per-window loop``: a Python loop over the T x K windows, slicing each
  window and padding it with ``np.concatenate`` (decision transformers'
  ``get_batch``);
* ``one gather``: ``buffer.sample_segments(tasks, K, L, padding)``.

Reported: median and p90 of ``--repeats`` batches, the ratio of the baseline's
median to each sampler's, and the one-off cost of the returns-to-go table
(median of 3 builds). The machine's load average is recorded with the results;
medians on a machine whose cores are busy are noisier but their ratios hold
better than the absolute times.

    python -m benchmarks.bench_sequence_batch [--quick] [--repeats 200] [--device cpu|cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

SIZES = {  # name: (tasks, episodes a task, episode steps, obs, act, K, L)
    "point-robot": (40, 700, 20, 2, 2, 16, 10),
    "cheetah-vel": (40, 900, 200, 20, 6, 16, 20),
}
QUICK_SIZES = {
    "point-robot": (6, 8, 20, 2, 2, 4, 10),
    "cheetah-vel": (6, 4, 200, 20, 6, 4, 20),
}
META_BATCH, QUICK_META_BATCH = 16, 3


class PerTaskWindows:
    """Each task's rows as its own NumPy arrays, windows drawn and cut task by task (the baselines)."""

    def __init__(self, data, rtg: np.ndarray, device):
        self.device = device
        self.tasks = {}
        for j, task in enumerate(data.task_ids.tolist()):
            a, b = int(data.task_offsets[j]), int(data.task_offsets[j + 1])
            sel = (data.episode_offsets[:-1] >= a) & (data.episode_offsets[:-1] < b)
            ep_start = data.episode_offsets[:-1][sel] - a
            ep_stop = data.episode_offsets[1:][sel] - a
            arrays = {"obs": data.obs[a:b], "actions": data.actions[a:b], "rewards": data.rewards[a:b, None],
                      "next_obs": data.next_obs[a:b], "terminals": data.episode_ends[a:b, None].astype(np.float32),
                      "returns_to_go": rtg[a:b, None]}
            self.tasks[task] = (arrays, ep_start, ep_stop, b - a, {})

    @staticmethod
    def _full_starts(entry, length):
        _, ep_start, ep_stop, _, cache = entry
        if length not in cache:  # every start whose window fits, precomputed once per L
            cache[length] = np.concatenate([np.arange(s, e - length + 1) for s, e in zip(ep_start, ep_stop)])
        return cache[length]

    def _starts(self, entry, k, length, padding):
        if padding is None:
            full = self._full_starts(entry, length)
            return full[np.random.randint(0, len(full), k)]
        return np.random.randint(0, entry[3], k)

    def per_task(self, tasks, k, length, padding):
        import torch

        out = {key: [] for key in ("obs", "actions", "rewards", "next_obs", "terminals", "returns_to_go",
                                   "timesteps", "mask")}
        j = np.arange(length)
        for task in tasks:
            entry = self.tasks[int(task)]
            arrays, ep_start, ep_stop, _, _ = entry
            starts = self._starts(entry, k, length, padding)
            ep = np.searchsorted(ep_start, starts, side="right") - 1
            stop = ep_stop[ep][:, None]
            if padding == "left":
                shift = np.maximum(starts[:, None] + length - stop, 0)
                index = np.maximum(starts[:, None] + j - shift, starts[:, None])
                mask = j >= shift
            else:
                index = starts[:, None] + j
                mask = index < stop
                index = np.minimum(index, stop - 1)
            for key, arr in arrays.items():
                v = arr[index]
                v[~mask] = 0
                out[key].append(v)
            out["timesteps"].append(np.where(mask, index - ep_start[ep][:, None], 0))
            out["mask"].append(mask)
        return {key: torch.from_numpy(np.stack(v)).to(self.device) for key, v in out.items()}

    def per_window(self, tasks, k, length, padding):
        import torch

        out = {key: [] for key in ("obs", "actions", "rewards", "next_obs", "terminals", "returns_to_go",
                                   "timesteps", "mask")}
        for task in tasks:
            entry = self.tasks[int(task)]
            arrays, ep_start, ep_stop, _, _ = entry
            for s in self._starts(entry, k, length, padding).tolist():
                e = int(np.searchsorted(ep_start, s, side="right") - 1)
                stop = min(s + length, int(ep_stop[e]))
                pad = length - (stop - s)
                for key, arr in arrays.items():
                    v = arr[s:stop]
                    if pad:
                        z = np.zeros((pad, v.shape[1]), v.dtype)
                        v = np.concatenate([z, v] if padding == "left" else [v, z])
                    out[key].append(v)
                ts = np.arange(s, stop) - int(ep_start[e])
                m = np.ones(stop - s, bool)
                if pad:
                    zt, zm = np.zeros(pad, ts.dtype), np.zeros(pad, bool)
                    ts = np.concatenate([zt, ts] if padding == "left" else [ts, zt])
                    m = np.concatenate([zm, m] if padding == "left" else [m, zm])
                out["timesteps"].append(ts)
                out["mask"].append(m)
        shape = (len(tasks), k, length)
        return {key: torch.from_numpy(np.stack(v).reshape(shape if key in ("timesteps", "mask") else (*shape, -1)))
                .to(self.device) for key, v in out.items()}


def _timeit(fn, repeats):
    from benchmarks.common import median_time

    med, times = median_time(fn, repeats, warmup=3)
    return med, float(np.percentile(times, 90))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=200, help="timed batches per sampler (median reported)")
    parser.add_argument("--device", default="cpu", help="where the buffer lives (cuda, ...)")
    parser.add_argument("--json", help="also write the results here (default: benchmarks/results/ unless --quick)")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.common import print_table, result_name, write_results
    from rlkit.data import MultiTaskBuffer
    from rlkit.data.synthetic import synthetic_offline_data

    sizes, meta_batch = (QUICK_SIZES, QUICK_META_BATCH) if args.quick else (SIZES, META_BATCH)
    repeats = 3 if args.quick else args.repeats
    rows, precompute = [], []
    for size, (n_tasks, n_eps, ep_len, od, ad, k, length) in sizes.items():
        t0 = time.perf_counter()
        data = synthetic_offline_data([[ep_len] * n_eps] * n_tasks, obs_dim=od, act_dim=ad, seed=0)
        make_s = time.perf_counter() - t0
        buffer = MultiTaskBuffer(data, args.device)
        builds = []
        for _ in range(3):  # the one-off cost: the episode table and the undiscounted returns-to-go
            buffer._episode_table = None  # noqa: SLF001 - time a fresh build
            t0 = time.perf_counter()
            rtg = buffer.returns_to_go()
            builds.append(time.perf_counter() - t0)
        precompute.append({"size": size, "rows": len(buffer), "episodes": n_tasks * n_eps,
                           "rtg_build_s": statistics.median(builds), "synthetic_data_s": make_s})
        loops = PerTaskWindows(data, rtg.cpu().numpy(), args.device)
        del data
        rng = np.random.default_rng(0)
        task_lists = [rng.choice(n_tasks, meta_batch, replace=False) for _ in range(1000)]
        counter = iter(range(10**12))

        def tasks():
            return task_lists[next(counter) % len(task_lists)]

        np.random.seed(0)
        torch.manual_seed(0)
        for padding in (None, "left"):
            samplers = {
                "per-task loop": lambda: loops.per_task(tasks(), k, length, padding),
                "per-window loop": lambda: loops.per_window(tasks(), k, length, padding),
                "one gather": lambda: buffer.sample_segments(tasks(), k, length, padding=padding),
            }
            block = []
            for name, fn in samplers.items():
                med, p90 = _timeit(fn, repeats)
                block.append({"size": size, "padding": padding or "none", "sampler": name,
                              "T_K_L": f"{meta_batch}x{k}x{length}", "median_us": med * 1e6, "p90_us": p90 * 1e6})
            for r in block:
                r["speedup_vs_per_task_loop"] = block[0]["median_us"] / r["median_us"]
            rows += block

    print_table(rows, ["size", "padding", "sampler", "T_K_L", "median_us", "p90_us", "speedup_vs_per_task_loop"])
    print()
    print_table(precompute, ["size", "rows", "episodes", "rtg_build_s"])
    payload = {
        "quick": args.quick, "repeats": repeats, "device": str(args.device), "load_avg": os.getloadavg(),
        "torch_threads": torch.get_num_threads(), "meta_batch": meta_batch,
        "sizes": {k: dict(zip(("tasks", "episodes_per_task", "episode_steps", "obs_dim", "act_dim", "K", "L"), v))
                  for k, v in sizes.items()},
        "rows": rows, "precompute": precompute,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))
    elif not args.quick:
        write_results(result_name("bench_sequence_batch", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
