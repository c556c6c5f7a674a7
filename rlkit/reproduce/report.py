"""The results table, the claim checks and the learning-curve figure, from records alone."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rlkit import plot as rplot
from rlkit.behavior.config import compose_sac_config
from rlkit.config import preset_oracle
from rlkit.data import DatasetError
from rlkit.data.native import generator_clash, read_metadata
from rlkit.data.profile import KINDS, reference_for
from rlkit.envs import offline_data_env
from rlkit.context_shift import SOURCES
from rlkit.evaluation.protocols import PROTOCOL_TITLES
from rlkit.evaluation.reference import ReferenceReturns, ReferenceUnavailable, reference_returns
from rlkit.reproduce.plan import PROTOCOLS, Plan
from rlkit.reproduce.records import window_mean


# the diagnostics' first-inference sources (rlkit.context_shift.SOURCES without the end-of-protocol ones)
SHIFT_SOURCES = tuple(s for s in SOURCES if not s.endswith("_full"))


def _mean_std(values: list[float | None]) -> tuple[float, float, int]:
    v = np.array([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def record_reference(record: dict) -> ReferenceReturns | None:
    """The record's reference returns; records written before they were kept get them from the dataset, if here.

    That fallback reads whatever dataset now sits at the record's ``data_dir``. A plan's folder is
    reused when its data settings change (the near-expert data was replaced by the faithful data in
    the same place), so the dataset is used only when its recorded generator settings are the ones
    the record says its data was made with; otherwise the record has no reference, rather than
    another dataset's.
    """
    if record.get("reference"):
        return ReferenceReturns.from_dict(record["reference"])
    if not _dataset_is_the_records(record):
        return None
    try:
        return reference_returns(record["config"], record["seed"])
    except ReferenceUnavailable:
        return None


def _dataset_is_the_records(record: dict) -> bool:
    """Whether the dataset at the record's ``data_dir`` was made as ``record["dataset"]`` says."""
    made_as = record.get("dataset")
    if not isinstance(made_as, dict):
        return True  # a record that does not say how its data was made: nothing to compare
    try:
        made = read_metadata(record["config"]["algo_params"]["data_dir"]).get("generator_config")
        planned = {"sac": OmegaConf.to_container(compose_sac_config(made_as["preset"], list(made_as["overrides"])),
                                                 resolve=True),
                   "seed": made_as["seed"]}
    except (DatasetError, KeyError, TypeError, ValueError):
        return False
    return not generator_clash(made, planned)


def dataset_generations(records: list[dict]) -> list[tuple[ReferenceReturns, list[dict]]]:
    """The records grouped by the behaviour data they trained on, as their references tell it.

    A plan's recipe (generator preset, seed, overrides) is checked for every record, but the same
    recipe run again can give other data: the generator is not bit-reproducible across thread
    counts or code revisions. The behaviour returns of the test tasks (best checkpoint, data mean)
    are read from the data itself, so two records whose values differ trained on two generations
    of the dataset. Records without references are left out (nothing to compare)."""
    groups: dict[tuple, tuple[ReferenceReturns, list[dict]]] = {}
    for rec in records:
        ref = record_reference(rec)
        if ref is None or ref.behaviour_best is None:
            continue
        key = (round(ref.behaviour_best, 6), None if ref.behaviour_data is None else round(ref.behaviour_data, 6),
               tuple(ref.tasks))
        groups.setdefault(key, (ref, []))[1].append(rec)
    return list(groups.values())


def generations_note(records: list[dict]) -> list[str]:
    """A paragraph for the page when the runs did not all train on one generation of the dataset."""
    gens = dataset_generations(records)
    if len(gens) < 2:
        return []
    parts = []
    for ref, recs in gens:
        runs = ", ".join(f"{r['method']} seed {r['seed']}" for r in sorted(recs, key=lambda r: (r["method"], r["seed"])))
        data = "" if ref.behaviour_data is None else f", data {ref.behaviour_data:.1f}"
        parts.append(f"{runs} (best behaviour checkpoint {ref.behaviour_best:.1f}{data})")
    return ["", f"**These runs trained on {len(gens)} generations of this plan's dataset**: the same generator "
            "settings, run again (the generator is not bit-reproducible across thread counts and code revisions), "
            "so the spread over seeds includes the data's, and the reference values above are their mean: "
            + "; ".join(parts) + "."]


def plan_reference(records: list[dict]) -> tuple[dict | None, str]:
    """Reference values for the page: random / best behaviour / data mean, averaged over the records that have them.

    Returns (values or None, a one-line note). Every run of a plan uses one
    dataset and, with the published splits, the same test tasks, so the
    values normally agree and the mean is just that value.
    """
    refs = [r for r in map(record_reference, records) if r is not None]
    if not refs:
        return None, "no reference lines: the runs' dataset is not here and the records predate stored references"
    best = [r for r in refs if r.behaviour_best is not None]
    steps = sorted({r.behaviour_best_step for r in best})
    values = {"random": float(np.mean([r.random for r in refs])),
              "behaviour_best": float(np.mean([r.behaviour_best for r in best])) if best else None,
              "behaviour_best_step": steps[0] if len(steps) == 1 else None,
              "behaviour_data": (float(np.mean([r.behaviour_data for r in best if r.behaviour_data is not None]))
                                 if any(r.behaviour_data is not None for r in best) else None),
              "n_runs": len(refs), "episode_length": refs[0].episode_length, "n_tasks": len(refs[0].tasks),
              "random_episodes": refs[0].random_episodes}
    missing = len(records) - len(refs)
    return values, (f"reference returns from {len(refs)} of {len(records)} runs" if missing else "")


def summarise(plan: Plan, records: list[dict]) -> dict:
    """method -> protocol -> (mean, std, n seeds) of the final return; plus context-shift means."""
    out = {}
    for m in plan.methods:
        recs = [r for r in records if r["method"] == m]
        if not recs:
            continue
        row = {p: _mean_std([r["final"][p] for r in recs]) for p in PROTOCOLS}
        shift = {}
        measured = [r for r in recs if r.get("context_shift")]  # none: a method without a task embedding
        for src in SHIFT_SOURCES:
            acc = [r["context_shift"]["sources"][src]["accuracy"] for r in measured]
            ratio = [r["context_shift"]["sources"][src]["shift_ratio"] for r in measured]
            shift[src] = (_mean_std(acc)[0], _mean_std(ratio)[0]) if measured else None
        row["shift"] = shift
        row["seeds"] = sorted(r["seed"] for r in recs)
        row["wall_min"] = float(np.mean([sum(r["wall_time_s"].values()) for r in recs]) / 60)
        row["steps"] = int(recs[0]["train_steps"])
        # training's own cost, evaluation and diagnostics apart: comparable across methods of one plan
        row["ms_per_step"] = float(np.mean([1e3 * r["wall_time_s"]["train"] / max(1, r["train_steps"]) for r in recs]))
        out[m] = row
    return out


def _fmt(ms: tuple[float, float, int]) -> str:
    mean, std, n = ms
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


def _paper(plan: Plan, method: str, protocol: str) -> str:
    value = plan.paper.get(method, {}).get(protocol)
    return "" if value is None else f" ({value})"


def claims(summary: dict, methods: list[str] | None = None) -> list[tuple[str, bool | None, str]]:
    """The paper's point-robot claims, each (statement, held?, the numbers that decide it).

    "A below B" needs a clear gap: 25 % of |B| for the collapse claims; for the
    ablation ordering, more than the two cells' seed standard deviations added
    (at least 1.0), so that a difference inside the seed noise is not read as
    an ordering. A claim whose numbers are missing is None (not yet measured);
    a claim about a method outside ``methods`` (a plan that leaves it out) is
    left out.
    """
    def cell(m, p):
        mean, std, _ = summary.get(m, {}).get(p, (math.nan, 0.0, 0))
        return mean, std

    def clearly_below(a, b):  # a, b: (mean, std)
        return a[0] < b[0] - max(1.0, a[1] + b[1])

    out = []

    def check(statement, needs, decide, numbers, *cells):
        if methods is not None and not all(m in methods for m in needs):
            return
        known = all(not math.isnan(c[0]) for c in cells)
        out.append((statement, bool(decide()) if known else None, numbers))

    f_off, f_on, f_np = cell("FOCAL", "offline"), cell("FOCAL", "online"), cell("FOCAL", "np_online")
    c_off, c_on, c_np = cell("CSRO", "offline"), cell("CSRO", "online"), cell("CSRO", "np_online")
    p_off, p_on = cell("offline-PEARL", "offline"), cell("offline-PEARL", "online")
    check("FOCAL collapses under online context (online well below offline; paper -14.9 vs -4.4)", ["FOCAL"],
          lambda: f_on[0] < f_off[0] - 0.25 * abs(f_off[0]), f"FOCAL offline {f_off[0]:.1f}, online {f_on[0]:.1f}",
          f_off, f_on)
    check("offline PEARL collapses under online context (paper -17.8 vs -5.1)", ["offline-PEARL"],
          lambda: p_on[0] < p_off[0] - 0.25 * abs(p_off[0]),
          f"offline PEARL offline {p_off[0]:.1f}, online {p_on[0]:.1f}", p_off, p_on)
    check("CSRO with non-prior context stays near its offline-context level (within 25 %)", ["CSRO"],
          lambda: c_np[0] >= c_off[0] - 0.25 * abs(c_off[0]), f"CSRO offline {c_off[0]:.1f}, non-prior {c_np[0]:.1f}",
          c_off, c_np)
    check("CSRO non-prior is far above FOCAL online (by 25 % of it or more)", ["CSRO", "FOCAL"],
          lambda: c_np[0] > f_on[0] + 0.25 * abs(f_on[0]),
          f"CSRO non-prior {c_np[0]:.1f} vs FOCAL online {f_on[0]:.1f}", c_np, f_on)
    others = (("FOCAL/non-prior", f_np), ("CSRO/online", c_on))
    check("ablation: neither part (FOCAL, online) is clearly below each single part", ["CSRO", "FOCAL"],
          lambda: all(clearly_below(f_on, o) for _, o in others),
          f"FOCAL/online {f_on[0]:.1f} ± {f_on[1]:.1f}; " + "; ".join(f"{n} {o[0]:.1f} ± {o[1]:.1f}" for n, o in others),
          f_on, f_np, c_on)
    check("ablation: both parts (CSRO, non-prior) is clearly above each single part", ["CSRO", "FOCAL"],
          lambda: all(clearly_below(o, c_np) for _, o in others),
          f"CSRO/non-prior {c_np[0]:.1f} ± {c_np[1]:.1f}; " + "; ".join(f"{n} {o[0]:.1f} ± {o[1]:.1f}" for n, o in others),
          c_np, f_np, c_on)
    return out


def _step(ref: dict) -> str:
    return f" (generator step {ref['behaviour_best_step']})" if ref.get("behaviour_best_step") is not None else ""


def dataset_profile_lines(plan: Plan, profile: dict[int, dict[str, float]] | None) -> list[str]:
    """The behaviour data's quality, per checkpoint, beside the committed reference profile of its env."""
    if not profile:
        return []
    data_env = offline_data_env(plan.env)
    ref = reference_for(data_env)
    lines = ["", f"Behaviour data ({data_env} dataset; `python -m rlkit.data profile`): mean return of each "
             "checkpoint's episodes over all tasks, deterministic (mean action) / sampled"
             + (f", beside the reference profile, {ref.source} (`configs/reference_profiles/{data_env}.json`)"
                if ref else "") + ".", ""]
    head = "| step | deterministic | sampled |" + (" reference deterministic | difference | reference sampled |"
                                                  if ref else "")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    worst = None
    for step, row in sorted(profile.items()):
        cells = [f"{row[k]:.1f}" if k in row else "–" for k in KINDS]
        line = f"| {step:,} | " + " | ".join(cells) + " |"
        if ref:
            r = ref.table.get(step)
            if r is None:
                line += " – | – | – |"
            else:
                diff = row["deterministic"] - r["deterministic"]
                worst = diff if worst is None or abs(diff) > abs(worst) else worst
                line += f" {r['deterministic']:.1f} | {diff:+.1f} | " + (f"{r['sampled']:.1f}" if "sampled" in r else "–") + " |"
        lines.append(line)
    if worst is not None:
        lines += ["", f"Largest deterministic difference from the reference: {worst:+.1f}."]
    return lines


def _method_table(plan: Plan, summary: dict) -> list[str]:
    """The final returns of ``summary``'s methods, with their length and cost (training alone per step)."""
    lines = ["| method | seeds | " + " | ".join(PROTOCOL_TITLES[p] for p in PROTOCOLS)
             + " | steps | training ms / step | wall time / run |",
             "|---|---|" + "---|" * len(PROTOCOLS) + "---|---|---|"]
    for m, row in summary.items():
        cells = [_fmt(row[p]) + _paper(plan, m, p) for p in PROTOCOLS]
        lines.append(f"| {m} | {', '.join(map(str, row['seeds']))} | " + " | ".join(cells)
                     + f" | {row['steps']:,} | {row['ms_per_step']:.0f} | {row['wall_min']:.0f} min |")
    return lines


def markdown(plan: Plan, records: list[dict], figure: str | None, command: str,
             profile: dict[int, dict[str, float]] | None = None) -> str:
    summary = summarise(plan, records)
    lines = [f"# {plan.env}, `{plan.scale}` scale", "", plan.description.strip(), "",
             f"Produced by `{command}` from the records in `docs/results/records/{plan.name}/` "
             "(this file is regenerated; do not edit it by hand).", "",
             "Final test return (mean of the last "
             f"{plan.final_window} iterations' evaluations, 10 held-out tasks), mean ± std over seeds; "
             "the paper's number in brackets where it gives one.", "",
             *_method_table(plan, {m: row for m, row in summary.items() if not preset_oracle(m)})]
    oracles = {m: row for m, row in summary.items() if preset_oracle(m)}
    if oracles:
        lines += ["", "Oracles, apart: they read what an offline learner does not have, so they are not ranked with "
                  "the methods above (" + "; ".join(f"{m}: {preset_oracle(m)}" for m in oracles) + ").", "",
                  *_method_table(plan, oracles)]
    ref, _ = plan_reference(records) if records else (None, "")
    if ref is not None:
        best = ("" if ref["behaviour_best"] is None else
                f"; the best behaviour checkpoint{_step(ref)} {ref['behaviour_best']:.1f}")
        data = ("" if ref["behaviour_data"] is None else
                f"; the behaviour checkpoints the test data comes from, on average, {ref['behaviour_data']:.1f}")
        lines += ["", f"For scale, on the same {ref['n_tasks']} test tasks ({ref['episode_length']}-step episodes): "
                  f"a uniform-random policy scores {ref['random']:.1f} (mean of {ref['random_episodes']} episodes "
                  f"per task){best}{data} (`rlkit.evaluation.reference`; the dashed and dotted lines of the figure)."]
    lines += generations_note(records)
    lines += dataset_profile_lines(plan, profile)
    missing = [f"{m} seed {s}" for m in plan.methods for s in plan.seeds
               if not any(r["method"] == m and r["seed"] == s for r in records)]
    if missing:
        lines += ["", f"Not finished yet: {', '.join(missing)}."]
    lines += ["", "Context-shift diagnostics of the final snapshot (`python -m rlkit.context_shift`): nearest-centroid "
              "task accuracy / shift ratio of z inferred from each context source, mean over seeds "
              "(accuracy: higher is better, chance = 1/10; shift ratio: 0 = lands on the offline embedding, "
              "1 = as far as another task; n/a: a method without a task embedding, such as Prompt-DT).", "",
              "| method | offline draws (held out) | online, first inference | non-prior, first inference |",
              "|---|---|---|---|"]
    for m, row in summary.items():
        lines.append(f"| {m} | " + " | ".join("n/a" if cell is None else f"{cell[0]:.2f} / {cell[1]:.2f}"
                                             for cell in (row["shift"][s] for s in SHIFT_SOURCES)) + " |")
    if plan.claims:
        lines += ["", "The paper's claims, checked on these numbers (a claim needs every number it compares):", "",
                  "| claim | held? | numbers |", "|---|---|---|"]
        for statement, held, numbers in claims(summary, plan.methods):
            verdict = "not yet measured" if held is None else ("**held**" if held else "**not held**")
            lines.append(f"| {statement} | {verdict} | {numbers} |")
    lines += gap_lines(plan, records)
    if figure:
        vector = str(Path(figure).with_suffix(".pdf"))
        lines += ["", f"![learning curves]({figure})", "", f"The same figure as a vector file: [{vector}]({vector})."]
    if plan.reductions:
        lines += ["", "Reductions from the paper's settings at this scale:", "", "| what | why |", "|---|---|"]
        for r in plan.reductions:
            lines.append(f"| {r.get('what', '')} | {r.get('why', '')} |")
    return "\n".join(lines) + "\n"


def return_at(record: dict, protocol: str, step: int) -> float | None:
    """A protocol's return after ``step`` training steps: the mean of the record's last ``final_window``
    evaluations up to that step (the rule its ``final`` follows at the end), None if the run is shorter."""
    steps = record["curves"]["steps"]
    if not steps or steps[-1] < step:
        return None
    upto = sum(1 for s in steps if s <= step)
    return window_mean(record["curves"][protocol][:upto], record["final_window"])


def gap_rows(plan: Plan, records: list[dict], low: str = "np_online", high: str = "offline") -> list[tuple]:
    """(method, step, {seed: gap}) for every method and each of the plan's ``report_steps`` its runs reach:
    the gap ``high - low`` (offline minus non-prior: how far the non-prior return is below the offline one)."""
    rows = []
    for method in plan.methods:
        recs = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
        for step in plan.report_steps:
            gaps = {}
            for r in recs:
                a, b = return_at(r, high, step), return_at(r, low, step)
                if a is not None and b is not None:
                    gaps[r["seed"]] = a - b
            if gaps:
                rows.append((method, step, gaps))
    return rows


def gap_lines(plan: Plan, records: list[dict]) -> list[str]:
    rows = gap_rows(plan, records)
    if not rows:
        return []
    out = ["", f"How far the non-prior return is below the offline one (offline − non-prior, each the mean of the "
           f"last {plan.final_window} evaluations up to that length), per seed and mean ± std over seeds:", "",
           "| method | steps | per seed | mean ± std | offline | non-prior |", "|---|---|---|---|---|---|"]
    for method, step, gaps in rows:
        recs = [r for r in records if r["method"] == method and r["seed"] in gaps]
        off = _mean_std([return_at(r, "offline", step) for r in recs])
        npo = _mean_std([return_at(r, "np_online", step) for r in recs])
        per_seed = ", ".join(f"{g:.1f} (seed {s})" for s, g in gaps.items())
        out.append(f"| {method} | {step:,} | {per_seed} | {_fmt(_mean_std(list(gaps.values())))} | {_fmt(off)} | "
                   f"{_fmt(npo)} |")
    return out


def _method_curves(recs: list[dict], protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """x (steps) and one row per seed of ``protocol``'s curve, over the steps every seed reached."""
    n = min(len(r["curves"]["steps"]) for r in recs)
    x = np.array(recs[0]["curves"]["steps"][:n])
    y = np.array([[np.nan if v is None else v for v in r["curves"][protocol][:n]] for r in recs], dtype=float)
    return x, y


def length_warnings(plan: Plan, records: list[dict]) -> list[str]:
    """One line per method whose seeds' curves end at different steps (the figure uses the common part)."""
    out = []
    for m in plan.methods:
        recs = [r for r in records if r["method"] == m]
        ends = {r["seed"]: r["curves"]["steps"][-1] if r["curves"]["steps"] else 0 for r in recs}
        if len(set(ends.values())) > 1:
            out.append(f"the {m} runs have different lengths (" + ", ".join(f"seed {s} to step {v:,}" for s, v in
                                                                              ends.items())
                       + f"); the figure uses only the steps up to {min(ends.values()):,}, which all of them reached")
    return out


def plot_curves(plan: Plan, records: list[dict], path: Path) -> Path | None:
    """One panel per protocol, in rlkit.plot's order; per method the mean over the seeds with data and,
    where two or more have data, their min-max band; random / behaviour reference lines.

    Written as ``path`` (a PNG for the page) and the same name in PDF, sized and lettered for a paper
    (rlkit.plot's layout). Returns ``path``."""
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, note = plan_reference(records)
    if note:
        print(f"note: {note}", file=sys.stderr)
    for warning in length_warnings(plan, records):
        print(f"warning: {warning}", file=sys.stderr)
    with plt.rc_context(rplot.PAPER_RC):
        fig, axes = rplot.paper_figure(len(rplot.PROTOCOL_ORDER), 2.0, sharey=True)
        band_counts: set[int] = set()
        for ax, p in zip(axes, rplot.PROTOCOL_ORDER):
            for m in plan.methods:
                recs = [r for r in records if r["method"] == m]
                if not recs:
                    continue
                x, y = _method_curves(recs, p)
                count = np.isfinite(y).sum(0)
                mean = np.where(count > 0, np.nansum(y, 0) / np.maximum(count, 1), np.nan)
                n = int(np.isfinite(y).any(1).sum())
                what = "1 seed" if n == 1 else f"mean of {rplot.plural(n, 'seed')}"
                line, = ax.plot(x, mean, label=f"{m} ({what})")
                several = count >= 2
                if several.any():
                    low, high = np.full(len(x), np.nan), np.full(len(x), np.nan)
                    low[several], high[several] = np.nanmin(y[:, several], 0), np.nanmax(y[:, several], 0)
                    ax.fill_between(x, low, high, where=several, color=line.get_color(), alpha=0.2, lw=0)
                    band_counts |= set(count[several].tolist())
            if ref is not None:
                ax.axhline(ref["random"], color="dimgrey", ls=":", lw=1.3,
                           label=f"uniform-random policy ({ref['random']:.1f})")
                if ref["behaviour_best"] is not None:
                    ax.axhline(ref["behaviour_best"], color="black", ls="--", lw=1.1,
                               label="best behaviour checkpoint" + (f", generator step {ref['behaviour_best_step']}"
                                                                    if ref.get("behaviour_best_step") is not None
                                                                    else "") + f" ({ref['behaviour_best']:.1f})")
            ax.set_title(rplot.PROTOCOL_TITLES[p])
            ax.set_xlabel("meta-training steps")
            ax.grid(alpha=0.3)
            rplot.style_axes(ax)
        axes[0].set_ylabel(rplot.return_label(ref["n_tasks"], ref["episode_length"]) if ref
                           else rplot.return_label())
        handles, labels = rplot.unique_legend(axes)
        if band_counts:
            labels.append(rplot.band_label("minmax", band_counts))
            handles.append(rplot.band_handle(labels[-1]))
        rplot.paper_legend(fig, handles, labels)
        path.parent.mkdir(parents=True, exist_ok=True)
        return rplot.save_figure(fig, path, ("png", "pdf"))
