"""Env steps per second of behaviour-policy data generation (issue #4).

8 tasks trained at once (one ensemble, lockstep envs) against the baseline:
the same SAC run one task at a time (8 single-task generators stepped in
turn), at the quick preset and at the reference's sizes (hidden 1024, batch
1024). Timed after the random seed steps, i.e. one SAC update per env step.
For scale, the authors' code takes 0.27 s per update at reference sizes here.

    python -m benchmarks.bench_generation [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

SIZES = {"quick": [], "reference": ["agent.hidden_dim=1024", "agent.batch_size=1024"]}
ENVS = {"point-robot": {"n_tasks": 8, "max_episode_steps": 20},
        "cheetah-vel": {"n_tasks": 8, "max_episode_steps": 200}}


def _generator(env, params, tasks, size, workdir, device="cpu"):
    from rlkit.behavior.config import compose_sac_config
    from rlkit.behavior.generate import BehaviourPolicyGenerator, GenerationJob

    sac = compose_sac_config("train_quick", ["num_train_steps=100000", "num_seed_steps=64",
                                             "eval_frequency=100000", *SIZES[size]])
    gen = BehaviourPolicyGenerator(GenerationJob(env, params, tasks, sac, Path(workdir), progress=False,
                                                 device=device))
    from rlkit.envs.vector import make_vector_env

    venv = make_vector_env(env, params, tasks)
    obs = gen._reseed(venv, 0)
    for _ in range(64):  # random seed steps fill the replay
        obs = gen._train_step(venv, obs)
        gen.step += 1
    return gen, venv, obs


def steps_per_second(env, size, steps, workdir, device="cpu") -> tuple[float, float]:
    params = ENVS[env]
    gen, venv, obs = _generator(env, params, list(range(8)), size, workdir + "/batched", device)
    start = time.perf_counter()
    for _ in range(steps):
        obs = gen._train_step(venv, obs)
        gen.step += 1
    batched = 8 * steps / (time.perf_counter() - start)
    singles = [_generator(env, params, [t], size, f"{workdir}/single{t}", device) for t in range(8)]
    start = time.perf_counter()
    for _ in range(steps):
        for i, (g, v, o) in enumerate(singles):
            singles[i] = (g, v, g._train_step(v, o))
            g.step += 1
    loop = 8 * steps / (time.perf_counter() - start)
    return batched, loop


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few steps, quick size only (smoke run)")
    p.add_argument("--device", default="cpu", help="torch device of the behaviour networks (cuda, ...)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    from benchmarks.common import print_table, result_name, write_results

    rows = []
    plan = [("quick", 20)] if args.quick else [("quick", 300), ("reference", 4)]
    with tempfile.TemporaryDirectory() as tmp:
        for size, steps in plan:
            for env in ENVS:
                b, l = steps_per_second(env, size, steps, f"{tmp}/{size}-{env}", args.device)
                rows.append({"env": env, "size": size, "tasks": 8, "batched_steps_per_s": b, "loop_steps_per_s": l,
                             "speedup": b / l})
    print_table(rows, ["env", "size", "tasks", "batched_steps_per_s", "loop_steps_per_s", "speedup"])
    payload = {"rows": rows, "device": args.device}
    if not args.quick:
        write_results(result_name("bench_generation", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
