"""What BOReL's belief encodes, by VAE training step: the task, or the behaviour policy that made the episode?

For the snapshots of one BOReL run, the belief mean after the GRU has read one whole offline episode
(the offline protocol's context), for 40 episodes of each of 10 tasks (the held-out tasks, and every
third training task):

* between / within: the variance of the per-task mean belief across tasks, and the mean variance of the
  belief across one task's episodes (summed over latent dims);
* accuracy: nearest-centroid classification of the task, centroids from half of each task's episodes,
  the other half classified (chance 0.10);
* behaviour R^2: within each task, the share of the belief's variance across episodes that a linear
  function of the episode's return explains (the return stands for the behaviour checkpoint that made
  the episode), mean over tasks.

And, at the last snapshot, the direction the policy heads from the origin under each held-out task's
belief against the direction of that task's goal.

    python docs/results/diagnostics/borel-belief-vs-behaviour/measure.py RUN_DIR DATA_DIR ITR[,ITR...] OUT.json

Not part of the package (a measurement behind docs/results.md); it reads runs through rlkit's loaders.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from rlkit.data import load_offline_data
from rlkit.data.buffer import MultiTaskBuffer
from rlkit.envs import make_env
from rlkit.evaluation.run_loader import load_run


def belief_stats(agent, ep) -> dict:
    t, k, w = ep["mask"].shape
    flat = lambda x: x.reshape(t * k, w, -1)  # noqa: E731
    with torch.no_grad():
        mu, _ = agent.encoder.beliefs(flat(ep["actions"]), flat(ep["next_obs"]), flat(ep["rewards"]))
    n = ep["mask"].reshape(t * k, w).sum(-1)
    z = mu[torch.arange(t * k), n].reshape(t, k, -1).double()  # after the whole episode
    between, within = z.mean(1).var(0).sum().item(), z.var(1).mean(0).sum().item()
    cent, query = z[:, : k // 2].mean(1), z[:, k // 2:]
    pred = torch.cdist(query.reshape(-1, z.shape[-1]), cent).argmin(-1).reshape(t, -1)
    accuracy = (pred == torch.arange(t)[:, None]).double().mean().item()
    ret = (ep["rewards"][..., 0] * ep["mask"]).sum(-1).double()
    r2 = []
    for i in range(t):
        x = torch.stack([ret[i], torch.ones(k, dtype=torch.float64)], -1)
        res = z[i] - x @ torch.linalg.lstsq(x, z[i]).solution
        r2.append(1.0 - res.pow(2).sum().item() / (z[i] - z[i].mean(0)).pow(2).sum().item())
    return {"between": between, "within": within, "accuracy": accuracy, "behaviour_r2": float(np.mean(r2)),
            "behaviour_r2_per_task": [round(v, 3) for v in r2]}


def main(run_dir: str, data_dir: str, itrs: str, out: str) -> None:
    torch.set_num_threads(1)
    report = {"run_dir": run_dir, "episodes_per_task": 40, "snapshots": []}
    episodes = {}
    for itr in [int(x) for x in itrs.split(",")]:
        run = load_run(run_dir, itr=itr, data_dir=data_dir)
        algo = run.config["algo_params"]
        if not episodes:
            for name, tasks, epochs in (("test", run.test_tasks, algo["eval_epoch"]),
                                        ("train", run.train_tasks[::3], algo["train_epoch"])):
                buf = MultiTaskBuffer(load_offline_data(data_dir, tasks, epochs, n_trj=algo["n_trj"]), torch.device("cpu"))
                episodes[name] = (tasks, buf.sample_episodes(torch.as_tensor(tasks), 40,
                                                             generator=torch.Generator().manual_seed(0)))
        entry = {"iteration": itr, "train_steps": (itr + 1) * int(algo["num_train_steps_per_itr"])}
        for name, (_, ep) in episodes.items():
            entry[name] = belief_stats(run.agent, ep)
        report["snapshots"].append(entry)
        print(itr, {k: (round(v["accuracy"], 2), round(v["behaviour_r2"], 2)) for k, v in entry.items()
                    if isinstance(v, dict)})
    # the policy's heading from the origin under each held-out task's first belief, against its goal
    tasks, ep = episodes["test"]
    t, k, w = ep["mask"].shape
    with torch.no_grad():
        mu, logvar = run.agent.encoder.beliefs(ep["actions"][:, 0], ep["next_obs"][:, 0], ep["rewards"][:, 0])
        n = ep["mask"][:, 0].sum(-1)
        b = torch.cat([mu[torch.arange(t), n], logvar[torch.arange(t), n]], -1)
        out_ = run.agent.policy(torch.zeros(t, run.obs_dim), b, reparameterize=False, return_log_prob=False)
        a = torch.tanh(out_.mean).double().numpy()
    env = make_env(run.env_name, **run.env_params)
    goals = np.array([env.tasks[i]["goal"] for i in tasks])
    report["heading_at_origin"] = {"tasks": list(tasks),
                                   "goal_deg": np.degrees(np.arctan2(goals[:, 1], goals[:, 0])).round(1).tolist(),
                                   "action_deg": np.degrees(np.arctan2(a[:, 1], a[:, 0])).round(1).tolist(),
                                   "iteration": report["snapshots"][-1]["iteration"]}
    print(report["heading_at_origin"])
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
