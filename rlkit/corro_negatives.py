"""How much a CORRO run's generated negatives say about other tasks (docs/method.md §8.2).

    python -m rlkit.corro_negatives RUN_DIR [--itr K] [--queries 4096] [--seed S] [--data_dir DIR] [--json]

CORRO's InfoNCE can only teach the encoder to read the task if a negative
(the query's (s, a) with another task's outcome) differs from the query. Its
conditional VAE draws those outcomes from p(r, s' | s, a) over all training
tasks. When each task's behaviour data visits its own states (a policy that
heads for its own goal), (s, a) already tells the task, the CVAE learns the
outcome from (s, a) alone, and its samples all land on the query's own
outcome: InfoNCE then stays at chance, log(1 + K), whatever the encoder does.

For ``--queries`` transitions of the training tasks' offline data (the same
number from each task: rounded to a multiple of their count, said in the
report's first line when that changes it) this tool
draws K negatives per query from the run's CVAE and K from the env's ground
truth (:meth:`rlkit.envs.base.MultiTaskEnv.relabel_outcomes` in K training
tasks drawn uniformly, as CORRO's relabelling draws them), and reports for
each source the spread of the K rewards (their std, averaged over queries),
the median distance of a negative's reward to the query's, and the share of
negatives within 0.01 of it. It also steps the env in each query's own task:
that must give back the stored reward (a check of the relabelling on this
data). Needs a run trained with ``corro_negatives_from=cvae`` and an env that
can relabel (the point-robot family).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rlkit.core.device import choose_device
from rlkit.evaluation.run_loader import RunLoadError, add_run_arguments, resolve_snapshot
from rlkit.errors import cli, usage_name


def spread_queries(queries: int, n_tasks: int) -> tuple[int, str | None]:
    """(queries per training task, a one-line note when that gives other than ``queries`` in all).

    Every training task gives the same number of queries, so that no task weighs more in the averages;
    ``queries`` not a multiple of the task count is rounded down to one (and up to one per task), and
    the report says so rather than showing another count without a word."""
    per_task = max(1, queries // n_tasks)
    got = per_task * n_tasks
    if got == queries:
        return per_task, None
    why = "at least one each" if queries < n_tasks else f"ask a multiple of {n_tasks} for exactly that many"
    return per_task, (f"--queries {queries} gives {got}: the same number of queries from each training task, "
                      f"{per_task} from each of {n_tasks} ({why})")


def measure(run_dir, itr: int | None = None, queries: int = 4096, seed: int = 0, data_dir=None,
            device="cpu") -> dict:
    """The report described in the module docstring, as a dict."""
    from rlkit.envs import make_env
    from rlkit.launchers.meta_train import load_experiment_data
    from rlkit.torch.objectives.corro import relabelled_rows
    from rlkit.torch.csro import CSROHyperParams
    from rlkit.torch.objectives import CorroObjective

    device = torch.device(device)
    path, state = resolve_snapshot(run_dir, itr, device)
    cfg = json.loads(json.dumps(state["config"]))
    if data_dir is not None:
        cfg["algo_params"]["data_dir"] = str(data_dir)
    hp = CSROHyperParams.from_config(cfg)
    if not hp.use_corro or hp.corro_negatives_from != "cvae":
        raise RunLoadError(f"{run_dir} is not a CORRO run with generated negatives (use_corro="
                           f"{hp.use_corro}, corro_negatives_from={hp.corro_negatives_from!r}): nothing to measure")
    cvae = CorroObjective(int(state["obs_dim"]), int(state["act_dim"]), hp, device).cvae  # only the CVAE is read
    cvae.load_state_dict(state["trainer"]["networks"][CorroObjective.name])
    env = make_env(cfg["env_name"], **cfg["env_params"])
    try:  # the seed decides the task split; the snapshot keeps the split, variant.json the seed
        seed_of_run = int(json.loads((Path(run_dir) / "variant.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        seed_of_run = 0
    data = load_experiment_data(cfg, seed_of_run, device)
    if list(data.train_tasks) != [int(t) for t in state["train_tasks"]]:
        raise RunLoadError(f"{run_dir}: its variant.json does not rebuild the run's task split; restore it")
    from rlkit.data.fingerprint import fingerprint_mismatch, recorded_fingerprint

    recorded = recorded_fingerprint(state)
    differ = [] if recorded is None else fingerprint_mismatch(recorded, data.fingerprint, splits=("train",))
    if differ:  # the queries come from the training tasks' data
        raise RunLoadError(f"the training tasks' data in {cfg['algo_params']['data_dir']} is not what {run_dir} was "
                           f"trained on (data fingerprint {differ[0]}): pass --data_dir with the dataset it was trained on")
    if data.obs_absmax is not None:
        raise RunLoadError("the dataset keeps normalized observations; the env cannot step from them")
    ids = torch.as_tensor(data.train_tasks, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    per_task, note = spread_queries(queries, len(ids))
    s = data.train.sample(ids, per_task, generator=g)
    k = hp.corro_negatives
    obs, act = s["obs"].double(), s["actions"].double()
    r = s["rewards"][..., 0].double()                                           # [T, N]
    x = torch.cat([s["obs"], s["actions"]], -1)
    dtype = next(cvae.parameters()).dtype
    r_cvae = cvae.sample(x[:, :, None, :].expand(-1, -1, k, -1).to(dtype), g)[..., 0].double()  # [T, N, K]
    # the truth as CORRO-relabel's training draws it: each query's (s, a) in k uniform training tasks
    task, row = (i.reshape(-1) for i in torch.meshgrid(torch.arange(r.shape[0], device=device),
                                                       torch.arange(r.shape[1], device=device), indexing="ij"))
    r_true = relabelled_rows(env.relabel_outcomes, lambda part: part["rewards"][..., 0], ids, obs, act, task, row, k,
                             generator=g).reshape(*r.shape, k)                  # [T, N, K]
    _, r_own = env.relabel_outcomes(obs, act, ids[:, None].expand_as(r))

    def stats(neg: torch.Tensor) -> dict:
        gap = (neg - r[..., None]).abs()
        return {"spread": float(neg.std(-1).mean()), "median_gap": float(gap.median()),
                "share_within_0.01": float((gap < 0.01).double().mean())}

    return {"run_dir": str(run_dir), "iteration": int(state["iteration"]), "queries": int(r.numel()),
            "queries_asked": int(queries), "note": note,
            "negatives_per_query": k, "cvae": stats(r_cvae), "env": stats(r_true),
            "own_task_max_error": float((r_own.double() - r).abs().max())}


def format_report(rep: dict) -> str:
    lines = [rep["note"]] if rep.get("note") else []
    lines += [f"{rep['queries']} queries x {rep['negatives_per_query']} negatives (iteration {rep['iteration']})",
             f"{'negatives from':<16}{'spread (std)':>14}{'median |r_neg - r|':>20}{'within 0.01':>13}"]
    for name, label in (("cvae", "the run's CVAE"), ("env", "the env (truth)")):
        row = rep[name]
        lines.append(f"{label:<16}{row['spread']:>14.4f}{row['median_gap']:>20.4f}{row['share_within_0.01']:>13.3f}")
    lines.append(f"the env in each query's own task reproduces the stored reward to {rep['own_task_max_error']:.1e}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.corro_negatives"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, "a CORRO run: output/ENV/EXP_NAME/seedN")
    p.add_argument("--queries", type=int, default=4096,
                   help="query transitions, the same number from each training task (rounded down to a multiple "
                        "of their count, at least one each; the report says when)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)

    try:
        if args.queries < 1:
            raise ValueError(f"--queries must be >= 1, got {args.queries}")
        rep = measure(args.run_dir, args.itr, args.queries, args.seed, args.data_dir, choose_device(args.gpu))
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rep, indent=1) if args.json else format_report(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
