"""A dataset's quality at a glance: how good its behaviour policies are at every checkpoint.

Offline meta-RL learns what its data shows. The same learner meets a very
different problem when the behaviour checkpoints run from poor to good than
when they are near-expert from the start: how far an encoder can read the task
rather than the policy depends on it. The *profile* of a dataset is, for every
checkpoint step, the mean return of its deterministic (mean-action) episodes
and of its sampled episodes, averaged per task and then over tasks.

* native and Minari layouts: from ``dataset.json``'s per-file episode summary
  (``mean_return`` of each group, written with the rows), so a MuJoCo dataset
  of gigabytes profiles in a second;
* the authors' layout: from the rows of every ``trj_eval*`` file.

A *reference profile* (``configs/reference_profiles/ENV.json``) is a profile
measured elsewhere, with where it comes from; :func:`compare` gives the
difference at each of its steps and refuses a reference for another env or
with steps the dataset does not hold.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rlkit.config import REPO_CONFIG_DIR
from rlkit.data.errors import DatasetError
from rlkit.data.legacy import legacy_columns, legacy_task_dirs, parse_legacy_filename, read_legacy_file
from rlkit.data.loader import detect_layout
from rlkit.data.minari_format import MinariSource
from rlkit.data.native import GROUPS, read_metadata
from rlkit.data.selection import checkpoint_schedule

#: The two episode groups a checkpoint holds, as the profile names them.
KINDS = ("deterministic", "sampled")
#: Committed reference profiles, one per env: ``ENV.json``.
REFERENCE_DIR = REPO_CONFIG_DIR / "reference_profiles"


@dataclass
class DatasetProfile:
    """Per (task, step): the mean return of each episode group; NaN where a group has no episode."""

    path: str
    layout: str
    env_name: str | None
    returns: dict[tuple[int, int], dict[str, float]]  # (task, step) -> {"deterministic": x, "sampled": y}
    expected_steps: list[int] = field(default_factory=list)  # the generator's schedule, when recorded

    @property
    def tasks(self) -> list[int]:
        return sorted({t for t, _ in self.returns})

    @property
    def steps(self) -> list[int]:
        return sorted({s for _, s in self.returns})

    def missing(self) -> dict[int, list[int]]:
        """{step: tasks lacking it}: steps some tasks hold and others not, and scheduled steps none holds."""
        tasks = self.tasks
        have: dict[int, set[int]] = {}
        for t, s in self.returns:
            have.setdefault(s, set()).add(t)
        out = {s: sorted(set(tasks) - have.get(s, set())) for s in sorted(set(self.steps) | set(self.expected_steps))}
        return {s: ts for s, ts in out.items() if ts}

    def table(self, tasks: Sequence[int] | None = None) -> dict[int, dict[str, float]]:
        """{step: {kind: mean over ``tasks``}} for the steps every one of them holds.

        ``tasks`` default to all with data; given ones the dataset holds no data for are
        left out (a job that generated part of the tasks profiles its part)."""
        held = self.tasks
        tasks = held if tasks is None else sorted(set(int(t) for t in tasks) & set(held))
        out = {}
        for s in self.steps:
            cells = [self.returns.get((t, s)) for t in tasks]
            if not tasks or any(c is None for c in cells):
                continue
            out[s] = {k: float(np.mean([c[k] for c in cells])) for k in KINDS}
        return out

    def as_json(self, per_task: bool = False) -> dict[str, dict]:
        """``{"<step>": {"deterministic": x, "sampled": y}}`` over all tasks, complete steps only; with
        ``per_task`` each step also holds ``"tasks": {"<task>": {...}}`` (what a reference profile keeps,
        so a later comparison on other tasks can use the same ones)."""
        out = {}
        for s, row in self.table().items():
            out[str(s)] = {k: _finite_or_none(v) for k, v in row.items()}
            if per_task:
                out[str(s)]["tasks"] = {str(t): {k: _finite_or_none(self.returns[(t, s)][k]) for k in KINDS}
                                        for t in self.tasks}
        return out


def _finite_or_none(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def profile_dataset(data_dir: str | os.PathLike) -> DatasetProfile:
    """Read the per-(task, step) mean returns of a dataset in any layout (see the module docstring)."""
    layout = detect_layout(data_dir)
    if layout == "legacy":
        return _profile_legacy(Path(data_dir))
    source = MinariSource(data_dir) if layout == "minari" else None
    meta = read_metadata(data_dir) if source is None else source.metadata
    returns: dict[tuple[int, int], dict[str, float]] = {}
    for entry in meta["files"].values():
        groups = entry["episodes"]
        returns[(int(entry["task"]), int(entry["step"]))] = {
            kind: _nan_if_none(groups[group].get("mean_return")) for kind, group in zip(KINDS, GROUPS)}
    return DatasetProfile(str(data_dir), layout, meta.get("env_name"), returns, _schedule(meta))


def _nan_if_none(x) -> float:
    return float("nan") if x is None else float(x)


def _schedule(meta: Mapping) -> list[int]:
    """The checkpoint steps the generator was to write, from its recorded settings (empty if unknown)."""
    generator = meta.get("generator_config") or {}
    sac = generator.get("sac") or {}
    try:
        return checkpoint_schedule(sac["num_train_steps"], sac["num_seed_steps"], sac["eval_frequency"],
                                   generator.get("episode_length"), bool(sac.get("delay_first_checkpoint", False)))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return []


def _profile_legacy(root: Path) -> DatasetProfile:
    sums: dict[tuple[int, int], dict[str, list[float]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for task, folder in legacy_task_dirs(root).items():
            for name in sorted(os.listdir(folder)):
                parsed = parse_legacy_filename(name)
                if parsed is None:
                    continue
                sampled, _k, step = parsed
                path = folder / name
                _, _, rewards, _ = legacy_columns([read_legacy_file(path)], [str(path)])
                cell = sums.setdefault((task, step), {k: [] for k in KINDS})
                cell[KINDS[int(sampled)]].append(float(np.sum(rewards, dtype=np.float64)))
    if not sums:
        raise DatasetError(f"{root} holds no trajectory files of the authors' layout (task folders with "
                           "trj_eval*_step*.npy)")
    returns = {key: {k: (float(np.mean(v)) if v else float("nan")) for k, v in cell.items()}
               for key, cell in sums.items()}
    return DatasetProfile(str(root), "legacy", None, returns)


# ---- reference profiles -----------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceProfile:
    """A profile measured elsewhere (e.g. the authors' generator), with its provenance."""

    env_name: str
    source: str
    table: dict[int, dict[str, float]]
    path: str = ""


def reference_for(env_name: str) -> ReferenceProfile | None:
    """The committed reference profile of ``env_name``, or None when there is none."""
    path = REFERENCE_DIR / f"{env_name}.json"
    return load_reference(path) if path.is_file() else None


def load_reference(path: str | os.PathLike) -> ReferenceProfile:
    """A reference profile file: ``{"env_name", "source", "profile": {"<step>": {"deterministic": x, ...}}}``."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"reference profile {p} does not exist; the committed ones are in "
                           "configs/reference_profiles/") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"reference profile {p} is not readable JSON ({exc}); restore it from git") from None
    try:
        table = {int(s): {k: float(row[k]) for k in KINDS if row.get(k) is not None}
                 for s, row in raw["profile"].items()}
        if not table or any("deterministic" not in row for row in table.values()):
            raise ValueError("every step needs a deterministic return")
        return ReferenceProfile(str(raw["env_name"]), str(raw.get("source", "")), table, str(p))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"reference profile {p} is malformed ({exc}); it needs env_name and "
                           "profile: {\"<step>\": {\"deterministic\": x, \"sampled\": y}}") from None


def compare(profile: DatasetProfile, reference: ReferenceProfile) -> dict[int, dict[str, float]]:
    """{step: {kind: dataset minus reference}} at every reference step (all tasks of the dataset).

    Refuses, in one line, a reference for another env and one whose steps the
    dataset does not all hold (steps the dataset holds beyond it are not compared).
    """
    if profile.env_name is not None and profile.env_name != reference.env_name:
        raise DatasetError(f"the reference {reference.path or reference.source} is for {reference.env_name}, "
                           f"the dataset {profile.path} for {profile.env_name}: pick the reference of that env")
    table = profile.table()
    absent = [s for s in sorted(reference.table) if s not in table]
    if absent:
        raise DatasetError(f"the reference has steps {_steps(absent)} that {profile.path} does not hold for all its "
                           f"tasks (it holds {_steps(sorted(table))}): compare datasets on the same checkpoint "
                           "schedule, or finish generating")
    lo, hi = min(reference.table), max(reference.table)
    extra = [s for s in sorted(table) if lo <= s <= hi and s not in reference.table]
    if extra:  # another checkpoint schedule: a step-by-step comparison would skip what lies between
        raise DatasetError(f"{profile.path} has steps {_steps(extra)} that the reference {reference.path or reference.source} "
                           f"lacks (it has {_steps(sorted(reference.table))}): compare datasets made on the "
                           "reference's checkpoint schedule")
    return {s: {k: table[s][k] - ref[k] for k in KINDS if k in ref} for s, ref in sorted(reference.table.items())}


def check_config_env(profile: DatasetProfile, env_name, where: str) -> None:
    """Refuse, in one line, a config (``profile --config``) whose env does not train on this dataset.

    Its task split would label the columns with another env's train and test tasks. An env that learns
    from another one's data (``offline_data_of``: sparse-point-robot from point-robot) is accepted;
    a dataset that records no env (the authors' layout) cannot be checked."""
    if profile.env_name is None or env_name is None or env_name == profile.env_name:
        return
    from rlkit.envs import UnknownEnvError, offline_data_env

    try:
        trains_on = offline_data_env(str(env_name))
    except UnknownEnvError:
        trains_on = None
    if trains_on != profile.env_name:
        raise DatasetError(f"config {where} is for env {env_name}, but the dataset {profile.path} holds {profile.env_name} "
                           f"data: pass that env's config, e.g. configs/{profile.env_name}.json")


def _steps(steps: Sequence[int]) -> str:
    steps = list(steps)
    if len(steps) > 2 and all(b - a == steps[1] - steps[0] for a, b in zip(steps, steps[1:])):
        return f"{steps[0]}..{steps[-1]} every {steps[1] - steps[0]}"
    return ", ".join(map(str, steps)) or "none"


# ---- text report ------------------------------------------------------------------------


def format_profile(profile: DatasetProfile, split: tuple[Sequence[int], Sequence[int]] | None = None,
                   reference: ReferenceProfile | None = None) -> str:
    """The profile as a text table: all tasks, then train / test (with ``split``), then the reference."""
    diff = compare(profile, reference) if reference is not None else {}
    cols = [("all", profile.table())]
    if split is not None:
        cols += [("train", profile.table(split[0])), ("test", profile.table(split[1]))]
    head = f"{'step':>6}" + "".join(f"  {name + ' det':>10} {name + ' sampled':>12}" for name, _ in cols)
    if reference is not None:
        head += f"  {'ref det':>8} {'det diff':>9} {'ref sampled':>11} {'sampled diff':>12}"
    lines = [f"{profile.path}: {profile.layout} layout, env {profile.env_name or 'not recorded'}, "
             f"{len(profile.tasks)} tasks, mean return per task then over tasks", head]
    for s in profile.steps:
        row = f"{s:>6}"
        for _, table in cols:
            cell = table.get(s)
            row += (f"  {cell['deterministic']:>10.2f} {cell['sampled']:>12.2f}" if cell
                    else f"  {'-':>10} {'-':>12}")
        if reference is not None and s in reference.table:
            ref, d = reference.table[s], diff[s]
            row += f"  {ref['deterministic']:>8.2f} {d['deterministic']:>+9.2f}"
            row += (f" {ref['sampled']:>11.2f} {d['sampled']:>+12.2f}" if "sampled" in ref else "")
        lines.append(row)
    gaps = profile.missing()
    if gaps:
        lines.append("missing checkpoints (step: tasks): " + "; ".join(
            f"{s}: {_tasks(ts)}" for s, ts in gaps.items()) + " -- steps not held by every task are left out of the means")
    if reference is not None:
        worst = max(diff.items(), key=lambda kv: abs(kv[1]["deterministic"]))
        lines.append(f"largest deterministic difference from the reference ({reference.source}): "
                     f"{worst[1]['deterministic']:+.2f} at step {worst[0]}")
    return "\n".join(lines)


def _tasks(ts: Sequence[int]) -> str:
    ts = list(ts)
    return ", ".join(map(str, ts)) if len(ts) <= 8 else f"{', '.join(map(str, ts[:8]))} and {len(ts) - 8} more"
