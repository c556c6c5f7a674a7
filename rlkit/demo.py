"""`make demo`: the main job on a small default, runnable on 2 CPU cores.

Stage 1 (this file today): build every task distribution, roll out a random
policy on two tasks of each in lockstep, and print a table of returns and
env steps/s. Later stages (data generation, meta-training, evaluation) append
to :func:`main` as they land.
"""

from __future__ import annotations

import time

import numpy as np

from rlkit.envs import ENVS, make_env
from rlkit.envs.vector import make_vector_env


def rollout_table(n_steps: int = 200, seed: int = 0) -> list[dict]:
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
        elapsed = time.perf_counter() - start
        rows.append(dict(env=name, obs=env.observation_space.shape[0], act=env.action_space.shape[0],
                         ret_task0=returns[0], ret_task1=returns[1], steps=steps, steps_per_s=steps / elapsed))
        venv.close()
    return rows


def main() -> None:
    print("CSRO demo, stage 1: task distributions (random policy, tasks 0 and 1)")
    rows = rollout_table()
    print(f"{'env':<20} {'obs':>4} {'act':>4} {'return t0':>10} {'return t1':>10} {'steps':>6} {'steps/s':>9}")
    for r in rows:
        print(f"{r['env']:<20} {r['obs']:>4} {r['act']:>4} {r['ret_task0']:>10.2f} {r['ret_task1']:>10.2f} "
              f"{r['steps']:>6} {r['steps_per_s']:>9.0f}")


if __name__ == "__main__":
    main()
