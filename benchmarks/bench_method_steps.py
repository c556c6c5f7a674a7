"""The cost of one meta-training step of every shipped method, against CSRO's (issue 29, part 7).

Each method preset (rlkit/configs/algos/*.json, the registry of presets) is built
as a run builds it: ``load_config(ENV, algo_type=PRESET, *plan overrides)``, then
the trainer its ``algo_params.trainer`` names (rlkit.trainers, the registry of
trainers), on an in-memory point-robot-sized dataset
(``rlkit.data.synthetic.synthetic_offline_data``: 40 tasks, 300 episodes of 20
steps each, random values in the real layout). A timed step is what the generic
loop does per counted step: ``updates_per_step`` times ``sample`` then
``train_step`` (so the batch's gather from the device-resident buffer is in the
cost, as in a run), statistics off, as on most steps of a run.

Settings: point-robot as shipped, with the main cpu plan's overrides (context
256, RL batch 128; ``PLAN_OVERRIDES``). A trainer whose step changes over a run
(BOReL: the VAE alone until ``vae_train_steps``, then SAC alone from
``policy_start_step``) is timed in each stage, and its run's average step is the
stages weighted by their share of the run's steps.

Reported per method and stage: the median of ``--repeats`` steps (after 3 warm-up
steps) and p90, in ms, and the ratio to CSRO's median (< 1: cheaper than CSRO).
One thread by default (``--threads``), as the reproduction runs train.

    python -m benchmarks.bench_method_steps [--quick] [--repeats 30] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

BASELINE = "CSRO"
ENV = "point-robot"
# the main point-robot cpu plan's training overrides (rlkit/configs/reproduce/point-robot-cpu.yaml)
PLAN_OVERRIDES = ("algo_params.embedding_batch_size=256", "algo_params.embedding_mini_batch_size=256",
                  "algo_params.batch_size=128")
TASKS, EPISODES, STEPS = 40, 300, 20


def _data(device, n_tasks: int, episodes: int):
    import torch

    from rlkit.data.buffer import MultiTaskBuffer
    from rlkit.data.synthetic import synthetic_offline_data

    raw = synthetic_offline_data([[STEPS] * episodes] * n_tasks, obs_dim=2, act_dim=2, seed=0)
    buffer = MultiTaskBuffer(raw, device=torch.device(device))
    return SimpleNamespace(train=buffer, test=buffer, train_tasks=list(range(30)), obs_absmax=None)


def stages(cfg) -> list[tuple[str, int, float]]:
    """(stage name, the step counter it starts at, its share of the run's steps) of a method's run."""
    algo = cfg["algo_params"]
    total = int(algo["num_iterations"]) * int(algo["num_train_steps_per_itr"])
    if algo.get("trainer") == "borel":
        from rlkit.trainers.borel import hyperparams

        hp = hyperparams(cfg)
        vae_end = min(total, hp.vae_train_steps if hp.vae_train_steps is not None else total)
        sac_from = min(total, hp.policy_start_step)
        if sac_from >= vae_end:  # the authors' staging: the VAE alone, then SAC alone
            return [("VAE", 0, vae_end / total), ("SAC", sac_from, (total - sac_from) / total)]
        return [("VAE+SAC", sac_from, 1.0)]
    return [("step", 0, 1.0)]


def time_method(preset: str, device, repeats: int, data, overrides=()) -> list[dict]:
    import numpy as np
    import torch

    from benchmarks.common import sync
    from rlkit.config import load_config
    from rlkit.envs import make_env
    from rlkit.trainers import trainer_of

    cfg = load_config(ENV, [f"algo_type={preset}", *PLAN_OVERRIDES, *overrides])
    env = make_env(cfg["env_name"], **cfg["env_params"])
    rows = []
    for stage, start, share in stages(cfg):
        torch.manual_seed(0)
        trainer = trainer_of(cfg).from_config(cfg, data, env, device)
        if start:  # jump the step counter to the stage (what runs there does not depend on the weights)
            state = trainer.state_dict()
            state["num_steps"] = start
            trainer.load_state_dict(state)
        rng, g = np.random.default_rng(0), torch.Generator(device=device).manual_seed(0)
        plan = trainer.plan_iteration(rng, repeats + 3)
        times = []
        for i, entry in enumerate(plan):
            sync()
            t0 = time.perf_counter()
            for _ in range(trainer.updates_per_step):
                trainer.train_step(trainer.sample(entry, g))
            sync()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        rows.append({"method": preset, "trainer": cfg["algo_params"]["trainer"], "stage": stage,
                     "share": share, "median_ms": 1e3 * statistics.median(times),
                     "p90_ms": 1e3 * float(np.percentile(times, 90)), "repeats": len(times)})
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, 3 repeats (smoke run); writes no results")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=None, help="comma-separated presets (default: every shipped one)")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.common import print_table, result_name, write_results
    from rlkit.config import algo_presets

    if args.threads:
        torch.set_num_threads(args.threads)
    presets = list(algo_presets())
    methods = args.methods.split(",") if args.methods else [BASELINE] + [p for p in presets if p != BASELINE]
    unknown = sorted(set(methods) - set(presets))
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r}; presets: {', '.join(presets)}")
    repeats = 3 if args.quick else args.repeats
    data = _data(args.device, 40 if not args.quick else 32, EPISODES if not args.quick else 20)
    rows = [row for m in methods for row in time_method(m, args.device, repeats, data)]
    base = next((r["median_ms"] for r in rows if r["method"] == BASELINE), None)
    per_run = {}
    for r in rows:
        r["vs_CSRO"] = r["median_ms"] / base if base else None
        per_run[r["method"]] = per_run.get(r["method"], 0.0) + r["share"] * r["median_ms"]
    for m, ms in per_run.items():
        rows.append({"method": m, "stage": "run average", "median_ms": ms, "vs_CSRO": ms / base if base else None})
    print(f"one meta-training step per method, {ENV} with the main cpu plan's batches, {args.device}, "
          f"{torch.get_num_threads()} thread(s), median of {repeats}")
    print_table(rows, ["method", "stage", "share", "median_ms", "p90_ms", "vs_CSRO"])
    payload = {"env": ENV, "overrides": list(PLAN_OVERRIDES), "device": args.device,
               "threads": torch.get_num_threads(), "repeats": repeats, "rows": rows}
    if not args.quick:
        write_results(result_name("bench_method_steps", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
