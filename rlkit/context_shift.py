"""Measure context shift: how far test-time contexts move the task embedding z.

    python -m rlkit.context_shift RUN_DIR [--itr K] [--out DIR] [--draws 20] [--num_evals N]
        [--seed S] [--gpu G] [--projection pca|tsne] [--data_dir DIR]

CSRO's premise is that an encoder trained on behaviour-policy contexts reads
the policy instead of the task when the context comes from a different
policy. For every test task this tool infers z from

* ``offline``: ``max_path_length`` transitions drawn uniformly from the task's
  offline data (the behaviour policies' context), ``--draws`` times; the first
  half fits one centroid per task, the second half is held out;
* ``online``: the online protocol's context when z is first inferred (its
  first ``num_exp_traj_eval`` episodes, run by the policy with z at the prior);
* ``np_online``: the non-prior protocol's exploration context at the same point;
* ``online_full`` / ``np_online_full``: each protocol's whole context at its end
  (the z the agent finishes with),

and reports per source the **shift ratio** (mean distance from z to its own
task's offline centroid, divided by the mean distance between task centroids:
about 0 when the source agrees with the offline embedding, 1 or more when it
is as far as another task) and the **accuracy** of a nearest-centroid
classifier fit on the offline draws (chance: 1 / number of tasks). The
held-out offline draws are the sanity check: if they are not identified, the
encoder does not separate tasks at all.

Writes ``context_shift_itrK.json``, ``.npz`` (every embedding with its task
and source) and ``.png`` (a 2-D projection coloured by task, marked by
source, plus the two numbers per source) into ``--out`` (default RUN_DIR).
PCA axes are labelled with the share of the variance they explain; when the
second explains under 1 % (embeddings on a line), the figure is a 1-D strip
plot (PC1 across, one row per source) instead of a scatter of noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rlkit.errors import cli, usage_name
from rlkit.fileio import atomic_file, atomic_write_text
from rlkit.core.device import choose_device
from rlkit.evaluation.run_loader import RunLoadError, add_run_arguments, load_run
from rlkit.core.precision import dtype_of
from rlkit.evaluation.protocols import OFFLINE_DATA, PROTOCOL_CLASSES, PROTOCOLS

# The training protocols whose context the policy collects itself (no offline data in it): the sources
# this tool compares with the offline embedding, from the protocol registry (today online and np_online).
ROLLOUT_PROTOCOLS = tuple(n for n in PROTOCOLS if OFFLINE_DATA not in PROTOCOL_CLASSES[n].context)
SOURCES = ("offline", *ROLLOUT_PROTOCOLS, *(f"{p}_full" for p in ROLLOUT_PROTOCOLS))
DESCRIPTIONS = {
    "offline": "held-out draws of max_path_length offline transitions (sanity check)",
    **{p: f"{p} protocol ({PROTOCOL_CLASSES[p].title}) when z is first inferred" for p in ROLLOUT_PROTOCOLS},
    **{f"{p}_full": f"{p} protocol ({PROTOCOL_CLASSES[p].title}) at its end" for p in ROLLOUT_PROTOCOLS},
}


# ---------------------------------------------------------------------------- pure functions
def task_centroids(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted task labels [K], centroids [K, L]): the mean embedding of each task."""
    z, labels = np.asarray(z, dtype=np.float64), np.asarray(labels)
    tasks = np.unique(labels)
    return tasks, np.stack([z[labels == t].mean(0) for t in tasks])


def centroid_spread(centroids: np.ndarray) -> float:
    """Mean Euclidean distance over pairs of distinct task centroids (NaN for fewer than two)."""
    c = np.asarray(centroids, dtype=np.float64)
    if len(c) < 2:
        return math.nan
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    return float(d[np.triu_indices(len(c), 1)].mean())


def nearest_centroid_predict(tasks: np.ndarray, centroids: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The task of the nearest centroid for each row of ``z``; ties go to the first (smallest) task.

    Deterministic tie-breaking makes a constant encoder score exactly 1/K on balanced data.
    """
    d = np.linalg.norm(np.asarray(z, dtype=np.float64)[:, None] - np.asarray(centroids)[None], axis=-1)
    return np.asarray(tasks)[np.argmin(d, axis=1)]


def nearest_centroid_accuracy(fit_z, fit_labels, test_z, test_labels) -> float:
    """Accuracy of a nearest-centroid classifier fit on (fit_z, fit_labels), tested on (test_z, test_labels)."""
    tasks, centroids = task_centroids(fit_z, fit_labels)
    test_labels = np.asarray(test_labels)
    unknown = np.setdiff1d(test_labels, tasks)
    if unknown.size:
        raise ValueError(f"test labels {unknown.tolist()} have no fitted centroid")
    return float(np.mean(nearest_centroid_predict(tasks, centroids, test_z) == test_labels))


def shift_ratio(fit_z, fit_labels, z, labels) -> float:
    """Mean distance of ``z`` to its own task's centroid (fit on ``fit_z``) / mean inter-centroid distance.

    0: the source lands on the offline embedding of its task; about 1: as far
    as tasks are from each other. NaN when every centroid coincides and z sits
    on them, inf when the centroids coincide but z does not.
    """
    tasks, centroids = task_centroids(fit_z, fit_labels)
    labels = np.asarray(labels)
    pos = np.searchsorted(tasks, labels)
    if np.any(pos >= len(tasks)) or np.any(tasks[np.minimum(pos, len(tasks) - 1)] != labels):
        raise ValueError("every label of z needs a fitted centroid")
    dist = float(np.linalg.norm(np.asarray(z, dtype=np.float64) - centroids[pos], axis=-1).mean())
    spread = centroid_spread(centroids)
    if not spread > 0:
        return math.nan if dist == 0 or math.isnan(spread) else math.inf
    return dist / spread


def pca_2d(z: np.ndarray, return_variance: bool = False):
    """The first two principal components of ``z`` (numpy SVD), zero-padded for 1-D latents.

    With ``return_variance``, also the fraction of the variance each component explains.
    """
    x = np.asarray(z, dtype=np.float64)
    x = x - x.mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    var = np.zeros(2)
    total = float((sv ** 2).sum())
    var[: min(2, len(sv))] = (sv[:2] ** 2) / total if total > 0 else 0.0
    out = np.pad(out, ((0, 0), (0, 2 - out.shape[1]))) if out.shape[1] < 2 else out
    return (out, var) if return_variance else out


def source_report(fit_z, fit_labels, z, labels) -> dict:
    """Shift ratio, mean distance and accuracy of one source, overall and per task."""
    ratio = shift_ratio(fit_z, fit_labels, z, labels)  # also checks that every label has a centroid
    tasks, centroids = task_centroids(fit_z, fit_labels)
    labels = np.asarray(labels)
    pred = nearest_centroid_predict(tasks, centroids, z)
    dist = np.linalg.norm(np.asarray(z, dtype=np.float64) - centroids[np.searchsorted(tasks, labels)], axis=-1)
    per_task = {str(int(t)): {"accuracy": float(np.mean(pred[labels == t] == t)),
                              "mean_distance": float(dist[labels == t].mean())} for t in np.unique(labels)}
    return {"n": int(len(labels)), "accuracy": float(np.mean(pred == labels)), "mean_distance": float(dist.mean()),
            "shift_ratio": ratio, "per_task": per_task}


# ---------------------------------------------------------------------------- embeddings of a run
def offline_embeddings(run, agent, tasks: Sequence[int], draws: int, size: int, seed: int = 0):
    """z of ``draws`` contexts of ``size`` offline transitions per task: (z [T*draws, L], task [T*draws])."""
    generator = torch.Generator(device=run.device).manual_seed(int(seed))
    labels = np.repeat(np.asarray(tasks), draws)
    ctx = run.sample_offline_context(labels, size, generator=generator)
    lengths = torch.full((len(labels),), size, dtype=torch.long, device=ctx.device)
    return agent.infer_z(ctx, lengths).cpu().numpy(), labels


def protocol_contexts(result, use_next_obs: bool, threshold: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per sub-env, (context when z is first inferred, whole context) rebuilt from the trace.

    The online protocol adds every transition, np_online only its exploration
    transitions; z is first inferred at the end of the evaluation episode that
    brings the evaluation transitions to ``threshold`` (num_exp_traj_eval x max_path_length).
    """
    from rlkit.evaluation.protocols import trace_episodes

    tr = result.trace
    add = tr["active"] & (tr["exploring"] if result.protocol == "np_online" else True)
    rows = [tr["obs"], tr["actions"], tr["rewards"][..., None]] + ([tr["next_obs"]] if use_next_obs else [])
    # float64 here, rounded to the agent's dtype in _infer_each: float32 agents see what the protocol fed them
    rows = torch.as_tensor(np.concatenate([np.asarray(r, dtype=np.float64) for r in rows], axis=-1))
    out = []
    for m in range(add.shape[1]):
        first_end, eval_steps = add.shape[0] - 1, 0
        for ep in trace_episodes(tr, m):
            if not ep["exploring"]:
                eval_steps += len(ep["steps"])
                if eval_steps >= threshold:
                    first_end = int(ep["steps"][-1])
                    break
        steps = np.flatnonzero(add[:, m])
        out.append((rows[steps[steps <= first_end], m], rows[steps, m]))
    return out


def _infer_each(agent, contexts: list[torch.Tensor], device) -> np.ndarray:
    """z of each variable-length context, in one padded batch."""
    lengths = torch.tensor([len(c) for c in contexts], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(contexts, batch_first=True)
    return agent.infer_z(padded.to(device, dtype_of(agent)), lengths.to(device)).cpu().numpy()


def collect_embeddings(run, agent=None, tasks: Sequence[int] | None = None, draws: int = 20,
                       num_evals: int | None = None, seed: int = 0) -> dict:
    """All embeddings of the diagnostics: {"z", "task", "source"} arrays, offline split into fit/held-out.

    ``agent`` (default: the run's) both acts in the protocols and infers z, so
    a hand-made encoder can be checked on the same pipeline.
    """
    from rlkit.core.progress import progress
    from rlkit.evaluation.protocols import eval_transitions, run_protocol

    torch.manual_seed(seed)  # np_online samples policy actions: the same --seed gives the same embeddings
    agent = run.agent if agent is None else agent
    tasks = list(run.test_tasks if tasks is None else tasks)
    if draws < 2:
        raise ValueError(f"--draws must be >= 2 (half fit the centroids, half are held out), got {draws}")
    settings = run.settings(num_evals=num_evals)
    mpl = settings.max_path_length
    z_off, t_off = offline_embeddings(run, agent, tasks, draws, mpl, seed)
    fit = np.tile(np.arange(draws) < (draws + 1) // 2, len(tasks))
    zs, ts, srcs = [z_off[fit], z_off[~fit]], [t_off[fit], t_off[~fit]], [["offline_fit"] * fit.sum(),
                                                                           ["offline"] * (~fit).sum()]
    threshold = settings.num_exp_traj_eval * mpl
    bar = progress(total=eval_transitions(settings, len(tasks), 2), desc="context-shift rollouts", unit="transition")
    for k, protocol in enumerate(ROLLOUT_PROTOCOLS):
        result = run_protocol(protocol, agent, run.env_name, run.env_params, tasks, settings,
                              obs_absmax=run.obs_absmax, seed=seed + 1 + k, device=run.device, record_trace=True,
                              progress=bar)
        contexts = protocol_contexts(result, agent.use_next_obs_in_context, threshold)
        for which, name in ((0, protocol), (1, f"{protocol}_full")):
            zs.append(_infer_each(agent, [c[which] for c in contexts], run.device))
            ts.append(result.task_of)
            srcs.append([name] * len(result.task_of))
    bar.close()
    return {"z": np.concatenate(zs).astype(np.float64), "task": np.concatenate(ts).astype(np.int64),
            "source": np.concatenate([np.asarray(s, dtype=object) for s in srcs]).astype(str),
            "context_size": mpl, "threshold": threshold, "num_evals": settings.num_evals, "draws": draws}


def analyse(emb: dict) -> dict:
    """The report: centroid spread, chance level and :func:`source_report` of every source."""
    z, task, source = emb["z"], emb["task"], emb["source"]
    fit = source == "offline_fit"
    _, centroids = task_centroids(z[fit], task[fit])
    n_tasks = len(np.unique(task[fit]))
    report = {"centroid_spread": centroid_spread(centroids), "chance_accuracy": 1.0 / n_tasks, "sources": {}}
    for name in SOURCES:
        mask = source == name
        if mask.any():
            report["sources"][name] = {"description": DESCRIPTIONS[name],
                                       **source_report(z[fit], task[fit], z[mask], task[mask])}
    return report


# ---------------------------------------------------------------------------- figure
# drawing order: offline first, the first-inference sources last (on top)
_SHAPES = ("X", "^", "s", "D", "v", "P")  # one marker shape per rollout protocol: filled when first inferred
MARKERS = {"offline_fit": ("o", 10, True), "offline": ("o", 18, False),
           **{f"{p}_full": (_SHAPES[k % len(_SHAPES)], 60, False) for k, p in enumerate(ROLLOUT_PROTOCOLS)},
           **{p: (_SHAPES[k % len(_SHAPES)], 60, True) for k, p in enumerate(ROLLOUT_PROTOCOLS)}}
LABELS = {"offline_fit": "offline (fit)", "offline": "offline (held out)"}


MIN_AXIS_VARIANCE = 0.01  # a PCA axis explaining less than this fraction of the variance is not drawn as an axis


def axis_label(k: int, fraction: float) -> str:
    """``PC2 (17.3% of variance)``; an axis with no variance says so."""
    if fraction <= 0.0:
        return f"PC{k + 1} (0% of variance: the embeddings coincide)"
    return f"PC{k + 1} ({100 * fraction:.1f}% of variance)"


def project(z: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str, tuple[str, str], bool]:
    """2-D coordinates, the method used, axis labels, and whether the second axis is flat.

    t-SNE needs scikit-learn, else PCA (with a note). With PCA, a second
    component that explains less than :data:`MIN_AXIS_VARIANCE` of the variance
    is numerical noise (embeddings on a line): ``flat`` is True and the figure
    draws a 1-D strip instead of scattering that noise as if it were an axis.
    """
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            print("note: scikit-learn is not installed; using PCA instead of t-SNE", file=sys.stderr)
        else:
            perplexity = float(min(30, max(2, (len(z) - 1) // 3)))
            xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(z)
            return xy, "tsne", ("t-SNE 1 (no units)", "t-SNE 2 (no units)"), False
    xy, var = pca_2d(z, return_variance=True)
    flat = bool(var[1] < MIN_AXIS_VARIANCE)
    if flat:
        xy = xy.copy()
        xy[:, 1] = 0.0
    return xy, "pca", (axis_label(0, var[0]), axis_label(1, var[1])), flat


def plot_embeddings(emb: dict, report: dict, path: Path, title: str, method: str = "pca") -> str:
    """Scatter of the projected embeddings (colour: task, marker: source) and a bar chart per source.

    When the second principal axis is flat (:func:`project`), the left panel
    is a strip plot instead: PC1 across, one row per context source.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    xy, used, axis_labels, flat = project(emb["z"], method)
    tasks = np.unique(emb["task"])
    cmap = plt.get_cmap("tab10" if len(tasks) <= 10 else "tab20")
    color = {t: cmap(i % cmap.N) for i, t in enumerate(tasks)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [3, 2]})
    present = [name for name in MARKERS if (emb["source"] == name).any()]
    rows = {name: i for i, name in enumerate(present)}
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=len(xy))  # fixed: the same figure every time
    handles = []
    for name in present:
        marker, size, filled = MARKERS[name]
        mask = emb["source"] == name
        cols = [color[t] for t in emb["task"][mask]]
        kwargs = dict(c=cols) if filled else dict(facecolors="none", edgecolors=cols)
        y = rows[name] + jitter[mask] if flat else xy[mask, 1]
        ax.scatter(xy[mask, 0], y, marker=marker, s=size, alpha=0.75, linewidths=1.0, **kwargs)
        handles.append(Line2D([], [], marker=marker, ls="", color="grey", markerfacecolor="grey" if filled else "none",
                              label=LABELS.get(name, name)))
    fit = emb["source"] == "offline_fit"
    for t in tasks:
        c = xy[fit & (emb["task"] == t)].mean(0)
        ax.scatter([c[0]], [len(present) if flat else c[1]], marker="*", s=260, color=color[t], edgecolor="black",
                   zorder=5)
    handles.append(Line2D([], [], marker="*", ls="", color="grey", markeredgecolor="black", markersize=14,
                          label="offline centroid"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)
    ax.set_xlabel(axis_labels[0])
    if flat:
        ax.set_title(f"task embeddings z ({used.upper()}, 1-D: PC2 is flat), colour = task", fontsize=10)
        ax.set_yticks(range(len(present) + 1), [LABELS.get(n, n) for n in present] + ["offline centroid"],
                      fontsize=8)
        ax.set_ylim(len(present) + 0.5, -0.5)
        ax.set_ylabel(f"context source (not an axis: {axis_labels[1]} dropped)", fontsize=8)
    else:
        ax.set_title(f"task embeddings z ({used.upper()}), colour = task", fontsize=10)
        ax.set_ylabel(axis_labels[1])
    names = list(report["sources"])
    acc = [report["sources"][n]["accuracy"] for n in names]
    ratio = [report["sources"][n]["shift_ratio"] for n in names]
    x = np.arange(len(names))
    bx.bar(x - 0.2, acc, 0.4, label="nearest-centroid accuracy (fraction correct)")
    bx.bar(x + 0.2, [r if math.isfinite(r) else 0.0 for r in ratio], 0.4,
           label="shift ratio (distance to own centroid / between centroids)")
    bx.axhline(report["chance_accuracy"], color="black", ls=":", lw=1, label="chance accuracy")
    bx.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    bx.set_xlabel("context source")
    bx.set_ylabel("accuracy / shift ratio (no units)")
    bx.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    bx.set_title("per context source", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_file(path, "wb") as f:  # a full disk leaves no empty or cut figure
            fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    finally:
        plt.close(fig)
    return used


def _json_safe(obj):
    """Non-finite floats become null: strict JSON readers reject NaN / Infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def run_diagnostics(run, out_dir: Path, agent=None, draws: int = 20, num_evals: int | None = None, seed: int = 0,
                    projection: str = "pca") -> dict:
    """Collect, analyse, write JSON / NPZ / PNG into ``out_dir``; returns the report (with file paths)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    emb = collect_embeddings(run, agent=agent, draws=draws, num_evals=num_evals, seed=seed)
    report = analyse(emb)
    stem = out_dir / f"context_shift_itr{run.iteration}"
    png, npz, js = stem.with_suffix(".png"), stem.with_suffix(".npz"), stem.with_suffix(".json")
    used = plot_embeddings(emb, report, png, f"{run.env_name}: context shift (iteration {run.iteration})",
                           projection)
    with atomic_file(npz, "wb") as f:
        np.savez(f, z=emb["z"], task=emb["task"], source=emb["source"])
    report = {"run_dir": str(run.run_dir), "snapshot": str(run.snapshot_path), "iteration": run.iteration,
              "env_name": run.env_name, "tasks": [int(t) for t in np.unique(emb["task"])],
              "context_size": emb["context_size"], "first_inference_transitions": emb["threshold"],
              "offline_draws_fit": int((draws + 1) // 2), "offline_draws_heldout": int(draws // 2),
              "num_evals": emb["num_evals"], "seed": seed, "projection": used, **report,
              "files": {"figure": str(png), "embeddings": str(npz)}}
    atomic_write_text(js, json.dumps(_json_safe(report), indent=2) + "\n")
    report["files"]["json"] = str(js)
    return report


def format_report(report: dict) -> str:
    lines = [f"{'source':<16} {'accuracy':>9} {'shift ratio':>12} {'n':>5}"]
    for name, r in report["sources"].items():
        lines.append(f"{name:<16} {r['accuracy']:>9.3f} {r['shift_ratio']:>12.3f} {r['n']:>5}")
    lines.append(f"chance accuracy {report['chance_accuracy']:.3f}; "
                 f"mean distance between task centroids {report['centroid_spread']:.4g}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.context_shift"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR)")
    p.add_argument("--draws", type=int, default=20, help="offline contexts per task (half fit, half held out)")
    p.add_argument("--num_evals", type=int, default=None, help="protocol repeats per task (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--projection", choices=("pca", "tsne"), default="pca", help="tsne needs scikit-learn")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)

    try:
        if args.num_evals is not None and args.num_evals < 1:
            raise ValueError(f"--num_evals must be >= 1, got {args.num_evals}")
        run = load_run(args.run_dir, args.itr, device=choose_device(args.gpu), data_dir=args.data_dir)
        if not callable(getattr(run.agent, "infer_z", None)):  # a registered trainer need not have a task embedding
            raise ValueError(f"{args.run_dir}: context shift is measured on task embeddings (infer_z), and the "
                             f"agent of trainer {run.config['algo_params'].get('trainer')!r} has none")
        report = run_diagnostics(run, Path(args.out) if args.out else run.run_dir, draws=args.draws,
                                 num_evals=args.num_evals, seed=args.seed, projection=args.projection)
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{run.env_name} iteration {run.iteration}: {len(report['tasks'])} test tasks")
    print(format_report(report))
    for path in report["files"].values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
