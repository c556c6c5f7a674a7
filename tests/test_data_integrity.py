"""The training path refuses corrupted, non-finite or mismatched data, and says where."""

import json

import numpy as np
import pytest

from rlkit.data import DatasetError, check_tasks_match, load_offline_data, verify_dataset
from rlkit.data import loader as loader_mod
from rlkit.data.native import DatasetWriter
from rlkit.data.synthetic import synthetic_episodes, write_synthetic_dataset
from rlkit.envs import make_env

STEPS = [100, 200]


def load(root, verify=True):
    return load_offline_data(root, [0, 1], [100, 300, 100], n_trj=3, sample=True, verify=verify)


def flip_bytes(path, at=-8, n=4):
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[at - i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_checksums_are_checked_on_load_and_cached(tmp_path, monkeypatch):
    root = write_synthetic_dataset(tmp_path / "d", n_tasks=2, steps=STEPS, n_sampled=3)
    hashed = []
    real = loader_mod.read_checkpoint_file

    def counting(root_, entry, rel, expected_dtype=None, verify=False):
        if verify:
            hashed.append(rel)
        return real(root_, entry, rel, expected_dtype=expected_dtype, verify=verify)

    monkeypatch.setattr(loader_mod, "read_checkpoint_file", counting)
    load(root)
    assert len(hashed) == 4 and (root / ".verified.json").is_file()
    hashed.clear()
    load(root)
    assert hashed == []  # unchanged files are not hashed twice
    target = root / "task_001" / "step_00000200.npy"
    flip_bytes(target)  # same size: only the checksum can tell
    with pytest.raises(DatasetError, match=r"task_001/step_00000200.npy fails its SHA-256 check"):
        load(root)
    assert hashed == ["task_001/step_00000200.npy"]
    load(root, verify=False)  # the escape hatch: sizes are still checked, checksums not
    assert any("SHA-256" in p for p in verify_dataset(root))


def test_a_file_edited_in_place_with_size_and_mtime_kept_is_hashed_again(tmp_path):
    """The stamp was keyed on (size, mtime): an edit that kept both (a careless tool, `touch -d`) was
    trained on without a check. The inode's change time moves with any write and cannot be set back."""
    import os

    root = write_synthetic_dataset(tmp_path / "d", n_tasks=2, steps=STEPS, n_sampled=3)
    load(root)  # stamps every file
    target = root / "task_000" / "step_00000100.npy"
    st = target.stat()
    flip_bytes(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as the stamp knows them
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(DatasetError, match=r"task_000/step_00000100.npy fails its SHA-256 check"):
        load(root)


def test_non_finite_values_are_refused_with_their_place(tmp_path):
    root = tmp_path / "d"
    writer = DatasetWriter(root, "synthetic", {"n_tasks": 2, "max_episode_steps": 20},
                           [{"goal": 0.0}, {"goal": 1.0}], 2, 2, {"test": True}, fsync=False)
    rng = np.random.default_rng(0)
    for task in (0, 1):
        for step in STEPS:
            eps = synthetic_episodes(rng, task, step, 1, 3, 20, 2, 2)
            if task == 1 and step == 200:
                eps[2].rewards[7] = np.nan  # sampled episode index 1 (deterministic one comes first)
            writer.write_checkpoint(task, step, eps)
    with pytest.raises(DatasetError, match=r"non-finite reward \(nan\) in task 1, checkpoint 200, sampled episode 1, "
                                           r"step 7; 1 row\(s\) affected"):
        load(root)
    problems = verify_dataset(root)
    assert len(problems) == 1 and "task_001/step_00000200.npy: non-finite reward in 1 row(s)" in problems[0]


def test_dataset_for_other_tasks_is_refused(tmp_path):
    env40 = make_env("point-robot", n_tasks=40)
    meta = {"tasks": [env40.task_params(i) for i in range(40)], "env_params": {"n_tasks": 40}}
    meta = json.loads(json.dumps(meta, default=lambda o: o.tolist()))
    check_tasks_match(meta, env40, [0, 5, 39], tmp_path)  # the same tasks: fine
    env20 = make_env("point-robot", n_tasks=20)
    with pytest.raises(DatasetError, match=r"made for other tasks: task 1 there is .* this config's env makes it"):
        check_tasks_match(meta, env20, [0, 1, 5], tmp_path)
    check_tasks_match({}, env20, [0, 1], tmp_path)  # the reference's layout records no tasks: nothing to check


def test_verify_reads_the_rows_of_the_authors_layout(tmp_path):
    from rlkit.data.legacy import legacy_episode_bytes

    root = write_synthetic_dataset(tmp_path / "d", n_tasks=1, steps=[100], n_sampled=2, layout="legacy")
    assert verify_dataset(root) == []
    obs = np.zeros((20, 2), np.float32)
    rewards = np.zeros(20, np.float32)
    rewards[4] = np.inf
    bad = root / "goal_idx0" / "trj_evalsample1_step100.npy"
    bad.write_bytes(legacy_episode_bytes(obs, obs, rewards, obs))
    problems = verify_dataset(root)
    assert len(problems) == 1 and "trj_evalsample1_step100.npy: non-finite reward in 1 row(s), first at row 4" in problems[0]


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.pop("act_dim"), "act_dim is None, not a positive whole number"),  # a bit flip renamed the key
    (lambda m: m.update(obs_dim="2"), "obs_dim is '2'"),
    (lambda m: m.update(files=[]), "file table is not a mapping"),
    (lambda m: next(iter(m["files"].values())).pop("rows"), "lacks its task, step, bytes or rows"),
    (lambda m: next(iter(m["files"].values())).pop("sha256"), "lacks its checksum"),
    (lambda m: next(iter(m["files"].values()))["episodes"]["sampled"]["length"].pop(), "sampled episode table"),
    (lambda m: next(iter(m["files"].values()))["episodes"].pop("deterministic"), "deterministic episode table"),
])
def test_a_damaged_but_parseable_dataset_json_fails_cleanly(tmp_path, damage, message):
    """Valid JSON with a key renamed or a table cut (what a flipped bit can do) is a one-line
    DatasetError from every reader, not a KeyError somewhere inside one."""
    root = write_synthetic_dataset(tmp_path / "d", n_tasks=2, steps=STEPS, n_sampled=3)
    meta = json.loads((root / "dataset.json").read_text())
    damage(meta)
    (root / "dataset.json").write_text(json.dumps(meta))
    for read in (lambda: load(root, verify=False), lambda: verify_dataset(root)):
        with pytest.raises(DatasetError, match="dataset.json: .*" + message.replace("(", r"\(")) as err:
            read()
        assert "\n" not in str(err.value) and "regenerate the dataset" in str(err.value)
