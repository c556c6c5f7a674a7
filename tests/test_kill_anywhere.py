"""Kill anywhere, lose nothing: SIGKILL the CLIs at random moments, restart, compare with a clean run.

Opt-in (``make test-slow``): each case runs the command uninterrupted once,
then again with SIGKILLs at random times until it completes, over several
seeds of the kill schedule. The dataset's files (by their recorded SHA-256)
and progress.csv (all but the wall-clock columns) must equal the
uninterrupted run's, with no duplicated or missing rows, and every checksum
must verify.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlkit.core.logger import latest_snapshot
from rlkit.data import verify_dataset
from tests.helpers import small_point_robot_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
KILL_SEEDS = (0, 1, 2)


def small_config(tmp: Path) -> Path:
    return small_point_robot_config(tmp)


def generate_cmd(config: Path, data: Path) -> list[str]:
    return [sys.executable, str(REPO / "policy_train.py"), "--config", str(config), "--preset", "train_quick",
            "--data_dir", str(data), "--no-progress", "num_train_steps=700", "num_seed_steps=200",
            "eval_frequency=100", "num_eval_sample_episodes=3"]


def train_cmd(config: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "launch_experiment.py"), str(config), "--seed", "0", "--exp_name", "k",
            f"algo_params.data_dir={data}", f"util_params.base_log_dir={out}", "algo_params.train_epoch=[200,700,100]",
            "algo_params.eval_epoch=[200,700,100]", "algo_params.n_trj=3", "algo_params.num_iterations=6",
            "algo_params.num_train_steps_per_itr=30", "algo_params.embedding_batch_size=64",
            "algo_params.batch_size=32", "algo_params.num_steps_per_eval=40", "net_size=32"]


def run_to_completion(cmd: list[str], rng: random.Random | None, mean_s: float, resume_dir: Path | None = None,
                      max_attempts: int = 40) -> int:
    """Run ``cmd``; with ``rng``, SIGKILL it after a random time and restart until it exits 0. Returns kills."""
    kills = 0
    for _ in range(max_attempts):
        full = list(cmd)
        if resume_dir is not None and latest_snapshot(resume_dir) is not None:
            full += ["--resume", str(resume_dir)]
        proc = subprocess.Popen(full, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # kill within the first third of a clean run's time: several kills per case, each after some progress
            proc.wait(timeout=rng.uniform(0.3, max(mean_s / 3, 6.0)) if rng is not None else 600)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read()
        return kills
    raise AssertionError(f"did not complete in {max_attempts} attempts")


def file_checksums(data: Path) -> dict:
    meta = json.loads((data / "dataset.json").read_text())
    return {rel: e["sha256"] for rel, e in meta["files"].items()}


def stable(progress: Path) -> pd.DataFrame:
    df = pd.read_csv(progress)
    return df[[c for c in df.columns if "Time (s)" not in c]]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    config = small_config(tmp)
    t0 = time.monotonic()
    run_to_completion(generate_cmd(config, tmp / "data"), None, 0)
    gen_s = time.monotonic() - t0
    t0 = time.monotonic()
    run_to_completion(train_cmd(config, tmp / "data", tmp / "out"), None, 0)
    train_s = time.monotonic() - t0
    return {"config": config, "data": tmp / "data", "progress": tmp / "out" / "point-robot" / "k" / "seed0" /
            "progress.csv", "gen_s": gen_s, "train_s": train_s}


@pytest.mark.parametrize("kill_seed", KILL_SEEDS)
def test_killed_generation_writes_the_same_dataset(clean, tmp_path, kill_seed):
    data = tmp_path / "data"
    kills = run_to_completion(generate_cmd(clean["config"], data), random.Random(kill_seed), clean["gen_s"])
    print(f"generation, kill seed {kill_seed}: {kills} kills")
    assert file_checksums(data) == file_checksums(clean["data"])
    assert verify_dataset(data) == []
    returns = pd.read_csv(data / "_generator" / "returns.csv")
    assert not returns.duplicated(["step", "task"]).any()  # a checkpoint redone after a kill replaces its rows
    assert returns.equals(pd.read_csv(clean["data"] / "_generator" / "returns.csv"))


@pytest.mark.parametrize("kill_seed", KILL_SEEDS)
def test_killed_meta_training_writes_the_same_progress(clean, tmp_path, kill_seed):
    out = tmp_path / "out"
    run_dir = out / "point-robot" / "k" / "seed0"
    kills = run_to_completion(train_cmd(clean["config"], clean["data"], out), random.Random(kill_seed),
                              clean["train_s"], resume_dir=run_dir)
    print(f"meta-training, kill seed {kill_seed}: {kills} kills")
    got, want = stable(run_dir / "progress.csv"), stable(clean["progress"])
    assert list(got["Epoch"]) == list(range(6))
    pd.testing.assert_frame_equal(got[want.columns], want)
    assert os.path.isfile(run_dir / "agent.pth")
