"""``policy_train.py --ray``: task groups as Ray tasks (rlkit.behavior.distributed).

One local Ray instance (2 CPUs) serves the whole module. Two tiny point-robot
tasks, two groups (one task each), checkpoints 100 and 200.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import policy_train  # noqa: E402
from rlkit.behavior.distributed import (  # noqa: E402
    MISSING_RAY,
    default_groups,
    group_jobs,
    run_with_ray,
    split_groups,
)
from rlkit.data import load_offline_data, read_metadata  # noqa: E402

OVERRIDES = ["num_train_steps=300", "num_seed_steps=100", "eval_frequency=100", "num_eval_sample_episodes=2",
             "agent.hidden_dim=32", "agent.batch_size=32"]
STEPS = [100, 300, 100]  # checkpoints 100, 200
ARRAYS = ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts", "episode_ends", "episode_task",
          "episode_step", "episode_sampled", "episode_index")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "point2.json"
    path.write_text(json.dumps({
        "env_name": "point-robot", "n_train_tasks": 1, "n_eval_tasks": 1,
        "env_params": {"n_tasks": 2, "randomize_tasks": 0, "max_episode_steps": 20},
        "algo_params": {"data_dir": str(path.parent / "unused"), "meta_batch": 1},
    }))
    return path


def cli_args(config_file: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["--config", str(config_file), "--preset", "train_quick", "--data_dir", str(data_dir), "--no-progress",
            *OVERRIDES, *extra]


def make_job(config_file: Path, data_dir: Path):
    return policy_train.build_job(policy_train.parse_args(cli_args(config_file, data_dir)))


def load(data_dir: Path, sample: int, n_trj: int):
    return load_offline_data(data_dir, [0, 1], STEPS, n_trj, sample, obs_dim=2, act_dim=2)


def assert_same_data(a: Path, b: Path) -> None:
    for sample, n_trj in ((1, 2), (0, 1)):
        da, db = load(a, sample, n_trj), load(b, sample, n_trj)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(da, name), getattr(db, name), err_msg=name)
    fa, fb = read_metadata(a)["files"], read_metadata(b)["files"]
    assert {k: v["sha256"] for k, v in fa.items()} == {k: v["sha256"] for k, v in fb.items()}


@pytest.fixture(scope="module")
def shared_run(ray_local, config_file, tmp_path_factory) -> Path:
    """The CLI path: ``policy_train.py --ray`` (local, shared filesystem) into the already running Ray."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    assert policy_train.main(cli_args(config_file, data_dir, "--groups", "2", "--ray")) == 0
    return data_dir


@pytest.fixture(scope="module")
def gathered_run(ray_local, config_file, tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """Workers generate into their own folders; the driver re-writes what they send."""
    base = tmp_path_factory.mktemp("gathered")
    data_dir, worker_root = base / "data", base / "workers"
    results = run_with_ray(make_job(config_file, data_dir), groups=2, shared_fs=False, worker_root=str(worker_root))
    return data_dir, worker_root, results


def test_shared_fs_dataset_loads(shared_run):
    data = load(shared_run, sample=1, n_trj=2)  # 2 tasks x 2 checkpoints x 2 sampled episodes of 20 steps
    assert data.task_ids.tolist() == [0, 1]
    assert data.num_episodes == 8 and len(data) == 8 * 20
    assert sorted(set(data.episode_step.tolist())) == [100, 200]
    assert data.episode_sampled.all()
    det = load(shared_run, sample=0, n_trj=1)
    assert det.num_episodes == 4 and not det.episode_sampled.any()
    for task in (0, 1):
        for step in (100, 200):
            assert (shared_run / "weights" / f"task_{task:02d}" / f"agent_step{step}.pt").exists()
    assert len(list((shared_run / "_generator").glob("state_*.pt"))) == 2  # one resume state per group
    assert len(list((shared_run / "_generator").glob("ray_done_*.json"))) == 2


def test_gathered_dataset_identical_to_shared(shared_run, gathered_run):
    import torch

    data_dir, worker_root, results = gathered_run
    assert [r["tasks"] for r in results] == [[0], [1]]
    assert not any(r["skipped"] for r in results)
    assert_same_data(shared_run, data_dir)
    for task in (0, 1):
        for step in (100, 200):
            rel = Path("weights") / f"task_{task:02d}" / f"agent_step{step}.pt"
            wa, wb = torch.load(shared_run / rel), torch.load(data_dir / rel)
            assert wa.keys() == wb.keys()
            for k in wa:
                if isinstance(wa[k], torch.Tensor):
                    assert torch.equal(wa[k], wb[k]), (rel, k)
    rows = (data_dir / "_generator" / "returns.csv").read_text().splitlines()
    assert rows[0].startswith("step,task") and len(rows) == 1 + 2 * 2
    assert not list((worker_root / "csro-ray").glob("*"))  # worker folders removed after success
    assert not list((data_dir / "_generator").glob("state_*.pt"))  # resume state stays on the workers


def test_rerun_skips_finished_groups(gathered_run, config_file):
    data_dir, worker_root, _ = gathered_run
    before = (data_dir / "dataset.json").read_bytes()
    results = run_with_ray(make_job(config_file, data_dir), groups=2, shared_fs=False, worker_root=str(worker_root))
    assert [r["skipped"] for r in results] == [True, True]
    assert (data_dir / "dataset.json").read_bytes() == before


def test_eval_regenerates_identically(shared_run, gathered_run, config_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(shared_run, a)
    shutil.copytree(gathered_run[0], b)
    before = load(a, sample=1, n_trj=2)
    run_with_ray(make_job(config_file, a), groups=2, regenerate=True)
    run_with_ray(make_job(config_file, b), groups=2, regenerate=True, shared_fs=False,
                 worker_root=str(tmp_path / "workers"))
    after = load(a, sample=1, n_trj=2)
    assert after.num_episodes == before.num_episodes
    assert not np.array_equal(after.actions, before.actions)  # new sampled episodes
    np.testing.assert_array_equal(load(a, 0, 1).obs, load(shared_run, 0, 1).obs)  # deterministic ones kept
    assert_same_data(a, b)


def test_groups_are_contiguous_and_checked(config_file, tmp_path, capsys):
    assert split_groups([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]
    assert split_groups([3, 7], 2) == [[3], [7]]
    job = make_job(config_file, tmp_path / "d")
    jobs = group_jobs(job, 2)
    assert [j.tasks for j in jobs] == [[0], [1]] and len({j.tag for j in jobs}) == 2
    assert all(j.seed == job.seed and j.sac == job.sac and not j.progress for j in jobs)
    with pytest.raises(SystemExit) as exit_info:
        run_with_ray(job, groups=3)
    assert exit_info.value.code == 2 and "--groups 3 but the job has only 2" in capsys.readouterr().err
    assert default_groups(40, {"CPU": 16.0, "GPU": 4.0}, use_gpu=True) == 4
    assert default_groups(40, {"CPU": 16.0, "GPU": 4.0}, use_gpu=False) == 8
    assert default_groups(2, {"CPU": 16.0}, use_gpu=False) == 2
    assert default_groups(5, {"CPU": 1.0}, use_gpu=False) == 1


def test_missing_ray_is_a_one_line_error(monkeypatch, config_file, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SystemExit) as err:
        run_with_ray(make_job(config_file, tmp_path / "d"))
    assert str(err.value) == MISSING_RAY
    assert "pip install 'ray[default]'" in MISSING_RAY and "\n" not in MISSING_RAY


def test_failed_group_is_named_and_others_finish(shared_run, config_file, tmp_path):
    import torch

    data_dir = tmp_path / "data"
    shutil.copytree(shared_run, data_dir)
    for marker in (data_dir / "_generator").glob("ray_done_*.json"):
        marker.unlink()
    job = make_job(config_file, data_dir)
    first = group_jobs(job, 2)[0]
    torch.save({"step": 0, "agent": {}, "replay": {}, "tasks": [1]}, first.state_path)  # someone else's state
    with pytest.raises(SystemExit) as err:
        run_with_ray(job, groups=2)
    msg = str(err.value)
    assert msg.startswith("error: task group 1/2 (tasks 0): DatasetError:") and "belongs to tasks [1]" in msg
    assert "2/2" not in msg
    assert len(list((data_dir / "_generator").glob("ray_done_*.json"))) == 1  # group 2 finished


def test_ray_client_mode_returns_lists(monkeypatch, shared_run, config_file, tmp_path):
    """Ray Client (ray://) cannot stream generator tasks: each group then returns its items as one list."""
    from rlkit.behavior import distributed

    monkeypatch.setattr(distributed, "_client_mode", lambda: True)
    results = run_with_ray(make_job(config_file, tmp_path / "data"), groups=2, shared_fs=False,
                           worker_root=str(tmp_path / "workers"))
    assert [r["tasks"] for r in results] == [[0], [1]]
    assert_same_data(shared_run, tmp_path / "data")
