"""Renamed plans: ``configs/reproduce/renamed.yaml``, the one place that knows a plan's old names.

A plan is renamed when what its data is turns out to be other than its name said (the point-robot
plans, 2026-12: the "expert" data was the data that matches the authors' generator, the plain
``cpu`` data the slow one). Its records move with it (``git mv``, each keeping ``renamed_from``),
and nothing may be orphaned: the old name still answers ``--status`` with where its records went,
a record or a work folder left under an old name is named with the command that moves it, and
a name reused by another plan (``point-robot-cpu``) says what it meant before.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from omegaconf import OmegaConf

from rlkit.config import REPO_CONFIG_DIR, ConfigError

RENAMES_FILE = REPO_CONFIG_DIR / "reproduce" / "renamed.yaml"
MOVE_COMMAND = "python -m rlkit.reproduce.renames"


@dataclass(frozen=True)
class Rename:
    old: str
    new: str
    on: str  # ISO date: records created before it under ``old`` belong to ``new``
    why: str

    def line(self, records_root: Path | None = None) -> str:
        where = f" ({Path(records_root) / self.new})" if records_root is not None else ""
        return (f"plan {self.old} was renamed {self.new} on {self.on} ({self.why}); its records moved with it"
                f"{where}")


class PlanRenamed(ConfigError):
    """An old plan name asked for: one line that says the new name (``--status`` prints it and exits 0)."""

    def __init__(self, rename: Rename, env: str, records_root: Path | None = None):
        self.rename = rename
        scale = rename.new[len(env) + 1:] if rename.new.startswith(env + "-") else None
        use = f": use --scale {scale}" if scale else f": use plan {rename.new}"
        super().__init__(rename.line(records_root) + use)


@cache
def _load(path: Path = RENAMES_FILE) -> dict[str, Rename]:
    if not path.is_file():
        return {}
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    except Exception as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    out = {}
    for old, row in raw.items():
        if not (isinstance(row, dict) and set(row) == {"to", "date", "why"} and all(isinstance(v, str) for v in row.values())):
            raise ConfigError(f"{path}: {old!r} must map to {{to: NEW NAME, date: YYYY-MM-DD, why: ...}}, got {row!r}")
        try:
            _dt.date.fromisoformat(row["date"])
        except ValueError:
            raise ConfigError(f"{path}: {old!r} has date {row['date']!r}; write it as YYYY-MM-DD") from None
        out[str(old)] = Rename(str(old), row["to"], row["date"], row["why"])
    return out


def is_plan(name: str) -> bool:
    """A committed plan holds the name today (it may be an old name too: ``point-robot-cpu``)."""
    return (RENAMES_FILE.parent / f"{name}.yaml").is_file()


def renames() -> dict[str, Rename]:
    """Old name -> its :class:`Rename`."""
    return _load()


def renamed_from(name: str) -> Rename | None:
    """The rename that took ``name`` away, if one did."""
    return renames().get(name)


def old_names_of(name: str) -> list[Rename]:
    """The renames that gave a plan its name (``point-robot-cpu`` <- ``point-robot-cpu-expert``)."""
    return [r for r in renames().values() if r.new == name]


def made_before(record: dict, rename: Rename) -> bool:
    """A record written under ``rename.old`` before the rename (its ``created`` date is earlier)."""
    created = str(record.get("created", ""))[:10]
    try:
        return _dt.date.fromisoformat(created) < _dt.date.fromisoformat(rename.on)
    except ValueError:
        return False


def misplaced_record_hint(record: dict, folder_name: str) -> str | None:
    """Where a record left under its plan's old name belongs, as a ``git mv`` line, or None.

    A record is misplaced when it names the plan of its folder, was written before that name was
    given to another plan, and does not say it moved (``renamed_from``): a fork that made it under
    the old name and then took the rename."""
    rename = renamed_from(folder_name)
    if rename is None or "renamed_from" in record or record.get("plan") != folder_name or not made_before(record, rename):
        return None
    return (f"it was made by the plan now called {rename.new} (renamed on {rename.on}); move the records of "
            f"renamed plans with: {MOVE_COMMAND}")


def moved_work_hint(out: Path, plan_name: str) -> str | None:
    """A work folder (dataset, runs) left under an old name of ``plan_name``: the line that moves it.

    An old name that is a plan's name again (``point-robot-cpu``) holds that plan's work now, so
    its folder is never taken for this one's: the stamp check then names the clash."""
    for r in old_names_of(plan_name):
        old = Path(out) / r.old
        if is_plan(r.old):
            continue
        if old.is_dir() and not (Path(out) / plan_name).exists():
            return (f"work of plan {plan_name} from before its rename is in {old}; to resume it there, move it "
                    f"first: mv {old} {Path(out) / plan_name}")
    return None


def _belongs_to_old_name(record: dict, rename: Rename) -> bool:
    return record.get("plan") == rename.old and "renamed_from" not in record and (
        not is_plan(rename.old) or made_before(record, rename))


def _vacating_first(items: list[Rename]) -> list[Rename]:
    """Renames ordered so that a folder is emptied before another plan's records move into it."""
    ordered, left = [], list(items)
    while left:
        ready = [r for r in left if not any(o.old == r.new for o in left if o is not r)]
        if not ready:  # a cycle (a <-> b): no order empties a folder first
            raise ConfigError(f"{RENAMES_FILE}: renames {', '.join(r.old for r in left)} form a cycle; "
                              "rename through a free name")
        ordered += ready
        left = [r for r in left if r not in ready]
    return ordered


def move_records(records_root: Path, echo=print) -> list[tuple[Path, Path]]:
    """Move the records of every renamed plan to its new name: each file rewritten there with the new
    ``plan`` and ``scale`` and ``renamed_from``, then the old file removed (the dataset profile moves
    as is). A target that already exists is never overwritten: the move stops with one line."""
    import json

    from rlkit.config import save_config

    moved = []
    for rename in _vacating_first(list(renames().values())):
        old_dir, new_dir = Path(records_root) / rename.old, Path(records_root) / rename.new
        files = sorted(old_dir.glob("*.json")) if old_dir.is_dir() else []
        records = {}
        for path in files:
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{path} is unreadable ({exc}); restore it from git before moving it") from None
            if path.name == "dataset_profile.json" or (isinstance(rec, dict) and _belongs_to_old_name(rec, rename)):
                records[path] = rec
        profile_only = all(p.name == "dataset_profile.json" for p in records)
        if not records or (profile_only and is_plan(rename.old)):
            continue
        for path in records:
            if (new_dir / path.name).exists():
                raise ConfigError(f"cannot move {path} to {new_dir}: {new_dir / path.name} exists; "
                                  "move or delete one of them first")
        for path, rec in records.items():
            target = new_dir / path.name
            if path.name != "dataset_profile.json":
                scale = rename.new[len(rec["env"]) + 1:] if rename.new.startswith(f"{rec['env']}-") else rec.get("scale")
                rec = {**rec, "plan": rename.new, "scale": scale, "renamed_from": rename.old}
            save_config(rec, target)
            path.unlink()
            moved.append((path, target))
            echo(f"{path} -> {target}")
        if old_dir.is_dir() and not any(old_dir.iterdir()):
            old_dir.rmdir()
    return moved


def main(argv=None) -> int:
    """``python -m rlkit.reproduce.renames [RECORDS]``: move records left under old plan names."""
    import argparse
    import sys

    repo = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(prog="python -m rlkit.reproduce.renames", description=main.__doc__)
    p.add_argument("records", nargs="?", type=Path, default=repo / "docs" / "results" / "records",
                   help="the records folder (default: docs/results/records)")
    args = p.parse_args(argv)
    try:
        moved = move_records(args.records)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(moved)} files moved" if moved else "nothing to move: every record is under its plan's name")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
