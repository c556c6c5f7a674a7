"""The page's gap by training length: each run's curves read at a step by the rule its final follows."""

import math
from pathlib import Path

import pytest

from rlkit.config import ConfigError
from rlkit.reproduce.plan import PLAN_DIR, Plan, load_plan
from rlkit.reproduce.report import SHIFT_SOURCES, gap_rows, return_at


def _record(seed: int, offline: list, np_online: list, window: int = 3) -> dict:
    steps = [200 * (i + 1) for i in range(len(offline))]
    return {"method": "CSRO", "seed": seed, "final_window": window,
            "curves": {"steps": steps, "offline": offline, "online": offline, "np_online": np_online}}


def test_return_at_a_step_is_the_mean_of_the_last_evaluations_up_to_it():
    rec = _record(0, [-10.0, -8.0, -6.0, -4.0, None, -2.0], [-20.0] * 6)
    assert return_at(rec, "offline", 800) == pytest.approx((-8.0 - 6.0 - 4.0) / 3)
    assert return_at(rec, "offline", 700) == pytest.approx((-10.0 - 8.0 - 6.0) / 3)  # steps up to 700: 3 of them
    assert return_at(rec, "offline", 1200) == pytest.approx((-4.0 - 2.0) / 2)  # a missing evaluation is skipped
    assert return_at(rec, "offline", 1400) is None  # the run is shorter


def test_gap_rows_give_each_seeds_offline_minus_non_prior_at_each_length():
    plan = Plan(env="point-robot", scale="x", config=Path("c.json"), description="", dataset=None,
                methods=["CSRO", "FOCAL"], seeds=[0, 1], train_overrides=[], report_steps=[600, 1200])
    recs = [_record(0, [-6.0] * 6, [-16.0, -15.0, -14.0, -9.0, -8.0, -7.0]),
            _record(1, [-5.0] * 3, [-12.0] * 3)]  # seed 1 stopped at 600 steps
    rows = gap_rows(plan, recs)
    assert [(m, s) for m, s, _ in rows] == [("CSRO", 600), ("CSRO", 1200)]
    slow = {0: -6.0 - (-16.0 - 15.0 - 14.0) / 3, 1: -5.0 + 12.0}
    assert rows[0][2] == pytest.approx(slow)
    assert rows[1][2] == pytest.approx({0: -6.0 - (-9.0 - 8.0 - 7.0) / 3})
    assert all(math.isfinite(g) for _, _, gaps in rows for g in gaps.values())


def test_report_steps_must_rise(tmp_path):
    text = (PLAN_DIR / "point-robot-cpu-30k.yaml").read_text(encoding="utf-8")
    assert load_plan(PLAN_DIR / "point-robot-cpu-30k.yaml").report_steps == [6000, 12000, 20000, 30000]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("report_steps: [6000, 12000, 20000, 30000]", "report_steps: [12000, 6000]"),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="report_steps must be a rising list"):
        load_plan(bad)


def _full_record(method: str, seed: int, final: float, shift: bool, train_s: float = 60.0) -> dict:
    """A record the page can summarise (no config to find its dataset by: no reference returns)."""
    rec = _record(seed, [final] * 3, [final] * 3)
    rec.update(method=method, train_steps=600, dataset={}, final={p: final for p in ("online", "offline", "np_online")},
               wall_time_s={"train": train_s, "eval": 10.0, "context_shift": 0.0},
               context_shift={"sources": {s: {"accuracy": 0.5, "shift_ratio": 0.25}
                                          for s in SHIFT_SOURCES}} if shift else {})
    return rec


def test_the_page_shows_oracles_apart_na_without_a_task_embedding_and_the_cost_per_step():
    """BOReL-RR (its preset's _oracle) gets its own table below the ranked methods; a method whose records hold
    no context-shift diagnostics reads n/a, not nan; every row gives training's ms per step."""
    from rlkit.config import preset_oracle
    from rlkit.reproduce.report import markdown

    assert preset_oracle("BOReL-RR") and preset_oracle("BOReL") is None and preset_oracle("CSRO") is None
    plan = Plan(env="point-robot", scale="x", config=Path("c.json"), description="d", dataset=None,
                methods=["CSRO", "BOReL", "BOReL-RR"], seeds=[0], train_overrides=[])
    recs = [_full_record("CSRO", 0, -5.0, True, train_s=120.0), _full_record("BOReL", 0, -9.0, False),
            _full_record("BOReL-RR", 0, -4.0, True)]
    page = markdown(plan, recs, None, "cmd")
    ranked, _, rest = page.partition("Oracles, apart")
    assert "| CSRO |" in ranked and "| BOReL |" in ranked and "| BOReL-RR | 0" not in ranked
    assert rest.index("| BOReL-RR | 0") < rest.index("Context-shift diagnostics")
    assert "| CSRO | 0 | -5.0 | -5.0 | -5.0 | 600 | 200 |" in page  # 120 s over 600 steps
    assert "| BOReL | n/a | n/a | n/a |" in page and "nan" not in page
