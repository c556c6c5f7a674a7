"""Run directory: files, progress.csv rows and columns, resume, snapshots, TensorBoard."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from rlkit.core import logger as logger_mod
from rlkit.core.logger import (
    RunDirError,
    RunLogger,
    SnapshotError,
    git_report,
    latest_snapshot,
    load_snapshot,
    run_dir_path,
)

VARIANT = {"env_name": "point-robot", "algo_params": {"num_iterations": 3, "train_epoch": [0, 10, 5]}}


def make(tmp_path, **kw) -> RunLogger:
    kw.setdefault("console", False)
    return RunLogger.create(tmp_path / "output", "point-robot", "test", 1, kw.pop("variant", VARIANT), **kw)


def read_progress(run: RunLogger) -> tuple[list[str], list[dict]]:
    with open(run.progress_path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def log_epochs(run: RunLogger, epochs, extra: dict | None = None) -> None:
    for epoch in epochs:
        run.record_tabular("Epoch", epoch)
        run.record_tabular("QF Loss", 1.0 / (epoch + 1), group="trainer")
        run.record_tabular("Policy Loss", -epoch, group="trainer")
        run.record_tabular("Average_OnlineReturn_all_test_tasks", 10.0 * epoch, group="eval")
        if extra:
            for key, value in extra.items():
                run.record_tabular(key, value, group="trainer")
        run.dump_tabular(epoch)


def test_creates_run_directory_files(tmp_path):
    with make(tmp_path) as run:
        assert run.run_dir == tmp_path / "output" / "point-robot" / "test" / "seed1"
        log_epochs(run, range(2))
        run.info("hello from the test")
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"variant.json", "git.txt", "debug.log", "progress.csv"} <= names
    assert json.loads((run.run_dir / "variant.json").read_text()) == VARIANT
    assert "revision" in (run.run_dir / "git.txt").read_text() or "unknown" in (run.run_dir / "git.txt").read_text()
    debug = (run.run_dir / "debug.log").read_text()
    assert "hello from the test" in debug and "QF Loss" in debug  # the per-iteration table
    assert list(run.run_dir.glob("events.out.tfevents.*"))


def test_progress_csv_columns_and_rows(tmp_path):
    with make(tmp_path) as run:
        log_epochs(run, range(3))
    columns, rows = read_progress(run)
    # caller's names, unchanged and in recording order; namespaces only go to TensorBoard
    assert columns == ["Epoch", "QF Loss", "Policy Loss", "Average_OnlineReturn_all_test_tasks"]
    assert [int(r["Epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[1]["QF Loss"]) == 0.5 and float(rows[2]["Average_OnlineReturn_all_test_tasks"]) == 20.0
    assert run.progress_path.read_text().splitlines()[0] == "Epoch,QF Loss,Policy Loss,Average_OnlineReturn_all_test_tasks"


def test_numpy_and_torch_scalars_and_errors(tmp_path):
    import numpy as np

    with make(tmp_path, tensorboard=False) as run:
        run.record_tabular("Epoch", np.int64(0))
        run.record_tabular("a", np.float32(0.25))
        run.record_tabular("b", torch.tensor(1.5))
        run.record_tabular("flag", True)
        run.record_tabular("note", "text")
        with pytest.raises(ValueError, match="already recorded"):
            run.record_tabular("a", 1.0)
        with pytest.raises(TypeError, match="scalar"):
            run.record_tabular("c", np.zeros(3))
        run.dump_tabular(0)
    _, rows = read_progress(run)
    assert rows == [{"Epoch": "0", "a": "0.25", "b": "1.5", "flag": "1", "note": "text"}]


def test_new_key_widens_header_and_keeps_columns_stable(tmp_path):
    with make(tmp_path, tensorboard=False) as run:
        log_epochs(run, range(2))
        log_epochs(run, [2], extra={"Z mean train": 0.3})
        log_epochs(run, [3])  # the new key missing in a later row stays an empty cell
    columns, rows = read_progress(run)
    assert columns == ["Epoch", "QF Loss", "Policy Loss", "Average_OnlineReturn_all_test_tasks", "Z mean train"]
    assert [r["Z mean train"] for r in rows] == ["", "", "0.3", ""]
    assert [int(r["Epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[3]["QF Loss"]) == 0.25


def test_refuses_to_clobber_existing_run(tmp_path):
    with make(tmp_path) as run:
        log_epochs(run, range(1))
    # progress rows without a snapshot (e.g. a full disk at the first one): nothing to resume, say how to start over
    with pytest.raises(RunDirError, match="no snapshot, so there is nothing to resume; start it over with --restart"):
        make(tmp_path)
    with make(tmp_path, resume=True) as run:
        run.save_snapshot({"iteration": 0}, "agent.pth")
    with pytest.raises(RunDirError, match="use --resume to continue it, --restart to move it aside"):
        make(tmp_path)
    # a fresh name is fine
    RunLogger.create(tmp_path / "output", "point-robot", "other", 1, VARIANT, console=False).close()
    with pytest.raises(RunDirError, match="no run"):
        RunLogger.create(tmp_path / "output", "point-robot", "never", 1, VARIANT, resume=True, console=False)
    with pytest.raises(RunDirError, match="resum"):
        RunLogger.create(tmp_path / "output", "point-robot", "x", 1, VARIANT, truncate_to_epoch=2, console=False)


def test_resume_truncates_progress_and_appends(tmp_path):
    with make(tmp_path) as run:
        log_epochs(run, range(5))
    # the last snapshot was taken after epoch 2: epochs 3 and 4 will be redone
    with make(tmp_path, resume=True, truncate_to_epoch=3) as run:
        _, rows = read_progress(run)
        assert [int(r["Epoch"]) for r in rows] == [0, 1, 2]
        log_epochs(run, range(3, 6))
    columns, rows = read_progress(run)
    assert [int(r["Epoch"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert columns[0] == "Epoch" and len(columns) == 4
    debug = (run.run_dir / "debug.log").read_text()
    assert "resuming run" in debug and "dropped 2 row(s)" in debug
    assert (run.run_dir / "git.txt").read_text().count("=== resumed at") == 1


def test_resume_keeps_old_variant_when_config_changed(tmp_path):
    with make(tmp_path) as run:
        log_epochs(run, range(1))
    changed = {"env_name": "point-robot", "algo_params": {"num_iterations": 10, "train_epoch": [0, 10, 5]}}
    with make(tmp_path, resume=True, variant=changed) as run:
        pass
    assert json.loads((run.run_dir / "variant.json").read_text()) == changed
    kept = list(run.run_dir.glob("variant.before_resume_*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == VARIANT
    assert "algo_params.num_iterations" in (run.run_dir / "debug.log").read_text()


def test_tensorboard_scalars_namespaced_and_purged(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with make(tmp_path) as run:
        log_epochs(run, range(4))
    # Event files are named events.out.tfevents.<unix second>.<host>.<pid>.<counter> and read in
    # name order; within one process and one second the counter decides, compared as text
    # ("10" < "9"). A real resume is a later process: start the second session in a new second.
    time.sleep(1.05 - (time.time() % 1.0))
    with make(tmp_path, resume=True, truncate_to_epoch=2) as run:
        log_epochs(run, [2])
    acc = EventAccumulator(str(run.run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"Epoch", "trainer/QF Loss", "trainer/Policy Loss", "eval/Average_OnlineReturn_all_test_tasks"} <= tags
    # steps 2 and 3 of the first session were purged; step 2 was logged again
    assert [e.step for e in acc.Scalars("trainer/QF Loss")] == [0, 1, 2]


def test_snapshot_roundtrip_and_latest(tmp_path):
    with make(tmp_path, tensorboard=False) as run:
        assert latest_snapshot(run.run_dir) is None
        for itr in range(7):
            run.save_iteration_snapshot({"epoch": itr, "w": torch.full((2,), float(itr))}, itr, gap=5)
    names = sorted(p.name for p in run.run_dir.glob("agent*.pth"))
    assert names == ["agent.pth", "agent_itr_0.pth", "agent_itr_5.pth"]
    latest = latest_snapshot(run.run_dir)
    assert latest.name == "agent.pth" and load_snapshot(latest)["epoch"] == 6
    assert load_snapshot(run.run_dir / "agent_itr_5.pth")["epoch"] == 5
    # without agent.pth the highest numbered snapshot is the newest
    os.remove(run.run_dir / "agent.pth")
    assert latest_snapshot(run.run_dir).name == "agent_itr_5.pth"


def test_snapshot_write_is_atomic(tmp_path, monkeypatch):
    with make(tmp_path, tensorboard=False) as run:
        run.save_snapshot({"epoch": 1}, "agent.pth")

        def dies_mid_write(obj, f, *args, **kwargs):
            f.write(b"PK\x03\x04 partial")
            raise OSError("No space left on device")

        monkeypatch.setattr(torch, "save", dies_mid_write)
        with pytest.raises(OSError, match="No space"):
            run.save_snapshot({"epoch": 2}, "agent.pth")
        with pytest.raises(OSError, match="No space"):
            run.save_snapshot({"epoch": 2}, "agent_itr_2.pth")
        monkeypatch.undo()
    # the old snapshot is intact, no partial agent*.pth and no temp files are left
    assert sorted(p.name for p in run.run_dir.glob("agent*.pth")) == ["agent.pth"]
    assert not [p for p in run.run_dir.iterdir() if p.name.endswith(".tmp")]
    assert load_snapshot(run.run_dir / "agent.pth")["epoch"] == 1


def test_corrupted_snapshot_error_names_file(tmp_path):
    good = tmp_path / "agent_itr_5.pth"
    torch.save({"w": torch.zeros(100)}, good)
    data = good.read_bytes()
    truncated = tmp_path / "agent.pth"
    truncated.write_bytes(data[: len(data) // 2])
    for path in (truncated, tmp_path / "garbage.pth"):
        if path.name == "garbage.pth":
            path.write_bytes(b"not a snapshot at all")
        with pytest.raises(SnapshotError) as exc:
            load_snapshot(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(SnapshotError, match="not found"):
        load_snapshot(tmp_path / "missing.pth")


def test_git_report_tolerates_missing_repo_and_git(tmp_path, monkeypatch):
    assert "not inside a usable git repository" in git_report(tmp_path)

    def no_git(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert "git is not installed" in git_report(tmp_path)


def test_git_report_of_a_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    try:
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
        (repo / "a.txt").write_text("one\n")
        subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True, env=env)
        subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", "commit", "-qm", "x"], check=True, env=env)
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("git unavailable")
    (repo / "a.txt").write_text("two\n")
    text = git_report(repo)
    assert "revision: " in text and " M a.txt" in text and "+two" in text


def test_run_dir_path_rejects_odd_names(tmp_path):
    assert run_dir_path("out", "cheetah-vel", "CSRO", 3) == Path("out/cheetah-vel/CSRO/seed3")
    for args in [("a/b", "x", 0), ("env", "..", 0), ("env", "", 0), ("env", "x", "1")]:
        with pytest.raises(RunDirError):
            run_dir_path(tmp_path, *args)


def test_two_runs_log_separately(tmp_path):
    a = RunLogger.create(tmp_path, "point-robot", "a", 0, VARIANT, console=False, tensorboard=False)
    b = RunLogger.create(tmp_path, "point-robot", "b", 0, VARIANT, console=False, tensorboard=False)
    a.info("only in a")
    b.info("only in b")
    a.close()
    b.close()
    assert "only in b" not in (a.run_dir / "debug.log").read_text()
    assert "only in a" not in (b.run_dir / "debug.log").read_text()


def test_console_echo_goes_to_stderr(tmp_path, capsys):
    with RunLogger.create(tmp_path, "point-robot", "c", 0, VARIANT, tensorboard=False) as run:
        run.debug("quiet detail")
        run.info("loud news")
    err = capsys.readouterr().err
    assert "loud news" in err and "quiet detail" not in err
    assert "quiet detail" in (run.run_dir / "debug.log").read_text()


def test_module_has_no_global_logger_state():
    public = {k for k, v in vars(logger_mod).items() if isinstance(v, RunLogger)}
    assert not public
