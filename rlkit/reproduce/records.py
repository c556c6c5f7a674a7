"""Result records: one small JSON per finished (plan, method, seed), committed with the code.

A record holds what the results page needs and nothing that needs the run
directory: the final returns of the three protocols, their per-iteration
curves, the context-shift diagnostics, the reference returns of its test
tasks (uniform-random policy, behaviour policies; rlkit.evaluation.reference),
the fingerprint of the data it trained on (rlkit.data.fingerprint; null in
records made before runs recorded one), the resolved config, the wall time and
the software versions. The table and figures are rebuilt from records alone.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rlkit.config import save_config
from rlkit.core.logger import git_report
from rlkit.data.fingerprint import FINGERPRINT_KEY
from rlkit.evaluation.protocols import PROGRESS_KEYS
from rlkit.evaluation.reference import ReferenceUnavailable, reference_returns
from rlkit.reproduce.plan import PROTOCOLS, Plan, settings_drift
from rlkit.reproduce import renames
from rlkit.reproduce.renames import MOVE_COMMAND, misplaced_record_hint, old_names_of

RECORD_VERSION = 1
#: The plan's dataset profile (``python -m rlkit.data profile --json``), kept beside the records.
PROFILE_FILE = "dataset_profile.json"


def record_path(records_root: Path, plan: Plan, method: str, seed: int) -> Path:
    return Path(records_root) / plan.name / f"{method}_seed{seed}.json"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def _versions() -> dict:
    import gymnasium
    import torch

    from rlkit.envs.mujoco_gl import mujoco

    return {"python": platform.python_version(), "torch": torch.__version__, "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__, "numpy": np.__version__}


def dataset_identity(plan: Plan) -> dict:
    """What the plan's runs train on: the generator preset, seed and overrides of its dataset.

    Kept in every record, so that a record made on one dataset is never counted for a plan
    that now builds another (the training settings alone cannot tell them apart)."""
    return {"preset": plan.dataset.preset, "seed": int(plan.dataset.seed), "overrides": list(plan.dataset.overrides)}


def build_record(plan: Plan, method: str, seed: int, run_dir: Path, context_shift_seconds: float = 0.0) -> dict:
    """Summarise a finished run (its progress.csv, variant.json and context-shift JSON)."""
    progress = pd.read_csv(run_dir / "progress.csv").drop_duplicates("Epoch", keep="last").sort_values("Epoch")
    curves = {"steps": [int(s) for s in progress["Number of train steps total"]],
              **{p: [_finite(v) for v in progress[PROGRESS_KEYS[p]]] for p in PROTOCOLS}}
    # derived from the curves by the same rule the record reader checks them with (self_consistency_problem)
    final = {p: window_mean(curves[p], plan.final_window) for p in PROTOCOLS}
    last = {p: curves[p][-1] for p in PROTOCOLS}
    shift_files = sorted(run_dir.glob("context_shift_itr*.json"), key=lambda p: int(p.stem.split("itr")[1]))
    shift = {}
    if shift_files:
        report = json.loads(shift_files[-1].read_text(encoding="utf-8"))
        shift = {"iteration": report["iteration"], "chance_accuracy": report["chance_accuracy"],
                 "centroid_spread": report["centroid_spread"],
                 "sources": {k: {"accuracy": v["accuracy"], "shift_ratio": v["shift_ratio"]}
                             for k, v in report["sources"].items()}}
    variant = json.loads((run_dir / "variant.json").read_text(encoding="utf-8"))
    try:
        reference = reference_returns(variant, seed).as_dict()
    except ReferenceUnavailable:
        reference = None
    revision = next((ln.split(": ", 1)[1] for ln in git_report().splitlines() if ln.startswith("revision: ")), None)
    return {
        "record_version": RECORD_VERSION, "plan": plan.name, "env": plan.env, "scale": plan.scale,
        "method": method, "seed": int(seed), "final_window": plan.final_window,
        "num_iterations": len(progress), "train_steps": int(progress["Number of train steps total"].iloc[-1]),
        "final": final, "last": last, "curves": curves, "context_shift": shift, "reference": reference,
        "wall_time_s": {"train": float(progress["Train Time (s)"].sum()), "eval": float(progress["Eval Time (s)"].sum()),
                        "context_shift": float(context_shift_seconds)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_revision": revision, "versions": _versions(),
        "dataset": dataset_identity(plan), "data_fingerprint": variant.get(FINGERPRINT_KEY), "config": variant,
    }


def load_dataset_profile(records_root: Path, plan: Plan) -> dict[int, dict[str, float]] | None:
    """The plan's committed dataset profile as {step: {kind: return}}, or None when it has none."""
    path = Path(records_root) / plan.name / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(s): {k: float(v) for k, v in row.items() if v is not None} for s, row in raw.items()}
    except (OSError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); restore it from git, or delete it and rerun the plan "
                         "with its dataset here") from None


def _dataset_words(identity: dict | None) -> str:
    if not isinstance(identity, dict):
        return "not recorded"
    return f"preset {identity.get('preset')}, seed {identity.get('seed')}, " + (
        " ".join(map(str, identity.get("overrides") or [])) or "no overrides")


def write_record(records_root: Path, plan: Plan, record: dict) -> Path:
    """Atomically write a record (never half a file, even if killed)."""
    return save_config(record, record_path(records_root, plan, record["method"], record["seed"]))


# What every record holds, and of which type: the table and figures read these without asking.
_RECORD_FIELDS = {"method": str, "seed": int, "plan": str, "env": str, "scale": str, "final_window": int,
                  "final": dict, "curves": dict, "wall_time_s": dict, "config": dict}


# Recomputed numbers must equal the written ones to this: a record's floats round-trip through JSON
# exactly, but a mean recomputed here may sum in another order than pandas did when it was written.
SELF_CHECK_RTOL = 1e-9


def _same_number(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=SELF_CHECK_RTOL, abs_tol=1e-12)


def _is_number_or_none(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def window_mean(values: list, window: int) -> float | None:
    """A record's "final": the mean of the last ``window`` values of a curve, null (NaN) skipped, null
    when the window holds no number. build_record writes it and the reader checks it, with this one rule."""
    numbers = [float(v) for v in values[-window:] if v is not None]
    return _finite(float(np.mean(numbers))) if numbers else None


def self_consistency_problem(rec: dict) -> str | None:
    """How a record disagrees with itself, as one phrase, or None.

    ``final`` and ``last`` are derived from the curves (build_record), and the curves hold one value
    per iteration of the run: a record edited by hand, merged badly or cut short says one thing in its
    table cells and another in its figure. Checked: every curve as long as ``steps``; ``num_iterations``
    and ``train_steps`` those of the curves; the config's ``algo_params.num_iterations`` no more than
    the curves hold; each protocol's ``final`` the mean of its last ``final_window`` values and its
    ``last`` the last one (to :data:`SELF_CHECK_RTOL`, never bit for bit)."""
    curves, window = rec["curves"], rec["final_window"]
    steps = curves.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in steps):
        return "its curves have no steps"
    for p in PROTOCOLS:
        curve = curves.get(p)
        if not isinstance(curve, list) or not all(_is_number_or_none(v) for v in curve):
            return f"it has no {p} curve of numbers"
        if len(curve) != len(steps):
            return f"its {p} curve holds {len(curve)} values but its steps {len(steps)}"
    if rec.get("num_iterations") != len(steps):
        return f"it says num_iterations {rec.get('num_iterations')} but its curves hold {len(steps)} iterations"
    if "train_steps" in rec and rec["train_steps"] != steps[-1]:
        return f"it says train_steps {rec['train_steps']} but its curves end at step {steps[-1]}"
    ran = (rec["config"].get("algo_params") or {}).get("num_iterations")
    if isinstance(ran, int) and ran > len(steps):
        return f"its config runs algo_params.num_iterations={ran} but its curves hold {len(steps)} iterations"
    for name, derive, what in (("final", lambda c: window_mean(c, window),
                                f"the mean of the last {window} values"),
                               ("last", lambda c: c[-1], "the last value")):
        table = rec.get(name)
        if not isinstance(table, dict):
            return f"it has no {name} returns"
        for p in PROTOCOLS:
            written, expected = table.get(p), derive(curves[p])
            if not _is_number_or_none(written) or not _same_number(written, expected):
                return f"its {name} {p} return {written} is not {what} of its {p} curve ({expected})"
    return None


def check_record(path: Path, rec: object, plan: Plan) -> dict:
    """A record's content must be what its name and folder say: the file name decides that a run is
    done, the content fills the table, so a record copied or renamed (a CSRO record as
    ``FOCAL_seed0.json``, a second copy of one seed) would count one run for another, or twice."""
    if not isinstance(rec, dict):
        raise ValueError(f"record {path} is not a record (a JSON object); delete it to rerun that run")
    if rec.get("record_version") != RECORD_VERSION:
        raise ValueError(f"record {path} has version {rec.get('record_version')}, expected {RECORD_VERSION}")
    for key, kind in _RECORD_FIELDS.items():
        value = rec.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            what = "lacks" if key not in rec else "has a malformed"
            raise ValueError(f"record {path} {what} {key!r}; it is not a record this runner wrote: delete it to "
                             "rerun that run (or restore it from git)")
    method, seed = rec["method"], rec["seed"]
    ran = rec["config"]
    inside = {"plan": plan.name, "env": plan.env, "scale": plan.scale, "final_window": plan.final_window}
    for key, want in inside.items():
        if rec[key] != want:
            raise ValueError(f"record {path} holds {key} {rec[key]!r}, but plan {plan.name} has {want!r}; "
                             "a record belongs to the plan and settings that made it: delete it to rerun that run")
    if ran.get("algo_type", method) != method or ran.get("seed", seed) != seed:
        raise ValueError(f"record {path} says {method} seed {seed} but its config ran {ran.get('algo_type')} seed "
                         f"{ran.get('seed')}; delete it to rerun that run")
    problem = self_consistency_problem(rec)
    if problem:
        raise ValueError(f"record {path} does not agree with itself: {problem}; it was edited or damaged: restore it "
                         "from git, or delete it to rerun that run")
    expected = record_path(path.parent.parent, plan, method, seed)
    if path.name != expected.name:
        copy = " (a copy of " + expected.name + ")" if expected.is_file() else ""
        raise ValueError(f"record {path} holds {method} seed {seed}{copy}, not what its name says; one run has one "
                         f"record, named {expected.name}: delete or rename {path.name}")
    return rec


def load_records(records_root: Path, plan: Plan) -> list[dict]:
    """The plan's records; one that is unreadable, of another version or made under other settings is an error,
    and so is one whose content is not what its name says (check_record)."""
    folder = Path(records_root) / plan.name
    for rename in old_names_of(plan.name):  # records left under an old name are this plan's, not lost
        old = Path(records_root) / rename.old
        if not renames.is_plan(rename.old) and any(
                p.name != PROFILE_FILE for p in old.glob("*.json")):
            raise ValueError(f"records of plan {plan.name} are still under its old name in {old} (renamed on "
                             f"{rename.on}); move them first: {MOVE_COMMAND} {records_root}")
    planned: dict[str, dict] = {}  # each method's config is resolved once, not once per seed
    out = []
    for path in sorted(p for p in folder.glob("*.json") if p.name != PROFILE_FILE):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"record {path} is unreadable ({exc}); delete it to rerun that run") from None
        misplaced = misplaced_record_hint(rec, plan.name) if isinstance(rec, dict) else None
        if misplaced:
            raise ValueError(f"record {path}: {misplaced}")
        check_record(path, rec, plan)
        if rec.get("method") in plan.methods:
            if rec.get("dataset") != dataset_identity(plan):
                raise ValueError(f"record {path} was trained on another dataset ({_dataset_words(rec.get('dataset'))}) "
                                 f"than {plan.source or plan.name} builds now ({_dataset_words(dataset_identity(plan))}); "
                                 "restore the plan's dataset settings, or delete the record to rerun it")
            method = rec["method"]
            if method not in planned:
                planned[method] = plan.resolved_config(method)
            drift = settings_drift(rec["config"], planned[method])
            if drift:
                raise ValueError(f"record {path} was made under other settings than {plan.source or plan.name} "
                                 f"now asks ({'; '.join(drift)}); restore the plan, or delete the record to rerun it")
        out.append(rec)
    return out
