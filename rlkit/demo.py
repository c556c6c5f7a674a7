"""`make demo`: the main job on a small default, in a few minutes on 2 CPU cores.

1. generate the point-robot offline dataset: 40 SAC behaviour policies, quick
   preset (``configs/sac/train_quick.yaml``), trained together in one process;
2. meta-train CSRO on the 30 training tasks for a few short iterations;
3. evaluate each iteration on the 10 held-out tasks with the three context
   protocols (online, offline, non-prior);
4. write progress.csv and a learning-curve plot.

Everything goes under ``demo_output/`` (``--out`` to change). The same
commands at full scale are printed at the end. ``python -m rlkit.demo --envs``
prints a random-policy rollout table of every task distribution instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from rlkit.config import REPO_CONFIG_DIR  # the shipped configs, inside the package
from rlkit.errors import cli

QUICK_EPOCHS = "[200,1000,100]"  # the quick preset's checkpoints: 200, 300, ..., 900


def rollout_table(n_steps: int = 200, seed: int = 0) -> list[dict]:
    """Random-policy returns of tasks 0 and 1 of every env, stepped in lockstep."""
    from rlkit.envs import ENVS, make_env
    from rlkit.envs.vector import make_vector_env

    rows = []
    for name in sorted(ENVS):
        params = dict(n_tasks=2, max_episode_steps=n_steps if "point" not in name else 20)
        env = make_env(name, **params)
        venv = make_vector_env(name, params, [0, 1], seed=seed)
        rng = np.random.default_rng(seed)
        returns, done = np.zeros(2), np.zeros(2, dtype=bool)
        steps, start = 0, time.perf_counter()
        venv.reset(seed=seed)
        while not done.all():
            actions = rng.uniform(-1, 1, size=venv.action_space.shape).astype(np.float32)
            _, reward, term, trunc, _ = venv.step(actions)
            returns += np.where(done, 0.0, reward)
            steps += int((~done).sum())
            done |= term | trunc
        rows.append(dict(env=name, obs=env.observation_space.shape[0], act=env.action_space.shape[0],
                         ret_task0=returns[0], ret_task1=returns[1], steps=steps,
                         steps_per_s=steps / (time.perf_counter() - start)))
        venv.close()
    return rows


def print_env_table() -> None:
    print(f"{'env':<20} {'obs':>4} {'act':>4} {'return t0':>10} {'return t1':>10} {'steps':>6} {'steps/s':>9}")
    for r in rollout_table():
        print(f"{r['env']:<20} {r['obs']:>4} {r['act']:>4} {r['ret_task0']:>10.2f} {r['ret_task1']:>10.2f} "
              f"{r['steps']:>6} {r['steps_per_s']:>9.0f}")


def run_demo(out: Path, iterations: int, steps_per_itr: int, seed: int) -> Path:
    from rlkit.cli import meta_train as launch_experiment
    from rlkit.cli import policy_train

    data_dir = out / "offline_dataset" / "point-robot"
    log_dir = out / "output"
    config = str(REPO_CONFIG_DIR / "point-robot.json")

    t0 = time.perf_counter()
    print(f"[1/3] behaviour policies: 40 point-robot tasks, quick preset -> {data_dir}", flush=True)
    rc = policy_train.main(["--config", config, "--preset", "train_quick", "--data_dir", str(data_dir),
                            "--seed", str(seed)])
    if rc:
        raise SystemExit(rc)
    t1 = time.perf_counter()

    run_dir = log_dir / "point-robot" / "demo" / f"seed{seed}"
    if run_dir.exists():  # the demo's own previous run: start afresh
        shutil.rmtree(run_dir)
    print(f"[2/3] meta-training CSRO: {iterations} iterations x {steps_per_itr} steps, "
          "evaluated each iteration on the 10 test tasks", flush=True)
    rc = launch_experiment.main([
        config, "--seed", str(seed), "--exp_name", "demo",
        f"algo_params.data_dir={data_dir}", f"util_params.base_log_dir={log_dir}",
        f"algo_params.train_epoch={QUICK_EPOCHS}", f"algo_params.eval_epoch={QUICK_EPOCHS}", "algo_params.n_trj=5",
        f"algo_params.num_iterations={iterations}", f"algo_params.num_train_steps_per_itr={steps_per_itr}",
        "algo_params.embedding_batch_size=256",
    ])
    if rc:
        raise SystemExit(rc)
    t2 = time.perf_counter()

    print("[3/3] learning curves", flush=True)
    from rlkit.plot import plot_runs

    keys = ["Average_OnlineReturn_all_test_tasks", "Average_OfflineReturn_all_test_tasks",
            "Average_NpOnlineReturn_all_test_tasks"]
    plot = plot_runs([run_dir], keys, run_dir / "learning_curves.png")
    import pandas as pd

    from rlkit.evaluation.reference import run_reference_returns

    last = pd.read_csv(run_dir / "progress.csv").iloc[-1]
    ref = run_reference_returns(run_dir)
    best = "n/a" if ref.behaviour_best is None else f"{ref.behaviour_best:.2f}"
    print(f"\nfinal test returns ({len(ref.tasks)} held-out tasks; uniform-random policy {ref.random:.2f}, "
          f"best behaviour checkpoint {best}: the plot's dotted and dashed lines):")
    for k in keys:
        print(f"  {k:<40} {last[k]:8.2f}")
    print(f"\ndata generation {t1 - t0:.0f} s, meta-training + evaluation {t2 - t1:.0f} s")
    print(f"progress.csv: {run_dir / 'progress.csv'}")
    print(f"plot:         {plot}")
    print("\nfull scale (docs/method.md §1):\n  python policy_train.py --config configs/point-robot.json\n"
          "  python launch_experiment.py configs/point-robot.json --seed 0")
    return run_dir


@cli
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_output"))
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--steps-per-itr", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--envs", action="store_true", help="only print the env rollout table")
    args = p.parse_args(argv)
    if args.envs:
        print_env_table()
        return 0
    run_demo(args.out, args.iterations, args.steps_per_itr, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
