"""CORRO-relabel's ground-truth negatives: relabelling only the queried rows vs the whole context.

CORRO with ``corro_negatives_from=relabel`` needs, for each of its 64 queries, the query's (s, a)
with its outcome in 16 random training tasks (the env's closed-form step). The sampler first
computed that for every context transition of the meta batch (16 tasks x 256 transitions x 16
outcomes) although the objective reads 64 of them; it now hands the objective a function that
relabels the rows asked for (``MetaBatch.relabel``). Both rows of the table call the same
function (:func:`rlkit.torch.objectives.corro.relabelled_rows`), on the point-robot env:

* ``whole context``: every (task, row) of the [16, 256] context (the previous design);
* ``queried rows``: 64 (task, row) pairs drawn as CORRO draws its queries.

    python -m benchmarks.bench_relabel [--quick] [--repeats 15]
"""

from __future__ import annotations

import argparse
import functools


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    import torch

    from benchmarks.common import median_time, print_table, write_results
    from rlkit.envs import make_env
    from rlkit.torch.objectives.corro import relabelled_rows
    from rlkit.torch.networks import context_from_sample

    repeats = 3 if args.quick else args.repeats
    torch.manual_seed(0)
    env = make_env("point-robot", n_tasks=40, max_episode_steps=20)
    t, n, k, queries = 16, 256, 16, 64  # the point-robot presets' meta batch, context, negatives, queries
    obs, actions = torch.rand(t, n, 2) - 0.5, torch.rand(t, n, 2) * 2 - 1
    relabel = functools.partial(relabelled_rows, env.relabel_outcomes,
                                functools.partial(context_from_sample, use_next_obs=False, context_reward=None),
                                torch.arange(30), obs, actions, generator=torch.Generator().manual_seed(0))
    every_task, every_row = (x.reshape(-1) for x in torch.meshgrid(torch.arange(t), torch.arange(n), indexing="ij"))
    q_task, q_row = torch.randint(t, (queries,)), torch.randint(n, (queries,))
    rows = []
    for name, (task, row) in (("whole context", (every_task, every_row)), ("queried rows", (q_task, q_row))):
        med, times = median_time(lambda: relabel(task, row, k), repeats)
        rows.append({"variant": name, "rows": int(task.numel()), "outcomes": int(task.numel()) * k,
                     "median_ms": 1e3 * med, "times_s": times})
    for r in rows:
        r["vs_whole_context"] = r["median_ms"] / rows[0]["median_ms"]
    print_table(rows, ["variant", "rows", "outcomes", "median_ms", "vs_whole_context"])
    payload = {"quick": args.quick, "repeats": repeats, "rows": rows}
    if not args.quick:
        write_results("bench_relabel", payload)
    return payload


if __name__ == "__main__":
    main()
