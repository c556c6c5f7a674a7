"""Learning curves from runs' progress.csv: mean and spread over seeds, reference lines, IQM aggregates.

    python -m rlkit.plot RUN_DIR [RUN_DIR ...] [--keys Average_NpOnlineReturn_all_test_tasks,...]
        [--x Epoch | --x "Number of train steps total"] [--band minmax|std|none] [--out FILE]
        [--format png,pdf] [--normalized] [--no-reference] [--final-window 3]

Run directories that share a parent (output/ENV/EXP_NAME/seed*) are seeds of
one experiment: they are drawn as one line (the mean over seeds at each x)
with a band (min-max by default, or mean ± std) where two or more seeds
have data, named in the legend. A directory without
progress.csv but with seed*/progress.csv inside counts as all its seeds.
progress.csv files are only read, so viskit keeps working on them.
Default keys: the three evaluation protocols' averages present in the files.

Return panels carry two reference lines for the run's test tasks
(rlkit.evaluation.reference): a uniform-random policy and the best behaviour
checkpoint of the dataset the run trained on (variant.json's
algo_params.data_dir). Without that dataset the lines are left out, with a
one-line note. ``--normalized`` plots the D4RL-style score instead (0 =
random, 100 = best behaviour checkpoint).

Runs of different envs are refused (one figure, one env: their returns are
not comparable, and an aggregate over them means nothing), and so are seeds
of one experiment whose variant.json settings differ in more than the seed,
the run's location and its iteration count (a seed ``--restart`` re-made after
the config changed): the message names the keys. Seeds of one
experiment that ran for different lengths are flagged with a warning line
naming the lengths and the short seeds; the curve is the mean of the seeds
that reached each x, and the aggregate compares the seeds where all of them
have data. ``--labels`` names the experiments (one each, in their order). A legend's "(mean of N seeds)" counts the seeds with data for that panel.

Figures are made for a paper: one panel one column wide, more the full width
of a two-column page, all text 9 pt; written as --out and, beside it, in each
--format (default: a 300 dpi PNG and a vector PDF).

When an experiment has two or more seeds, each seed's final score (the mean
of its last ``--final-window`` evaluations) is aggregated per experiment and
key: the interquartile mean with a 95 % stratified bootstrap interval
(rlkit.evaluation.aggregate, rliable). The table is printed and written to
FILE_aggregates.csv, the interval plot to FILE_aggregates (same formats).
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rlkit.errors import UserError, cli, usage_name
from rlkit.evaluation.aggregate import DEFAULT_REPS, AggregateUnavailable, iqm_with_ci
from rlkit.evaluation.protocols import PROGRESS_KEYS, PROTOCOLS
from rlkit.evaluation.protocols import PROTOCOL_TITLES as REGISTRY_TITLES
from rlkit.evaluation.reference import (
    ReferenceReturns,
    ReferenceUnavailable,
    normalized_score,
    run_reference_returns,
)
from rlkit.fileio import atomic_write_bytes, atomic_write_text

# The panel order and titles of every learning-curve figure: the protocol registry's
PROTOCOL_ORDER = PROTOCOLS
PROTOCOL_TITLES = REGISTRY_TITLES
DEFAULT_KEYS = tuple(PROGRESS_KEYS[p] for p in PROTOCOL_ORDER)
X_KEYS = ("Epoch", "Number of train steps total")
X_LABELS = {"Epoch": "meta-training iteration", "Number of train steps total": "meta-training steps"}
KEY_TITLES = {PROGRESS_KEYS[p]: PROTOCOL_TITLES[p] for p in PROTOCOL_ORDER}
BANDS = ("minmax", "std", "none")
BAND_WORDS = {"minmax": "min-max", "std": "mean ± std"}
NORMALIZED_LABEL = "normalized score"

# Sized for a paper: a one-panel figure fits one column, more panels the full width of a two-column
# page, so that its text prints at FONT_PT when placed at that width (no scaling down).
COLUMN_WIDTH_IN = 3.4
FULL_WIDTH_IN = 7.0
PANELS_PER_ROW = 3
FONT_PT = 9
PNG_DPI = 300
FORMATS = ("png", "pdf", "svg")
DEFAULT_FORMATS = ("png", "pdf")  # a PNG for pages and a vector file for papers
PAPER_RC = {"font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
            "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
            "figure.titlesize": FONT_PT, "pdf.fonttype": 42}  # 42: TrueType fonts in the PDF, as journals ask


class PlotError(UserError, ValueError):
    """Runs or keys that cannot be plotted; one-line message."""


def is_return_key(key: str) -> bool:
    """Columns that hold test returns (the protocols' averages, per-episode curves): they get reference lines."""
    return key in PROGRESS_KEYS.values() or "return" in key.lower()


def expand_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories holding progress.csv; an experiment folder stands for its seed*/ runs, an env
    folder for every experiment's (one group per experiment: per grid point of a sweep)."""
    runs = []
    for p in map(Path, paths):
        if (p / "progress.csv").is_file():
            runs.append(p)
            continue
        seeds = sorted(d for d in p.glob("seed*") if (d / "progress.csv").is_file()) if p.is_dir() else []
        if not seeds and p.is_dir():  # an env folder: every experiment in it, e.g. each point of a grid sweep
            seeds = sorted(d for d in p.glob("*/seed*") if (d / "progress.csv").is_file())
        if not seeds:
            what = "does not exist" if not p.exists() else "has no progress.csv (nor seed*/progress.csv)"
            raise PlotError(f"{str(p)!r} {what}")
        runs += seeds
    return list(dict.fromkeys(runs))


def group_runs(run_dirs: Sequence[Path]) -> "OrderedDict[str, list[Path]]":
    """Seeds of one experiment share a parent; the label is ENV/EXP_NAME (or the parent's name)."""
    groups: OrderedDict[str, list[Path]] = OrderedDict()
    for run in run_dirs:
        parent = run.resolve().parent
        label = f"{parent.parent.name}/{parent.name}" if parent.parent.name else parent.name
        groups.setdefault(label, []).append(run)
    return groups


def read_progress(run_dir: Path):
    import pandas as pd

    path = run_dir / "progress.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:  # pandas raises EmptyDataError (a ValueError) for empty files
        raise PlotError(f"cannot read {str(path)!r}: {exc}") from None
    if frame.empty:
        raise PlotError(f"{str(path)!r} has no rows yet")
    return frame


def _check_key(key: str, columns, where: str) -> None:
    if key not in columns:
        close = difflib.get_close_matches(key, list(columns), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PlotError(f"column {key!r} is not in {where}{hint}")


def aggregate(frames, x: str, key: str, band: str = "minmax"):
    """Per x value: mean over seeds and the band's (low, high); x values missing in a seed use the others."""
    import pandas as pd

    long = pd.concat([f[[x, key]].assign(_seed=i) for i, f in enumerate(frames)], ignore_index=True)
    long = long.dropna(subset=[x, key])
    stats = long.groupby(x)[key].agg(["mean", "min", "max", "std", "count"]).sort_index()
    if band == "std":
        std = stats["std"].fillna(0.0)
        stats["low"], stats["high"] = stats["mean"] - std, stats["mean"] + std
    else:
        stats["low"], stats["high"] = stats["min"], stats["max"]
    return stats


@dataclass
class LoadedRuns:
    """Runs read once for the curves and the aggregates: frames, keys, seed groups, reference returns."""

    runs: list[Path]
    frames: dict
    keys: list[str]
    x: str
    groups: "OrderedDict[str, list[Path]]"
    refs: dict = field(default_factory=dict)  # run -> ReferenceReturns | None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the numbers hide (seeds of other lengths)

    def reference_of(self, run: Path) -> ReferenceReturns | None:
        return self.refs.get(run)


def load_runs(run_dirs: Sequence[str | Path], keys: Sequence[str] | None = None, x: str = "Epoch",
              references: bool = True, labels: Sequence[str] | None = None) -> LoadedRuns:
    """Read progress.csv of every run, check the keys, and (for return keys) each run's reference returns.

    ``labels``: one name per experiment, in their order, for the legends and the aggregates."""
    runs = expand_run_dirs(run_dirs)
    frames = {run: read_progress(run) for run in runs}
    for run, frame in frames.items():
        _check_key(x, frame.columns, str(run / "progress.csv"))
    if keys is None:
        keys = [k for k in DEFAULT_KEYS if any(k in f.columns for f in frames.values())]
        if not keys:
            raise PlotError(f"none of {', '.join(DEFAULT_KEYS)} is in the progress.csv files; name --keys")
    for key in keys:
        for run, frame in frames.items():
            _check_key(key, frame.columns, str(run / "progress.csv"))
    check_one_env(runs)
    groups = group_runs(runs)
    check_one_configuration(groups)
    loaded = LoadedRuns(runs, frames, list(keys), x, apply_labels(groups, labels))
    loaded.warnings += flag_lengths(loaded)
    if references and any(is_return_key(k) for k in keys):
        for run in runs:
            try:
                loaded.refs[run] = run_reference_returns(run)
            except ReferenceUnavailable as exc:
                loaded.refs[run] = None
                loaded.notes.append(f"no reference lines for {run}: {exc}")
    return loaded


def run_env(run: Path) -> str | None:
    """The env a run trained on (variant.json's env_name), or None when it does not say."""
    try:
        env = json.loads((run / "variant.json").read_text(encoding="utf-8")).get("env_name")
    except (OSError, ValueError, AttributeError):
        return None
    return env if isinstance(env, str) else None


def check_one_env(runs: Sequence[Path]) -> None:
    """One figure, one env: returns of different envs share no scale, and their mean or IQM means nothing."""
    by_env: dict[str, list[Path]] = {}
    for run in runs:
        env = run_env(run)
        if env is not None:
            by_env.setdefault(env, []).append(run)
    if len(by_env) > 1:
        named = "; ".join(f"{env}: {', '.join(map(str, members[:2]))}" + (f" and {len(members) - 2} more"
                                                                          if len(members) > 2 else "")
                          for env, members in by_env.items())
        raise PlotError(f"these runs are of {len(by_env)} different envs ({named}); plot each env on its own")


def _variant(run: Path) -> dict | None:
    try:
        variant = json.loads((run / "variant.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return variant if isinstance(variant, dict) else None


def settings_differences(first: dict, other: dict) -> list[str]:
    """The settings two seeds' variant.json differ in, other than where and as which seed they ran
    (rlkit.core.logger.RUN_CONTROL_KEYS) and how many iterations they were asked for (their curves'
    lengths say that); a key only one of them has (an option added since) is not compared."""
    from rlkit.core.logger import COMPUTED_RUN_KEYS, EXTENDABLE_KEYS, RUN_CONTROL_KEYS, changed_keys

    def has(tree, path: str) -> bool:
        for part in path.split("."):
            if not isinstance(tree, dict) or part not in tree:
                return False
            tree = tree[part]
        return True

    return [path for path in sorted(changed_keys(first, other))
            if path not in EXTENDABLE_KEYS and has(first, path) and has(other, path)
            and (path in COMPUTED_RUN_KEYS or not any(path == k or path.startswith(k + ".") for k in RUN_CONTROL_KEYS))]


def check_one_configuration(groups: "OrderedDict[str, list[Path]]") -> None:
    """One curve, one configuration: seeds of an experiment folder that other settings made (a seed
    re-made by ``--restart`` after the config changed) would be averaged into a curve of neither."""
    for label, members in groups.items():
        variants = [(run, v) for run in members if (v := _variant(run)) is not None]
        for run, variant in variants[1:]:
            keys = settings_differences(variants[0][1], variant)
            if keys:
                shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
                raise PlotError(f"the seeds of {label} were made with different settings: {run.name} differs from "
                                f"{variants[0][0].name} in {shown} (variant.json); a curve averages one "
                                "configuration: move the odd seeds into an experiment folder of their own")


def common_end(loaded: LoadedRuns, members: Sequence[Path]) -> float:
    """The last x every one of ``members`` reached: where their final scores are compared."""
    return min(loaded.frames[run][loaded.x].max() for run in members)


def flag_lengths(loaded: LoadedRuns) -> list[str]:
    """Warning lines for seeds of one experiment that ran for different lengths, and for experiments
    that end at different points.

    A killed seed must not take the others' curve with it: the curve is the mean of the seeds that
    reached each x (the band only where two or more did). A final score, though, is each seed's last
    evaluations, and taken at different points it would mix two stages of training; so the aggregate
    uses every seed up to :func:`common_end`, and the warning says both."""
    out, ends = [], {}
    for label, members in loaded.groups.items():
        last = {run: loaded.frames[run][loaded.x].max() for run in members}
        ends[label] = common = min(last.values())
        if len(set(last.values())) > 1:
            lengths = ", ".join(f"{run.name} to {v:g}" for run, v in last.items())
            short = ", ".join(run.name for run, v in last.items() if v < max(last.values()))
            out.append(f"the runs of {label} have different lengths ({loaded.x} {lengths}; short: {short}): its "
                       f"curve is the mean of the seeds that reached each {loaded.x}, and its aggregate uses only "
                       f"{loaded.x} up to {common:g}, which all of them reached")
    if len(set(ends.values())) > 1:
        out.append("the experiments end at different points (" + ", ".join(f"{k} at {loaded.x} {v:g}"
                                                                          for k, v in ends.items())
                   + "); their final scores are not taken at the same stage of training")
    return out


def apply_labels(groups: "OrderedDict[str, list[Path]]", labels: Sequence[str] | None):
    """The experiments renamed by ``--labels``, one label each in their order; checked in one line."""
    if labels is None:
        return groups
    labels = [lab.strip() for lab in labels]
    names = ", ".join(groups)
    if len(labels) != len(groups):
        raise PlotError(f"--labels gives {plural(len(labels), 'label')} for {plural(len(groups), 'experiment')} "
                        f"({names}); give one per experiment, in this order")
    if any(not lab for lab in labels):
        raise PlotError(f"--labels has an empty label ({','.join(labels)!r}); give one per experiment ({names})")
    twice = next((lab for i, lab in enumerate(labels) if lab in labels[:i]), None)
    if twice is not None:
        raise PlotError(f"--labels names {twice!r} twice: each experiment needs a label of its own")
    return OrderedDict(zip(labels, groups.values()))


def seeds_with_data(loaded: LoadedRuns, members: Sequence[Path], key: str) -> int:
    """How many of an experiment's seeds have at least one value of ``key`` (the count its label gives)."""
    return sum(1 for run in members if loaded.frames[run][key].notna().any())


def _normalize(loaded: LoadedRuns, run: Path, key: str, values):
    ref = loaded.reference_of(run)
    if ref is None or ref.behaviour_best is None:
        why = next((n.split(": ", 1)[1] for n in loaded.notes if n.startswith(f"no reference lines for {run}:")),
                   "the generator log has no deterministic returns for its test tasks")
        raise PlotError(f"--normalized needs the reference returns of {run}: {why}")
    return normalized_score(values, ref.random, ref.behaviour_best)


def _frames_for(loaded: LoadedRuns, members: list[Path], key: str, normalized: bool) -> list:
    frames = [loaded.frames[r] for r in members]
    if normalized and is_return_key(key):
        frames = [f.assign(**{key: _normalize(loaded, r, key, f[key].to_numpy())}) for r, f in zip(members, frames)]
    return frames


def _distinct_refs(loaded: LoadedRuns, members: Sequence[Path]) -> list[ReferenceReturns]:
    out = []
    for r in members:
        ref = loaded.reference_of(r)
        if ref is not None and ref not in out:
            out.append(ref)
    return out


def plural(n: int, word: str) -> str:
    """``1 seed``, ``2 seeds``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _draw_references(ax, refs: list[ReferenceReturns], normalized: bool, color=None, suffix: str = "",
                     vertical: bool = False) -> None:
    """Dotted: uniform-random policy; dashed: best behaviour checkpoint (values in the legend)."""
    line = ax.axvline if vertical else ax.axhline
    for ref in refs:
        rand = 0.0 if normalized else ref.random
        value = f"score 0, return {ref.random:.1f}" if normalized else f"{ref.random:.1f}"
        line(rand, color=color or "dimgrey", ls=":", lw=1.3, label=f"uniform-random policy ({value}){suffix}")
        if ref.behaviour_best is not None:
            best = 100.0 if normalized else ref.behaviour_best
            value = (f"score 100, return {ref.behaviour_best:.1f}" if normalized else f"{ref.behaviour_best:.1f}")
            line(best, color=color or "black", ls="--", lw=1.1,
                 label=f"best behaviour checkpoint, step {ref.behaviour_best_step} ({value}){suffix}")


def return_label(n_tasks: int | None = None, episode_length: int | None = None) -> str:
    """The y label of a return panel: what the number is, on which tasks (two lines: it fits a panel's height)."""
    per = f", {episode_length}-step episodes" if episode_length is not None else ""  # only beside a task count
    tasks = f"\n({n_tasks} test tasks{per})" if n_tasks is not None else ""
    return "average test return" + tasks


def _y_label(loaded: LoadedRuns, key: str, normalized: bool) -> str:
    if not is_return_key(key):
        return key
    if normalized:
        return NORMALIZED_LABEL
    lengths = {ref.episode_length for ref in loaded.refs.values() if ref is not None}
    ntasks = {len(ref.tasks) for ref in loaded.refs.values() if ref is not None}
    return return_label(ntasks.pop() if len(ntasks) == 1 else None, lengths.pop() if len(lengths) == 1 else None)


def _title(key: str, normalized: bool = False) -> str:
    """Plain words for the protocols' columns (other columns keep their name); says when it is a normalized score."""
    title = KEY_TITLES.get(key, key)
    return f"{title}\nnormalized score" if normalized and is_return_key(key) else title  # 2 lines: 9 pt fits


# ------------------------------------------------------------------------------ paper layout
def paper_figure(n_panels: int, row_height_in: float, sharey: bool = False, cols: int | None = None):
    """A figure one column wide for one panel, two columns wide for more (rows of PANELS_PER_ROW, or
    of ``cols``)."""
    import math

    import matplotlib.pyplot as plt

    cols = min(n_panels, cols or PANELS_PER_ROW)
    rows = math.ceil(n_panels / cols)
    width = COLUMN_WIDTH_IN if n_panels == 1 else FULL_WIDTH_IN
    fig, axes = plt.subplots(rows, cols, figsize=(width, row_height_in * rows), squeeze=False, sharey=sharey,
                             layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def style_axes(ax, integer_x: bool = True) -> None:
    """Explicit text sizes (not the rc defaults a user may have changed) and whole-number x ticks:
    iterations and steps have no fractions."""
    from matplotlib.ticker import MaxNLocator

    ax.tick_params(labelsize=FONT_PT)
    ax.title.set_fontsize(FONT_PT)
    ax.xaxis.label.set_fontsize(FONT_PT)
    ax.yaxis.label.set_fontsize(FONT_PT)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10], integer=integer_x))  # 4: 9 pt labels fit


def label_rows(axes: Sequence, labels: Sequence[str]) -> None:
    """Y labels where they change: the first panel of a row, or one whose label differs from its left neighbour."""
    for i, (ax, lab) in enumerate(zip(axes, labels)):
        if i % PANELS_PER_ROW == 0 or labels[i - 1] != lab:
            ax.set_ylabel(lab, fontsize=FONT_PT)


def paper_legend(fig, handles, labels) -> None:
    """The legend under the panels, in as many columns (up to 3) as the figure's width holds (long labels
    wrapped if even one column is too wide); the figure grows by the legend's height, so that the
    panels keep theirs."""
    import textwrap

    if not labels:
        return
    renderer = fig.canvas.get_renderer()

    def place(ncol: int, texts):
        legend = fig.legend(handles, texts, loc="outside lower center", ncol=ncol, fontsize=FONT_PT, frameon=False)
        return legend, legend.get_window_extent(renderer)

    for ncol in range(min(3, len(labels)), 0, -1):
        legend, extent = place(ncol, labels)
        if extent.width <= fig.bbox.width:
            break
        legend.remove()
    else:
        chars = max(20, int(max(map(len, labels)) * fig.bbox.width / extent.width) - 6)
        legend, extent = place(1, [textwrap.fill(lab, chars, subsequent_indent="  ") for lab in labels])
    fig.set_figheight(fig.get_figheight() + extent.height / fig.dpi + 0.05)


def band_label(band: str, counts: set[int]) -> str:
    """What the shading is: ``min-max over 3 seeds`` (``over 2-3 seeds`` where the number with data varies)."""
    lo, hi = min(counts), max(counts)
    return f"{BAND_WORDS[band]} over {lo if lo == hi else f'{lo}-{hi}'} seeds"


def band_handle(label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor="grey", alpha=0.25, label=label)


def figure_paths(path: Path, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """``path`` itself (in the format its suffix names) and, beside it, the same name in each of ``formats``."""
    out = [path]
    for fmt in formats:
        other = path.with_suffix(f".{fmt}")
        if other not in out:
            out.append(other)
    return out


# no creation date in vector files: the same records give the same bytes, so a regenerated committed
# figure changes in git only when what it shows changes
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


_PDF_OBJECT = re.compile(rb"(\d+) 0 obj\s")
_PDF_LENGTH = re.compile(rb"/Length (\d+)( 0 R)?(?=[\s/>])")


def pdf_drawing(data: bytes) -> list | None:
    """What a PDF (as matplotlib writes it) draws, without what varies between machines for one drawing:
    its objects in order, stream lengths left out and streams inflated, each embedded font program
    (a stream with ``/Length1``: another fontTools subsets one font into other bytes) and the Info
    dictionary (producer, dates) replaced by a placeholder, and the offsets table ignored. None when
    ``data`` cannot be read so."""
    import zlib

    out, pos = [], 0
    try:
        if not data.startswith(b"%PDF-"):
            return None
        while (m := _PDF_OBJECT.search(data, pos)) is not None:
            start, end = m.end(), data.find(b"endobj", m.end())
            stream = data.find(b"stream\n", start)
            if end < 0:
                return None
            if stream < 0 or stream > end:  # no stream: the object's text
                body = data[start:end].strip()
                if body.isdigit():  # an indirect stream length: differs with the font program it measures
                    body = b"<length>"
                out.append((m.group(1), b"<info>" if b"/Producer" in body else body))
                pos = end + 6
                continue
            head = data[start:stream]
            length = _PDF_LENGTH.search(head)
            if length is None:
                return None
            n = length.group(1)
            if length.group(2):  # /Length N 0 R: the length object holds it
                n = re.search(rb"\n" + n + rb" 0 obj\s+(\d+)\s+endobj", data).group(1)
            begin = stream + len(b"stream\n")
            raw = data[begin:begin + int(n)]
            if b"/Length1" in head:
                content = b"<font program>"
            else:
                content = zlib.decompress(raw) if b"/FlateDecode" in head else raw
            out.append((m.group(1), _PDF_LENGTH.sub(b"", re.sub(rb"/Length1 \d+", b"", head)).strip(), content))
            pos = data.find(b"endobj", begin + int(n)) + 6
    except (AttributeError, ValueError, zlib.error):
        return None
    return out or None


def _unchanged_pdf(target: Path, data: bytes) -> bool:
    """Whether the PDF at ``target`` draws what ``data`` does (:func:`pdf_drawing`): then it is kept, and
    a regenerated committed figure leaves the tree clean on a machine with other font tools."""
    try:
        old = target.read_bytes()
    except OSError:
        return False
    if old == data:
        return True
    drawing = pdf_drawing(data)
    return drawing is not None and pdf_drawing(old) == drawing


def save_figure(fig, path: Path, formats: Sequence[str] = DEFAULT_FORMATS) -> Path:
    """Write ``path`` and its companions (:func:`figure_paths`): PNG at PNG_DPI, vector files as vectors.

    Each is rendered to memory and written atomically: a reader never sees half a file. A PDF that
    already draws the same (:func:`pdf_drawing`: only its embedded font programs or metadata would
    change) is left untouched."""
    import matplotlib
    import matplotlib.pyplot as plt

    try:
        for target in figure_paths(path, formats):
            fmt = target.suffix.lstrip(".").lower() or "png"
            buf = io.BytesIO()
            with matplotlib.rc_context({"svg.hashsalt": "csro"}):  # SVG element ids from a fixed salt
                fig.savefig(buf, dpi=PNG_DPI, format=fmt, bbox_inches="tight", pad_inches=0.03,
                            metadata=_NO_DATE.get(fmt))
            if fmt == "pdf" and _unchanged_pdf(target, buf.getvalue()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, buf.getvalue(), fsync=False)
    finally:
        plt.close(fig)
    return path


def plot_runs(run_dirs: Sequence[str | Path], keys: Sequence[str] | None = None, out: str | Path | None = None,
              x: str = "Epoch", band: str = "minmax", references: bool = True, normalized: bool = False,
              loaded: LoadedRuns | None = None, formats: Sequence[str] = DEFAULT_FORMATS,
              labels: Sequence[str] | None = None) -> Path:
    """Draw ``keys`` against ``x`` for the runs (seeds grouped by experiment), save it; returns ``out``'s path.

    ``out`` defaults to ``learning_curves.png`` in the runs' common parent
    folder; the same figure also goes beside it in each of ``formats``
    (default PNG and PDF). Return keys get the reference lines of
    :mod:`rlkit.evaluation.reference` where the runs' dataset is here (a note
    on stderr where it is not). The band is drawn only at the x values where
    two or more seeds have data, and the legend says what it is. ``labels``
    names the experiments in the legend (one each, in their order).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if band not in BANDS:
        raise PlotError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    if loaded is None:
        loaded = load_runs(run_dirs, keys, x, references=references or normalized, labels=labels)
        print_notes(loaded)
    keys, x, groups = loaded.keys, loaded.x, loaded.groups
    with plt.rc_context(PAPER_RC):
        fig, axes = paper_figure(len(keys), 2.0)
        all_refs = _distinct_refs(loaded, loaded.runs)
        band_counts: set[int] = set()
        for ax, key in zip(axes, keys):
            for label, members in groups.items():
                stats = aggregate(_frames_for(loaded, members, key, normalized), x, key, band)
                n = seeds_with_data(loaded, members, key)
                what = "1 seed" if n == 1 else f"mean of {plural(n, 'seed')}"
                line, = ax.plot(stats.index, stats["mean"], label=f"{label} ({what})")
                several = (stats["count"] >= 2).to_numpy()
                if band != "none" and several.any():
                    ax.fill_between(stats.index, stats["low"], stats["high"], where=several, color=line.get_color(),
                                    alpha=0.2, lw=0)
                    band_counts |= set(stats["count"][several].astype(int))
                if is_return_key(key) and len(all_refs) > 1 and not normalized:
                    _draw_references(ax, _distinct_refs(loaded, members), False, line.get_color(), f", {label}")
            if is_return_key(key) and (len(all_refs) == 1 or (normalized and all_refs)):
                _draw_references(ax, all_refs[:1], normalized)
            ax.set_title(_title(key, normalized))
            ax.set_xlabel(X_LABELS.get(x, x))
            ax.grid(alpha=0.3)
            style_axes(ax)
        label_rows(axes, [_y_label(loaded, key, normalized) for key in keys])
        handles, labels = unique_legend(axes)
        if band_counts:
            labels.append(band_label(band, band_counts))
            handles.append(band_handle(labels[-1]))
        paper_legend(fig, handles, labels)
        return save_figure(fig, Path(out) if out is not None else _default_out(loaded.runs), formats)


def print_notes(loaded: LoadedRuns) -> None:
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)


def unique_legend(axes):
    """Legend entries of all panels, each label once (the reference lines repeat in every panel)."""
    seen = OrderedDict()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen.keys())


def _default_out(runs: list[Path]) -> Path:
    parents = [r.resolve().parent for r in runs]
    return Path(*Path(parents[0]).parts[: _common_len([p.parts for p in parents])]) / "learning_curves.png"


def final_scores(loaded: LoadedRuns, members: list[Path], key: str, final_window: int, normalized: bool):
    """Each run's final score: the mean of its last ``final_window`` evaluations of ``key`` (by x), up
    to the x all of ``members`` reached (:func:`common_end`)."""
    import numpy as np

    out, end = [], common_end(loaded, members)
    for run, frame in zip(members, _frames_for(loaded, members, key, normalized)):
        frame = frame[frame[loaded.x] <= end]
        series = frame[[loaded.x, key]].dropna().drop_duplicates(loaded.x, keep="last").sort_values(loaded.x)[key]
        if series.empty:
            raise PlotError(f"{run / 'progress.csv'} has no value of {key!r}")
        out.append(float(series.tail(final_window).mean()))
    return np.array(out)


def aggregate_table(loaded: LoadedRuns, final_window: int = 3, normalized: bool = False, reps: int = DEFAULT_REPS,
                    seed: int = 0):
    """Per experiment with 2+ seeds and per key: IQM, its 95 % stratified bootstrap CI, mean, seeds."""
    import pandas as pd

    if final_window < 1:
        raise PlotError(f"--final-window must be >= 1, got {final_window}")
    rows = []
    for label, members in loaded.groups.items():
        if len(members) < 2:
            continue
        for key in loaded.keys:
            scores = final_scores(loaded, members, key, final_window, normalized)
            agg = iqm_with_ci(scores, reps=reps, seed=seed)
            rows.append({"experiment": label, "key": key, "seeds": len(scores), "iqm": agg.iqm,
                         "ci_low": agg.low, "ci_high": agg.high, "mean": agg.mean,
                         "scores": " ".join(f"{v:.4g}" for v in scores)})
    return pd.DataFrame(rows, columns=["experiment", "key", "seeds", "iqm", "ci_low", "ci_high", "mean", "scores"])


MIN_PANEL_IN = 1.2  # the least width of an aggregate panel beside others: narrower, the intervals are hard to read


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts that cover each other in a drawn figure: titles, axis labels and the tick labels
    inside the axes' limits (what a cramped layout runs into each other)."""
    renderer = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            texts += [lab for loc, lab in zip(axis.get_ticklocs(), axis.get_ticklabels()) if lo - 1e-9 <= loc <= hi + 1e-9]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text().strip()]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def experiment_tick(name: str, seeds: int, width: int = 30) -> str:
    """An experiment's y tick label in an aggregate figure: a grid point's settings one per line
    (``EXP__club_loss_weight=10`` is written with ``__``), long words wrapped, then the seed count."""
    import textwrap

    lines = [line for part in name.split("__") for line in (textwrap.wrap(part, width) or [part])]
    lines[-1] += f" ({plural(seeds, 'seed')})"
    return "\n".join(lines)


def plot_aggregates(table, loaded: LoadedRuns, path: Path, normalized: bool = False, final_window: int = 3,
                    formats: Sequence[str] = DEFAULT_FORMATS) -> Path:
    """One panel per key: per experiment the IQM (dot), its 95 % CI (bar) and each seed's final score (ticks).

    Written like the curves: ``path`` and beside it each of ``formats``, sized for a paper. The
    experiments' names label the rows (a grid point's settings one per line); where the panels side
    by side would be narrower than MIN_PANEL_IN or run a title or tick label into another, they
    stack, one per row, at the full width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    keys = list(dict.fromkeys(table["key"]))
    labels = list(dict.fromkeys(table["experiment"]))
    seeds = [int(table[table["experiment"] == lab]["seeds"].iloc[0]) for lab in labels]
    ticks = [experiment_tick(lab, n) for lab, n in zip(labels, seeds)]
    row_height = 1.3 + max(0.3, 0.15 * max(t.count("\n") + 1 for t in ticks)) * len(labels)
    with plt.rc_context(PAPER_RC):
        fig, axes = _aggregate_panels(table, loaded, keys, labels, ticks, row_height, normalized)
        fig.canvas.draw()  # constrained layout places the panels: do they fit beside each other?
        narrow = min(ax.get_position().width for ax in axes) * fig.get_figwidth() < MIN_PANEL_IN
        if len(axes) > 1 and (narrow or overlapping_texts(fig)):
            plt.close(fig)
            fig, axes = _aggregate_panels(table, loaded, keys, labels, ticks, row_height, normalized, cols=1)
        small = table["seeds"].min() < 4
        handles = [Line2D([], [], marker="o", ls="", color="grey",
                          label="IQM over seeds" + (" (= mean with < 4 seeds)" if small else "")),
                   Line2D([], [], lw=6, alpha=0.35, color="grey", label="95% stratified bootstrap CI"),
                   Line2D([], [], marker="|", ls="", color="black", ms=8,
                          label=f"one seed's final score: mean of its last {plural(final_window, 'evaluation')}")]
        extra_h, extra_l = unique_legend(axes)
        paper_legend(fig, handles + extra_h, [h.get_label() for h in handles] + extra_l)
        return save_figure(fig, path, formats)


def _aggregate_panels(table, loaded: LoadedRuns, keys, labels, ticks, row_height: float, normalized: bool,
                      cols: int | None = None):
    import matplotlib.pyplot as plt

    fig, axes = paper_figure(len(keys), row_height, sharey=True, cols=cols)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    all_refs = _distinct_refs(loaded, loaded.runs)
    for ax, key in zip(axes, keys):
        for i, label in enumerate(labels):
            row = table[(table["key"] == key) & (table["experiment"] == label)]
            if row.empty:
                continue
            r = row.iloc[0]
            c = colors[i % len(colors)]
            ax.plot([r["ci_low"], r["ci_high"]], [i, i], color=c, lw=6, alpha=0.35, solid_capstyle="butt")
            ax.plot([r["iqm"]], [i], "o", color=c, ms=5)
            ax.plot([float(v) for v in r["scores"].split()], [i] * int(r["seeds"]), "|", color="black", ms=8)
        if is_return_key(key) and all_refs and (normalized or len(all_refs) == 1):
            _draw_references(ax, all_refs[:1], normalized, vertical=True)
        ax.set_yticks(range(len(labels)), ticks)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_title(_title(key, normalized))
        what = ("normalized score" if normalized else "test return") if is_return_key(key) else key
        ax.set_xlabel(f"final {what}")
        ax.grid(alpha=0.3, axis="x")
        style_axes(ax, integer_x=False)
    return fig, axes


def format_table(table) -> str:
    lines = [f"{'experiment':<28} {'key':<40} {'seeds':>5} {'IQM':>9} {'95% CI':>21} {'mean':>9}"]
    for _, r in table.iterrows():
        ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        lines.append(f"{r['experiment']:<28} {r['key']:<40} {r['seeds']:>5} {r['iqm']:>9.2f} {ci:>21} {r['mean']:>9.2f}")
    return "\n".join(lines)


def _common_len(parts: list[tuple[str, ...]]) -> int:
    n = 0
    for items in zip(*parts):
        if len(set(items)) > 1:
            break
        n += 1
    return n


def parse_formats(text: str) -> tuple[str, ...]:
    """``--format png,pdf`` -> ("png", "pdf"); an unknown format is a one-line error."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise PlotError(f"--format takes a comma-separated list of {', '.join(FORMATS)}, got {text!r}")
    return formats


def check_suffix(out: Path) -> None:
    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise PlotError(f"--out {str(out)!r} must end in " + ", ".join(f".{f}" for f in FORMATS))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.plot"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", help="run directories (output/ENV/EXP_NAME/seedN) or experiment folders")
    p.add_argument("--keys", default=None, help="comma-separated progress.csv columns (default: the 3 protocols)")
    p.add_argument("--x", default="Epoch", help=f"x-axis column, e.g. {' or '.join(repr(k) for k in X_KEYS)}")
    p.add_argument("--band", choices=BANDS, default="minmax", help="spread over seeds")
    p.add_argument("--labels", default=None,
                   help="comma-separated names of the experiments (curves), one each in the order they are "
                        "drawn (default: ENV/EXP_NAME)")
    p.add_argument("--out", default=None,
                   help="figure path, .png, .pdf or .svg (default: learning_curves.png beside the runs)")
    p.add_argument("--format", default=",".join(DEFAULT_FORMATS),
                   help="comma-separated formats also written beside --out, of " + ", ".join(FORMATS)
                   + f" (default {','.join(DEFAULT_FORMATS)}: a {PNG_DPI} dpi PNG and a vector PDF)")
    p.add_argument("--normalized", action="store_true",
                   help="plot returns as normalized scores (0 = random policy, 100 = best behaviour checkpoint)")
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip the random / behaviour reference lines (and their short random rollout)")
    p.add_argument("--final-window", type=int, default=3,
                   help="evaluations averaged into each seed's final score for the aggregates (default 3)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, help="bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (the same seed gives the same CIs)")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    try:
        if args.reps < 1:
            raise PlotError(f"--reps must be >= 1, got {args.reps}")
        formats = parse_formats(args.format)
        out = _default_out(expand_run_dirs(args.run_dirs)) if args.out is None else Path(args.out)
        check_suffix(out)
        labels = args.labels.split(",") if args.labels is not None else None
        loaded = load_runs(args.run_dirs, keys, args.x, references=args.reference or args.normalized, labels=labels)
        print_notes(loaded)
        plot_runs(args.run_dirs, out=out, band=args.band, normalized=args.normalized, loaded=loaded,
                  formats=formats)
        print("\n".join(map(str, figure_paths(out, formats))))
        if any(len(m) > 1 for m in loaded.groups.values()):
            try:
                table = aggregate_table(loaded, args.final_window, args.normalized, args.reps, args.seed)
            except AggregateUnavailable as exc:
                print(f"note: {exc}", file=sys.stderr)
                return 0
            print(format_table(table))
            stem = out.with_suffix("")
            csv = stem.parent / f"{stem.name}_aggregates.csv"
            atomic_write_text(csv, table.to_csv(index=False), fsync=False)
            print(csv)
            intervals = stem.parent / f"{stem.name}_aggregates{out.suffix}"
            plot_aggregates(table, loaded, intervals, args.normalized, args.final_window, formats)
            print("\n".join(map(str, figure_paths(intervals, formats))))
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
