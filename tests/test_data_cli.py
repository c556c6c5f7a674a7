"""``python -m rlkit.data`` (info, verify, convert, normalizer), normalizer loading, benchmark smoke runs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rlkit.data import DatasetError, compute_abs_max, load_normalizer, load_offline_data, save_normalizer
from rlkit.data.__main__ import main
from rlkit.data.synthetic import write_synthetic_dataset


@pytest.fixture()
def native(tmp_path):
    return write_synthetic_dataset(tmp_path / "cheetah-vel", n_tasks=3, steps=[100, 200], n_deterministic=1,
                                   n_sampled=2, length=5, obs_dim=4, act_dim=2, early_end_prob=0.3, seed=2)


def test_info_native_and_legacy(native, tmp_path, capsys):
    assert main(["info", str(native), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "native" and info["obs_dim"] == 4 and info["act_dim"] == 2
    assert info["tasks_with_data"] == [0, 1, 2] and info["checkpoints"]["steps"] == [100, 200]
    assert info["episodes_per_checkpoint"] == {"deterministic": [1, 1], "sampled": [2, 2]}
    assert info["files"] == 6 and info["unrecorded_files"] == [] and info["temp_files"] == 0
    legacy = tmp_path / "legacy"
    assert main(["convert", str(native), str(legacy), "--to", "legacy"]) == 0
    capsys.readouterr()
    assert main(["info", str(legacy)]) == 0
    out = capsys.readouterr().out
    assert "legacy" in out and "[100, 200]" in out


def test_verify_finds_a_corrupted_file(native, capsys):
    assert main(["verify", str(native)]) == 0
    f = native / "task_002" / "step_00000200.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 1
    f.write_bytes(bytes(raw))
    assert main(["verify", str(native)]) == 1
    assert "task_002/step_00000200.npy fails its SHA-256 check" in capsys.readouterr().out


def test_convert_legacy_to_native_with_config(native, tmp_path, capsys):
    legacy = tmp_path / "legacy"
    main(["convert", str(native), str(legacy), "--to", "legacy"])
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"env_name": "not-a-registered-env", "env_params": {"n_tasks": 3,
                                                                               "max_episode_steps": 5}}))
    back = tmp_path / "back"
    assert main(["convert", str(legacy), str(back), "--to", "native", "--config", str(cfg)]) == 0
    meta = json.loads((back / "dataset.json").read_text())
    assert meta["env_name"] == "not-a-registered-env" and meta["env_params"]["max_episode_steps"] == 5
    a = load_offline_data(native, [0, 1, 2], [100, 300, 100], n_trj=2)
    b = load_offline_data(back, [0, 1, 2], [100, 300, 100], n_trj=2)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.terminals, b.terminals)
    assert main(["convert", str(native), str(back), "--to", "legacy"]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err


def test_convert_with_a_malformed_config_is_one_line(native, tmp_path, capsys):
    """Was: a JSONDecodeError traceback."""
    legacy = tmp_path / "legacy"
    main(["convert", str(native), str(legacy), "--to", "legacy"])
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text('{"env_name": "cheetah-vel", ')
    for cfg, says in ((bad, "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 29"),
                      (tmp_path / "nope.json", "not found"), (tmp_path, "cannot read config file")):
        assert main(["convert", str(legacy), str(tmp_path / "out"), "--to", "native", "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_failed_convert_leaves_nothing_that_blocks_the_rerun(native, tmp_path, capsys):
    """Was: the files converted before the failure stayed in DST, and the corrected rerun was refused
    ("not empty"). Now the conversion is built beside DST and renamed into place only when complete."""
    legacy = tmp_path / "legacy"
    main(["convert", str(native), str(legacy), "--to", "legacy"])
    victim = sorted((legacy / "goal_idx2").iterdir())[-1]
    good = victim.read_bytes()
    victim.write_bytes(b"not a numpy file")
    out = tmp_path / "out"
    assert main(["convert", str(legacy), str(out), "--to", "native"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    victim.write_bytes(good)  # the corrected source: the same command now works
    assert main(["convert", str(legacy), str(out), "--to", "native"]) == 0
    assert main(["verify", str(out)]) == 0
    out.joinpath("stray").write_text("x")  # an existing, non-empty DST is replaced only with --overwrite
    assert main(["convert", str(legacy), str(out), "--to", "native"]) == 2
    assert main(["convert", str(legacy), str(out), "--to", "native", "--overwrite"]) == 0
    assert (out / "stray").read_text() == "x" and (out / "dataset.json").is_file()  # the user's file stays


def test_normalizer_command_and_loading(native, tmp_path, capsys):
    assert main(["normalizer", str(native)]) == 0
    abs_max = load_normalizer(native, 4)
    every = load_offline_data(native, [0, 1, 2], [100, 300, 100], n_trj=1, sample=0, normalize=False)
    want = np.maximum(np.abs(every.obs).max(0), np.abs(every.next_obs).max(0))
    # the normalizer covers all files (deterministic and sampled); the deterministic subset is below it
    assert np.all(abs_max >= want - 1e-6)
    np.testing.assert_allclose(abs_max, compute_abs_max(native))
    assert main(["normalizer", str(native)]) == 2  # exists; --force to replace
    assert main(["normalizer", str(native), "--force"]) == 0

    raw = load_offline_data(native, [1], 100, n_trj=2, normalize=False)
    auto = load_offline_data(native, [1], 100, n_trj=2)  # normalizer.npz present -> divided
    np.testing.assert_allclose(auto.obs, raw.obs / abs_max.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(auto.next_obs, raw.next_obs / abs_max.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(auto.actions, raw.actions)
    np.testing.assert_array_equal(auto.obs_abs_max, abs_max)
    assert np.abs(auto.obs).max() <= 1.0 + 1e-6

    other = write_synthetic_dataset(tmp_path / "other", n_tasks=1, steps=[1], n_sampled=1, length=3)
    with pytest.raises(DatasetError, match="normalizer.npz does not exist"):
        load_offline_data(other, [0], 1, n_trj=1, normalize=True)
    save_normalizer(other, np.ones(5))
    with pytest.raises(DatasetError, match="abs_max of size 5 but observations have 2 dims"):
        load_offline_data(other, [0], 1, n_trj=1)
    (other / "normalizer.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="normalizer.npz is unreadable"):
        load_offline_data(other, [0], 1, n_trj=1)


def test_module_entry_point_runs(native):
    res = subprocess.run([sys.executable, "-m", "rlkit.data", "info", str(native)], capture_output=True, text=True)
    assert res.returncode == 0 and "native" in res.stdout
    res = subprocess.run([sys.executable, "-m", "rlkit.data", "info", str(native / "missing")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "does not exist: generate it with" in res.stderr


@pytest.mark.parametrize("name", ["bench_data_load", "bench_buffer_sample"])
def test_benchmarks_quick_smoke(name, tmp_path):
    import importlib

    mod = importlib.import_module(f"benchmarks.{name}")
    out = tmp_path / "r.json"
    payload = mod.main(["--quick", "--workdir", str(tmp_path / "work"), "--json", str(out)])
    assert json.loads(out.read_text())["quick"] is True and payload["quick"]
    assert not (tmp_path / "work" / "point-robot-native").exists()  # synthetic data is deleted afterwards


@pytest.mark.slow  # a benchmark's smoke run (about 40 s): `make test-slow`, keeping `make test` under 15 minutes
@pytest.mark.parametrize("name, first", [("bench_verified_stamp", "no check"), ("bench_minari_load", "native")])
def test_integrity_and_minari_benchmarks_quick_smoke(name, first, tmp_path, monkeypatch):
    import importlib

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "store"))
    payload = importlib.import_module(f"benchmarks.{name}").main(["--quick"])
    assert payload["quick"] and payload["rows"][0]["vs_no_check" if name == "bench_verified_stamp" else "vs_native"] == 1
    assert payload["rows"][0][("variant" if name == "bench_verified_stamp" else "source")] == first
    assert all(r["median_s"] > 0 for r in payload["rows"])


# ---- convert --overwrite: only the dataset's own files, never anything else (issue 31) ----------------


def _tree(root):
    """{relative path: bytes} of every file under ``root`` (what must survive a refused --overwrite)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_overwrite_refuses_a_folder_of_unrelated_files(native, tmp_path, capsys):
    """Was: --overwrite deleted all of DST, whatever it held."""
    dst = tmp_path / "mine"
    (dst / "papers").mkdir(parents=True)
    (dst / "notes.txt").write_text("keep me")
    (dst / "papers" / "draft.tex").write_text("and me")
    before = _tree(dst)
    _refused(capsys, ["convert", str(native), str(dst), "--to", "legacy", "--overwrite"],
             str(dst), "no legacy dataset", "--overwrite")
    assert _tree(dst) == before


def test_overwrite_refuses_a_dataset_of_the_other_layout(native, tmp_path, capsys):
    """A native dataset is not replaced by a (lossy) legacy copy: DST must be a dataset of the --to layout."""
    other = write_synthetic_dataset(tmp_path / "other", n_tasks=1, steps=[100], n_sampled=1, length=3)
    before = _tree(other)
    _refused(capsys, ["convert", str(native), str(other), "--to", "legacy", "--overwrite"], "native dataset",
             "not a legacy")
    assert _tree(other) == before


def test_overwrite_refuses_a_destination_that_holds_the_source(tmp_path, capsys):
    outer = tmp_path / "outer"
    legacy = outer  # a legacy dataset whose folder also holds the native source
    src = write_synthetic_dataset(outer / "native", n_tasks=2, steps=[100], n_sampled=1, length=3)
    assert main(["convert", str(src), str(tmp_path / "l"), "--to", "legacy"]) == 0
    for d in (tmp_path / "l").iterdir():
        d.rename(legacy / d.name)
    before = _tree(outer)
    _refused(capsys, ["convert", str(src), str(outer), "--to", "legacy", "--overwrite"], "holds the source",
             str(src))
    assert _tree(outer) == before


def test_overwrite_refuses_a_minari_store_and_a_namespace(native, tmp_path, monkeypatch, capsys):
    store = tmp_path / "m" / "store"
    ns = store / "csro" / "point-robot"
    (ns / "task-000-v0" / "data").mkdir(parents=True)
    (ns / "namespace_metadata.json").write_text("{}")
    (ns / "task-000-v0" / "data" / "metadata.json").write_text("{}")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    before = _tree(store)
    for dst in (store, store / "csro", ns, store.parent):  # the last one holds the store
        _refused(capsys, ["convert", str(native), str(dst), "--to", "legacy", "--overwrite"], "Minari")
    assert _tree(store) == before


def test_a_dataset_is_not_converted_onto_itself(native, tmp_path, capsys):
    """Was: `convert D D --to legacy --overwrite` replaced the native original (checksums, flags,
    generator state) by its lossy legacy copy."""
    before = _tree(native)
    for extra in ([], ["--overwrite"]):
        _refused(capsys, ["convert", str(native), str(native), "--to", "legacy", *extra], "onto itself")
        _refused(capsys, ["convert", str(native), f"{native}/../{native.name}/.", "--to", "legacy", *extra], "onto itself")
    assert _tree(native) == before


def test_overwrite_replaces_only_the_datasets_own_files_in_one_swap(native, tmp_path, capsys, monkeypatch):
    """A legacy DST is replaced by the new conversion: its goal_idx* folders (one more task than the new
    one) and normalizer go, a file the user keeps beside them stays; a conversion that fails leaves the old
    DST as it was, and nothing beside it."""
    import rlkit.data.convert as convert

    dst = tmp_path / "legacy"
    old = write_synthetic_dataset(tmp_path / "old", n_tasks=4, steps=[300], n_sampled=1, length=3, obs_dim=4,
                                  act_dim=2)
    assert main(["convert", str(old), str(dst), "--to", "legacy"]) == 0
    (dst / "README.txt").write_text("how I made this")
    before = _tree(dst)

    def broken(*a, **k):
        raise DatasetError("simulated failure halfway")

    monkeypatch.setattr(convert, "write_legacy_checkpoint", broken)
    _refused(capsys, ["convert", str(native), str(dst), "--to", "legacy", "--overwrite"], "simulated")
    assert _tree(dst) == before and sorted(p.name for p in tmp_path.iterdir()) == ["cheetah-vel", "legacy", "old"]
    monkeypatch.undo()

    assert main(["convert", str(native), str(dst), "--to", "legacy", "--overwrite"]) == 0
    assert (dst / "README.txt").read_text() == "how I made this"
    assert sorted(p.name for p in dst.iterdir()) == ["README.txt", "goal_idx0", "goal_idx1", "goal_idx2"]
    fresh = tmp_path / "fresh"
    assert main(["convert", str(native), str(fresh), "--to", "legacy"]) == 0
    assert {k: v for k, v in _tree(dst).items() if k != "README.txt"} == _tree(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cheetah-vel", "fresh", "legacy", "old"]


def test_overwrite_refuses_foreign_files_inside_the_datasets_folders(native, tmp_path, capsys):
    dst = tmp_path / "legacy"
    assert main(["convert", str(native), str(dst), "--to", "legacy"]) == 0
    (dst / "goal_idx1" / "my_analysis.csv").write_text("1,2")
    before = _tree(dst)
    _refused(capsys, ["convert", str(native), str(dst), "--to", "legacy", "--overwrite"], "my_analysis.csv")
    assert _tree(dst) == before


def test_overwrite_help_says_what_it_replaces(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--overwrite" in text and "dataset.json" in text and "goal_idx" in text and "kept" in text
