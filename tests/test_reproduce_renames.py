"""Renaming a plan never orphans a record: records move with their plan, the old name says where."""

import json
import re
from pathlib import Path

import pytest

from rlkit.config import ConfigError, save_config
from rlkit.reproduce import renames
from rlkit.reproduce.__main__ import main
from rlkit.reproduce.plan import PLAN_DIR, available_plans, load_plan, plan_path
from rlkit.reproduce.records import load_records
from rlkit.reproduce.renames import Rename, move_records
from rlkit.reproduce.runner import Budget, Layout, ReproduceError, Reproduction

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "docs" / "results" / "records"


def test_the_committed_renames_lead_to_plans_and_leave_nothing_behind():
    assert "renamed" not in available_plans()  # the registry is no plan
    table = renames.renames()
    assert table, "the registry lists the point-robot renames"
    for old, r in table.items():
        assert r.new in available_plans(), f"{old} was renamed to {r.new}, which is no plan"
        if old not in available_plans():  # a name no plan holds any more keeps no records
            assert not any(p.name != "dataset_profile.json" for p in (RECORDS / old).glob("*.json")), old
    assert move_records(RECORDS, echo=lambda m: None) == []  # every committed record is where it belongs
    for r in table.values():
        for path in (RECORDS / r.new).glob("*_seed*.json"):
            rec = json.loads(path.read_text(encoding="utf-8"))
            assert rec["plan"] == r.new


def test_the_old_name_answers_status_with_where_its_records_went(capsys):
    assert main(["point-robot", "--scale", "cpu-expert", "--status"]) == 0
    out = capsys.readouterr().out
    assert "renamed point-robot-cpu on 2026-12-07" in out and str(RECORDS / "point-robot-cpu") in out
    assert "--scale cpu --status" in out
    assert main(["point-robot", "--scale", "cpu-expert", "--report-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("use --scale cpu")
    # a name another plan took over says what it meant before, beside that plan's status
    assert main(["point-robot", "--scale", "cpu", "--status"]) == 0
    assert "was the plan now called point-robot-cpu-slow-behaviour" in capsys.readouterr().out


def test_a_plan_taking_its_dataset_from_an_old_name_is_told_the_new_one(tmp_path):
    text = (PLAN_DIR / "point-robot-cpu-longer.yaml").read_text(encoding="utf-8")
    plan = tmp_path / "mine.yaml"
    plan.write_text(text.replace("from_plan: point-robot-cpu}", "from_plan: point-robot-cpu-expert}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="write from_plan: point-robot-cpu$"):
        load_plan(plan)


def _record(plan: str, scale: str, method: str, created: str) -> dict:
    return {"record_version": 1, "plan": plan, "env": "point-robot", "scale": scale, "method": method, "seed": 0,
            "created": created, "final": {"offline": -5.0}}


@pytest.fixture
def swap(monkeypatch):
    """Two plans that swap names, as the point-robot plans did: b -> c, then a -> b."""
    table = {"point-robot-qa": Rename("point-robot-qa", "point-robot-qb", "2026-12-07", "its data is the main one"),
             "point-robot-qb": Rename("point-robot-qb", "point-robot-qc", "2026-12-07", "its data is slow")}
    monkeypatch.setattr(renames, "renames", lambda: table)
    monkeypatch.setattr(renames, "is_plan", lambda name: name == "point-robot-qb")  # the reused name; point-robot-qa is none
    return table


def test_records_move_with_a_swap_of_names_and_nothing_is_lost(tmp_path, swap):
    root = tmp_path / "records"
    save_config(_record("point-robot-qa", "qa", "CSRO", "2026-11-30T00:00:00"), root / "point-robot-qa" / "CSRO_seed0.json")
    save_config({"2000": {"deterministic": -20.0}}, root / "point-robot-qa" / "dataset_profile.json")
    save_config(_record("point-robot-qb", "qb", "CSRO", "2026-11-30T00:00:00"), root / "point-robot-qb" / "CSRO_seed0.json")
    save_config({"2000": {"deterministic": -19.0}}, root / "point-robot-qb" / "dataset_profile.json")
    moved = move_records(root, echo=lambda m: None)
    assert len(moved) == 4 and not (root / "point-robot-qa").exists()
    a = json.loads((root / "point-robot-qb" / "CSRO_seed0.json").read_text(encoding="utf-8"))
    c = json.loads((root / "point-robot-qc" / "CSRO_seed0.json").read_text(encoding="utf-8"))
    assert (a["plan"], a["scale"], a["renamed_from"]) == ("point-robot-qb", "qb", "point-robot-qa")
    assert (c["plan"], c["scale"], c["renamed_from"]) == ("point-robot-qc", "qc", "point-robot-qb")
    assert json.loads((root / "point-robot-qb" / "dataset_profile.json").read_text())["2000"]["deterministic"] == -20.0
    assert json.loads((root / "point-robot-qc" / "dataset_profile.json").read_text())["2000"]["deterministic"] == -19.0
    assert move_records(root, echo=lambda m: None) == []  # moved once: a second call finds nothing
    # a record the reused name made after the rename stays where it is
    save_config(_record("point-robot-qb", "qb", "FOCAL", "2026-12-08T00:00:00"), root / "point-robot-qb" / "FOCAL_seed0.json")
    assert move_records(root, echo=lambda m: None) == []


def test_a_move_never_overwrites_a_record(tmp_path, swap):
    root = tmp_path / "records"
    save_config(_record("point-robot-qb", "qb", "CSRO", "2026-11-30T00:00:00"), root / "point-robot-qb" / "CSRO_seed0.json")
    save_config(_record("point-robot-qc", "qc", "CSRO", "2026-12-08T00:00:00"), root / "point-robot-qc" / "CSRO_seed0.json")
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    with pytest.raises(ConfigError, match="exists; move or delete one of them first"):
        move_records(root, echo=lambda m: None)
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before


def test_records_left_under_an_old_name_stop_the_plan_with_the_command_that_moves_them(tmp_path):
    plan = load_plan(plan_path("point-robot", "cpu-longer"))
    root = tmp_path / "records"
    old = RECORDS / "point-robot-cpu-longer" / "CSRO_seed0.json"
    rec = json.loads(old.read_text(encoding="utf-8"))
    save_config({**rec, "plan": "point-robot-cpu-expert-longer", "scale": "cpu-expert-longer"},
                root / "point-robot-cpu-expert-longer" / "CSRO_seed0.json")
    with pytest.raises(ValueError, match="still under its old name .* move them first: python -m rlkit.reproduce.renames"):
        load_records(root, plan)
    # under a reused name: a record made before the rename, by the plan that had the name then
    main_plan = load_plan(plan_path("point-robot", "cpu-slow-behaviour"))
    slow = json.loads((RECORDS / "point-robot-cpu-slow-behaviour" / "CSRO_seed0.json").read_text(encoding="utf-8"))
    unmoved = {k: v for k, v in slow.items() if k != "renamed_from"} | {"plan": "point-robot-cpu", "scale": "cpu"}
    save_config(unmoved, root / "point-robot-cpu" / "CSRO_seed0.json")
    with pytest.raises(ValueError, match="made by the plan now called point-robot-cpu-slow-behaviour"):
        load_records(root, load_plan(plan_path("point-robot", "cpu")))
    assert load_records(RECORDS, main_plan)  # the committed ones load


def test_work_left_under_an_old_name_is_never_started_again_beside_it(tmp_path):
    plan = load_plan(plan_path("point-robot", "cpu-longer"))
    out = tmp_path / "out"
    (out / "point-robot-cpu-expert-longer" / "runs").mkdir(parents=True)
    repro = Reproduction(plan, Layout.for_plan(out, plan, tmp_path / "records"), Budget(None), echo=lambda m: None)
    hint = f"mv {out / 'point-robot-cpu-expert-longer'} {out / 'point-robot-cpu-longer'}"
    assert any(hint in line for line in repro.status())
    with pytest.raises(ReproduceError, match="move it first: " + re.escape(hint)):
        repro.run()
    assert (out / "point-robot-cpu-expert-longer" / "runs").is_dir() and not (out / "point-robot-cpu-longer").exists()
