"""Wall time of one evaluation pass (issue #6): batched protocols vs sequential rollouts.

A pass = 10 test tasks x num_evals 2 repeats x 3 protocols, with an untrained
CSRO agent at the config's sizes (the cost does not depend on the weights).
Baseline: the same protocols run one (task, repeat) at a time — sequential
single-env rollouts of our own code. For scale, the authors' code takes
10.2 s for the point-robot pass on this machine type.

    python -m benchmarks.bench_eval [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

CONFIGS = {
    # name: env, env_params, obs, act, max_path_length, num_steps_per_eval, num_exp_traj_eval, embedding dims
    "point-robot": ("point-robot", {"n_tasks": 40, "max_episode_steps": 20}, 20, 400, 1, False),
    "cheetah-vel": ("cheetah-vel", {"n_tasks": 40, "max_episode_steps": 200}, 200, 600, 2, False),
}
TEST_TASKS = [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]


def _agent(env_name, env_params):
    from rlkit.envs import make_env
    from rlkit.torch.csro import CSROAgent, CSROHyperParams

    env = make_env(env_name, **env_params)
    torch.manual_seed(0)
    return CSROAgent(env.observation_space.shape[0], env.action_space.shape[0], CSROHyperParams()).eval()


def _offline_context(agent, obs_dim, act_dim, device="cpu"):
    def fn(task_ids, n):
        return torch.randn(len(task_ids), n, obs_dim + act_dim + 1, device=device)

    return fn


def measure(name: str, repeats: int, tasks: list[int], device: str = "cpu") -> dict:
    from benchmarks.common import median_time
    from rlkit.evaluation.protocols import EvalSettings, evaluate

    env_name, params, mpl, n_eval, n_exp, _ = CONFIGS[name]
    agent = _agent(env_name, params).to(device)
    offline = _offline_context(agent, agent.obs_dim, agent.action_dim, device)
    batched_settings = EvalSettings(max_path_length=mpl, num_steps_per_eval=n_eval, num_exp_traj_eval=n_exp,
                                    num_evals=2)
    single_settings = EvalSettings(max_path_length=mpl, num_steps_per_eval=n_eval, num_exp_traj_eval=n_exp,
                                   num_evals=1)

    def batched():
        evaluate(agent, env_name, params, tasks, batched_settings, offline_context=offline, device=device)

    def sequential():
        for t in tasks:
            for rep in range(2):
                evaluate(agent, env_name, params, [t], single_settings, offline_context=offline, seed=rep,
                         device=device)

    b, _ = median_time(batched, repeats)
    s, _ = median_time(sequential, max(1, repeats // 2), warmup=0)
    steps = len(tasks) * 2 * (n_eval * 2 + n_eval * 2)  # online + offline + np_online (explore + eval)
    return {"config": name, "tasks": len(tasks), "batched_s": b, "sequential_s": s, "speedup": s / b,
            "env_steps": steps, "steps_per_s_batched": steps / b}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 test tasks, 1 repeat (smoke run)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="torch device for the agent (cuda, cuda:1, ...)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    from benchmarks.common import print_table, result_name, write_results

    tasks = TEST_TASKS[:2] if args.quick else TEST_TASKS
    repeats = 1 if args.quick else args.repeats
    rows = [measure(name, repeats, tasks, args.device) for name in CONFIGS]
    for r in rows:
        r["authors_s"] = 10.2 if r["config"] == "point-robot" and len(tasks) == 10 else None
    print_table(rows, ["config", "tasks", "batched_s", "sequential_s", "speedup", "steps_per_s_batched", "authors_s"])
    payload = {"rows": rows, "repeats": repeats, "device": args.device}
    if not args.quick:
        write_results(result_name("bench_eval", args.device), payload)
    return payload


if __name__ == "__main__":
    main()
