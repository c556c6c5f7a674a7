"""No code from data, one writer per run, resume writes where the snapshot lives.

Each planted file, if unpickled in full, would create a marker file; the
loaders must refuse it with a one-line error and the marker must never appear.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from rlkit.core.logger import RunDirError, RunLogger, SnapshotError, load_snapshot
from rlkit.evaluation.run_loader import RunLoadError, load_run
from tests.helpers import small_point_robot_config

REPO = Path(__file__).resolve().parents[1]


class _Planted:
    """Unpickling this runs ``open(marker, "w")``: the stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, like: dict | None = None) -> None:
    """Write a torch file that looks like ``like`` but carries a payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(like or {}), "payload": _Planted(marker)}, path)


def test_load_snapshot_refuses_code_and_reads_tensors(tmp_path):
    marker = tmp_path / "pwned"
    plant(tmp_path / "agent.pth", marker, {"iteration": 3})
    with pytest.raises(SnapshotError, match="refusing to load .* could run code") as info:
        load_snapshot(tmp_path / "agent.pth")
    assert "\n" not in str(info.value) and not marker.exists()
    torch.save({"w": torch.ones(2), "n": 3, "cfg": {"a": [1, 2.5, "x", None]}}, tmp_path / "ok.pth")
    assert load_snapshot(tmp_path / "ok.pth")["cfg"] == {"a": [1, 2.5, "x", None]}


def test_generator_resume_state_is_not_unpickled(tmp_path):
    """policy_train.py on a dataset folder whose _generator/ state was replaced."""
    from rlkit.behavior.config import compose_sac_config
    from rlkit.behavior.generate import GenerationJob

    job = GenerationJob("point-robot", {"n_tasks": 2, "randomize_tasks": 0, "max_episode_steps": 20}, [0, 1],
                        compose_sac_config("train_quick", []), tmp_path / "data", seed=0)
    marker = tmp_path / "pwned"
    plant(job.state_path, marker, {"step": 100, "tasks": [0, 1]})
    config = small_point_robot_config(tmp_path, n_tasks=2, n_train=1, meta_batch=1)
    res = subprocess.run([sys.executable, str(REPO / "policy_train.py"), "--config", str(config),
                          "--preset", "train_quick", "--data_dir", str(tmp_path / "data"), "--no-progress"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error: refusing to load"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_run_snapshots_are_not_unpickled(tiny_csro_run, tmp_path):
    """evaluate / show_path / context_shift (load_run) and launch_experiment --resume."""
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "output" / "point-robot" / "tiny" / "seed0"
    run_dir.mkdir(parents=True)
    for name in ("variant.json", "progress.csv"):
        (run_dir / name).write_bytes((tiny_csro_run.run_dir / name).read_bytes())
    plant(run_dir / "agent.pth", marker, {"iteration": 1})
    with pytest.raises(RunLoadError, match="refusing to load"):
        load_run(run_dir)
    res = subprocess.run([sys.executable, str(REPO / "launch_experiment.py"), str(tiny_csro_run.config), "--seed", "0",
                          "--exp_name", "tiny", f"util_params.base_log_dir={tmp_path / 'output'}",
                          f"algo_params.data_dir={tiny_csro_run.data_dir}", "--resume", str(run_dir)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "refusing to load" in res.stderr, res.stderr
    assert not marker.exists()


def test_resume_refuses_to_write_into_another_run(tiny_csro_run, tmp_path):
    other = tmp_path / "out"
    res = subprocess.run([sys.executable, str(REPO / "launch_experiment.py"), str(tiny_csro_run.config), "--seed", "0",
                          "--exp_name", "B", f"util_params.base_log_dir={other}",
                          f"algo_params.data_dir={tiny_csro_run.data_dir}", "--resume", str(tiny_csro_run.run_dir)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2
    assert res.stderr.startswith("error: --resume") and "is not the directory this command writes to" in res.stderr
    assert not (other / "point-robot" / "B").exists()


def test_one_writer_per_run_directory(tmp_path):
    first = RunLogger.create(tmp_path, "point-robot", "x", 0, {"a": 1}, tensorboard=False, console=False)
    try:
        with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
            RunLogger.create(tmp_path, "point-robot", "x", 0, {"a": 1}, tensorboard=False, console=False)
    finally:
        first.close()
    # released on close: the directory (which holds no run yet) can be reused
    RunLogger.create(tmp_path, "point-robot", "x", 0, {"a": 1}, tensorboard=False, console=False).close()


def test_concurrent_starts_never_share_a_directory(tmp_path):
    results = []

    def start():
        try:
            logger = RunLogger.create(tmp_path, "point-robot", "x", 0, {"a": 1}, tensorboard=False, console=False)
            results.append(logger)
        except RunDirError as exc:
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, RunLogger)]
    assert len(winners) == 1 and all("in use by process" in str(r) for r in results if r not in winners)
    winners[0].close()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import os, sys; from rlkit.core.logger import RunLogger; "
            f"RunLogger.create({str(tmp_path)!r}, 'point-robot', 'x', 0, {{}}, tensorboard=False, console=False); "
            "os.kill(os.getpid(), 9)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120, capture_output=True, text=True)
    # the child really got the lock and died holding it (a child that failed to import would prove nothing)
    assert res.returncode == -9, res.stderr
    assert (tmp_path / "point-robot" / "x" / "seed0" / ".lock").exists()
    RunLogger.create(tmp_path, "point-robot", "x", 0, {}, tensorboard=False, console=False).close()


def test_a_failed_start_does_not_block_the_corrected_command(tiny_csro_run, tmp_path):
    base = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "launch_experiment.py"), str(tiny_csro_run.config), "--seed", "0",
           "--exp_name", "fix", f"util_params.base_log_dir={base}", "algo_params.num_iterations=1",
           "algo_params.num_train_steps_per_itr=2", "algo_params.train_epoch=[100,200,100]",
           "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2", "algo_params.num_steps_per_eval=20"]
    bad = subprocess.run(cmd + [f"algo_params.data_dir={tmp_path / 'missing'}"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and not (base / "point-robot" / "fix").exists()  # checked before touching the disk
    # a start that died after creating its directory (e.g. killed in iteration 0) is not a run either
    run_dir = base / "point-robot" / "fix" / "seed0"
    run_dir.mkdir(parents=True)
    for name in ("variant.json", "git.txt", "debug.log"):
        (run_dir / name).write_text("left by a failed start\n")
    good = subprocess.run(cmd + [f"algo_params.data_dir={tiny_csro_run.data_dir}"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert good.returncode == 0, good.stderr
    assert (run_dir / "agent.pth").is_file() and json.loads((run_dir / "variant.json").read_text())["seed"] == 0
