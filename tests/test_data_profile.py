"""``python -m rlkit.data profile``: a dataset's mean behaviour returns per checkpoint, in both layouts."""

import json

import numpy as np
import pytest

from rlkit.data import DatasetError, DatasetWriter, Episode, write_legacy_checkpoint
from rlkit.data.__main__ import main as data_main
from rlkit.data.profile import compare, load_reference, profile_dataset

STEPS = [200, 400, 600]
N_TASKS, N_DET, N_STO, T = 4, 2, 3, 5


def episodes(rng, sampled_flags):
    out, counters = [], {False: 0, True: 0}
    for sampled in sampled_flags:
        t = int(rng.integers(2, T + 1))  # ragged lengths: the means are per episode, not per row
        o = rng.standard_normal((t + 1, 2)).astype(np.float32)
        out.append(Episode(o[:-1], rng.uniform(-1, 1, (t, 2)).astype(np.float32),
                           rng.normal(-5, 3, t).astype(np.float32), o[1:], sampled=sampled,
                           index=counters[sampled], terminated=t < T, truncated=t == T))
        counters[sampled] += 1
    return out


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    """The same episodes written in the native format and in the authors' layout, and the slow answer."""
    root = tmp_path_factory.mktemp("profile")
    rng = np.random.default_rng(0)
    native, legacy = root / "native", root / "legacy"
    writer = DatasetWriter(native, "point-robot", {"n_tasks": N_TASKS}, [{"goal": i} for i in range(N_TASKS)], 2, 2,
                           {"seed": 0}, fsync=False)
    slow = {}  # (task, step) -> (mean deterministic return, mean sampled return), summed row by row
    for task in range(N_TASKS):
        for step in STEPS:
            eps = episodes(rng, [False] * N_DET + [True] * N_STO)
            writer.write_checkpoint(task, step, eps)
            write_legacy_checkpoint(legacy, task, step, eps)
            det = [sum(float(r) for r in e.rewards) for e in eps if not e.sampled]
            sto = [sum(float(r) for r in e.rewards) for e in eps if e.sampled]
            slow[(task, step)] = (sum(det) / len(det), sum(sto) / len(sto))
    return native, legacy, slow


@pytest.mark.parametrize("layout", ["native", "legacy"])
def test_profile_is_the_mean_over_tasks_of_each_tasks_mean_episode_return(both_layouts, layout):
    native, legacy, slow = both_layouts
    prof = profile_dataset(native if layout == "native" else legacy)
    assert prof.layout == layout and prof.tasks == list(range(N_TASKS)) and prof.steps == STEPS
    table = prof.table()
    for step in STEPS:
        det = sum(slow[(t, step)][0] for t in range(N_TASKS)) / N_TASKS
        sto = sum(slow[(t, step)][1] for t in range(N_TASKS)) / N_TASKS
        assert table[step]["deterministic"] == pytest.approx(det, rel=1e-5)
        assert table[step]["sampled"] == pytest.approx(sto, rel=1e-5)
    sub = prof.table([1, 3])
    assert sub[400]["deterministic"] == pytest.approx((slow[(1, 400)][0] + slow[(3, 400)][0]) / 2, rel=1e-5)


def test_json_output_is_the_documented_format(both_layouts, capsys):
    native, _, slow = both_layouts
    assert data_main(["profile", str(native), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [str(s) for s in STEPS]
    assert set(out["200"]) == {"deterministic", "sampled"}
    assert out["600"]["sampled"] == pytest.approx(np.mean([slow[(t, 600)][1] for t in range(N_TASKS)]), abs=1e-5)


def test_table_with_split_and_reference(both_layouts, tmp_path, capsys):
    native, _, _ = both_layouts
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"env_name": "point-robot", "n_train_tasks": 3, "n_eval_tasks": 1,
                                  "env_params": {"n_tasks": N_TASKS}}))
    prof = profile_dataset(native).table()
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"env_name": "point-robot", "source": "test",
                               "profile": {str(s): {"deterministic": prof[s]["deterministic"] - 1.0,
                                                    "sampled": prof[s]["sampled"] + 2.0} for s in [400, 600]}}))
    assert data_main(["profile", str(native), "--config", str(config), "--reference", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "train det" in out and "test det" in out and "ref det" in out
    diff = compare(profile_dataset(native), load_reference(ref))
    assert list(diff) == [400, 600]
    assert diff[400]["deterministic"] == pytest.approx(1.0) and diff[600]["sampled"] == pytest.approx(-2.0)
    assert "+1.00" in out and "-2.00" in out


def test_missing_checkpoints_are_named(tmp_path, capsys):
    rng = np.random.default_rng(1)
    writer = DatasetWriter(tmp_path / "d", "point-robot", {"n_tasks": 3}, [{}] * 3, 2, 2,
                           {"seed": 0, "sac": {"num_train_steps": 800, "num_seed_steps": 200, "eval_frequency": 200}},
                           fsync=False)
    for task, steps in {0: [200, 400, 600], 1: [200, 400], 2: [200, 400, 600]}.items():
        for step in steps:
            writer.write_checkpoint(task, step, episodes(rng, [False, True]))
    prof = profile_dataset(tmp_path / "d")
    assert prof.missing() == {600: [1]}
    assert list(prof.table()) == [200, 400]
    assert data_main(["profile", str(tmp_path / "d")]) == 0
    assert "missing checkpoints (step: tasks): 600: 1" in capsys.readouterr().out


def test_a_reference_for_another_env_or_other_steps_is_one_line(both_layouts, tmp_path, capsys):
    native, _, _ = both_layouts
    other_env = tmp_path / "cheetah.json"
    other_env.write_text(json.dumps({"env_name": "cheetah-vel", "profile": {"200": {"deterministic": 1.0}}}))
    other_steps = tmp_path / "steps.json"
    other_steps.write_text(json.dumps({"env_name": "point-robot", "profile": {"200": {"deterministic": 1.0},
                                                                               "2200": {"deterministic": 1.0}}}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"env_name": "point-robot", "profile": {"200": {"sampled": 1.0}}}')
    for ref, words in ((other_env, "is for cheetah-vel"), (other_steps, "steps 2200"),
                       (broken, "malformed"), (tmp_path / "absent.json", "does not exist")):
        assert data_main(["profile", str(native), "--reference", str(ref)]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    with pytest.raises(DatasetError, match="is for cheetah-vel"):
        compare(profile_dataset(native), load_reference(other_env))


def test_the_committed_reference_profiles_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "configs" / "reference_profiles"
    refs = [load_reference(p) for p in sorted(folder.glob("*.json"))]
    assert refs and all(r.source and r.table for r in refs)
    from rlkit.data.profile import reference_for

    point = reference_for("point-robot")  # configs/reference_profiles/point-robot.json: the authors' settings
    steps = sorted(point.table)  # the train_point schedule, 2000 ... 4800 (a run cut short stops earlier, and says so)
    assert steps == list(range(2000, steps[-1] + 1, 200)) and steps[-1] >= 4400
    raw = json.loads((folder / "point-robot.json").read_text())
    assert raw["settings"]["hidden_dim"] == 1024 and raw["settings"]["num_eval_sample_episodes"] == 50
    assert all(len(row["tasks"]) >= 8 for row in raw["profile"].values())
    variant = load_reference(folder / "point-robot-small-networks.json")
    assert "not the authors' settings" in variant.source and "5 sampled episodes" in variant.source


def test_a_dataset_with_steps_the_reference_lacks_is_refused_by_name(both_layouts, tmp_path, capsys):
    """The other way round: a dataset on a finer checkpoint schedule than the reference is not compared
    at the reference's steps only (what lies between would go unseen)."""
    native, _, _ = both_layouts
    sparse = tmp_path / "sparse.json"
    sparse.write_text(json.dumps({"env_name": "point-robot", "profile": {"200": {"deterministic": 1.0},
                                                                          "600": {"deterministic": 1.0}}}))
    assert data_main(["profile", str(native), "--reference", str(sparse)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has steps 400 that the reference" in err and len(err.splitlines()) == 1, err


def test_per_task_json_keeps_every_tasks_returns(both_layouts, capsys):
    native, _, slow = both_layouts
    assert data_main(["profile", str(native), "--json", "--per-task"]) == 0
    out = json.loads(capsys.readouterr().out)
    for step in STEPS:
        for t in range(N_TASKS):
            assert out[str(step)]["tasks"][str(t)]["deterministic"] == pytest.approx(slow[(t, step)][0], rel=1e-5)
    assert data_main(["profile", str(native), "--per-task"]) == 2
    assert "add --json" in capsys.readouterr().err


def test_another_envs_config_is_refused_in_one_line(both_layouts, tmp_path, capsys):
    """Was: `profile --config configs/cheetah-vel.json` on point-robot data printed train/test columns from
    cheetah-vel's split as if they were this dataset's. A config whose env trains on this data
    (sparse-point-robot on point-robot) is accepted."""
    native, _, _ = both_layouts
    other = tmp_path / "cheetah.json"
    other.write_text(json.dumps({"env_name": "cheetah-vel", "n_train_tasks": 3, "n_eval_tasks": 1,
                                 "env_params": {"n_tasks": N_TASKS}}))
    for extra in ([], ["--json"]):
        assert data_main(["profile", str(native), "--config", str(other), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert "cheetah-vel" in err and "point-robot" in err and str(other) in err
    sparse = tmp_path / "sparse.json"
    sparse.write_text(json.dumps({"env_name": "sparse-point-robot", "n_train_tasks": 3, "n_eval_tasks": 1,
                                  "env_params": {"n_tasks": N_TASKS}}))
    assert data_main(["profile", str(native), "--config", str(sparse)]) == 0
    assert "train det" in capsys.readouterr().out
