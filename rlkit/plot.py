"""Learning curves from runs' progress.csv: mean and spread over seeds, one panel per key.

    python -m rlkit.plot RUN_DIR [RUN_DIR ...] [--keys Average_NpOnlineReturn_all_test_tasks,...]
        [--x Epoch | --x "Number of train steps total"] [--band minmax|std|none] [--out FILE]

Run directories that share a parent (output/ENV/EXP_NAME/seed*) are seeds of
one experiment: they are drawn as one line (the mean over seeds at each x)
with a band (min-max by default, or mean ± std). A directory without
progress.csv but with seed*/progress.csv inside counts as all its seeds.
progress.csv files are only read, so viskit keeps working on them.
Default keys: the three evaluation protocols' averages present in the files.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from rlkit.errors import UserError, cli
from rlkit.evaluation.protocols import PROGRESS_KEYS

DEFAULT_KEYS = tuple(PROGRESS_KEYS[p] for p in ("online", "offline", "np_online"))
X_KEYS = ("Epoch", "Number of train steps total")
BANDS = ("minmax", "std", "none")


class PlotError(UserError, ValueError):
    """Runs or keys that cannot be plotted; one-line message."""


def expand_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories holding progress.csv; an experiment folder stands for its seed*/ runs."""
    runs = []
    for p in map(Path, paths):
        if (p / "progress.csv").is_file():
            runs.append(p)
            continue
        seeds = sorted(d for d in p.glob("seed*") if (d / "progress.csv").is_file()) if p.is_dir() else []
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


def plot_runs(run_dirs: Sequence[str | Path], keys: Sequence[str] | None = None, out: str | Path | None = None,
              x: str = "Epoch", band: str = "minmax") -> Path:
    """Draw ``keys`` against ``x`` for the runs (seeds grouped by experiment) and save a PNG; returns its path.

    ``out`` defaults to ``learning_curves.png`` in the runs' common parent folder.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if band not in BANDS:
        raise PlotError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
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
    groups = group_runs(runs)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, members in groups.items():
            stats = aggregate([frames[r] for r in members], x, key, band)
            n = len(members)
            line, = ax.plot(stats.index, stats["mean"], label=f"{label} ({n} seed{'s' if n > 1 else ''})")
            if band != "none" and n > 1:
                ax.fill_between(stats.index, stats["low"], stats["high"], color=line.get_color(), alpha=0.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    if band != "none" and any(len(m) > 1 for m in groups.values()):
        fig.text(0.01, 0.01, "band: " + ("min-max over seeds" if band == "minmax" else "mean ± std over seeds"),
                 fontsize=7)
    fig.tight_layout()
    if out is None:
        parents = [r.resolve().parent for r in runs]
        common = Path(*Path(parents[0]).parts[: _common_len([p.parts for p in parents])])
        out = common / "learning_curves.png"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _common_len(parts: list[tuple[str, ...]]) -> int:
    n = 0
    for items in zip(*parts):
        if len(set(items)) > 1:
            break
        n += 1
    return n


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rlkit.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", help="run directories (output/ENV/EXP_NAME/seedN) or experiment folders")
    p.add_argument("--keys", default=None, help="comma-separated progress.csv columns (default: the 3 protocols)")
    p.add_argument("--x", default="Epoch", help=f"x-axis column, e.g. {' or '.join(repr(k) for k in X_KEYS)}")
    p.add_argument("--band", choices=BANDS, default="minmax", help="spread over seeds")
    p.add_argument("--out", default=None, help="PNG path (default: learning_curves.png beside the runs)")
    return p.parse_args(argv)


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    try:
        out = plot_runs(args.run_dirs, keys, args.out, x=args.x, band=args.band)
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
