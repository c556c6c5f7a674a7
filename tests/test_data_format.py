"""Native dataset format: round trip, metadata, atomic writes, integrity errors (issue #3)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rlkit.data import (
    DatasetError,
    DatasetWriter,
    Episode,
    checkpoint_relpath,
    episodes_from_flat,
    load_offline_data,
    read_checkpoint_episodes,
    read_metadata,
)
from rlkit.data import _io
from rlkit.data.synthetic import synthetic_episodes, write_synthetic_dataset

OBS, ACT = 3, 2


def _writer(root, **kw):
    return DatasetWriter(root, "point-robot", {"n_tasks": 2, "max_episode_steps": 20},
                         [{"goal": [1.0, 0.0]}, {"goal": [0.0, 1.0]}], OBS, ACT,
                         {"seed": 0, "num_eval_sample_episodes": 4}, fsync=False, **kw)


def _episodes(seed=0, task=0, step=200, n_det=2, n_smp=4, length=7, early=0.0):
    rng = np.random.default_rng(seed)
    return synthetic_episodes(rng, task, step, n_det, n_smp, length, OBS, ACT, early_end_prob=early)


def _assert_episode_equal(a: Episode, b: Episode):
    for name in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.sampled, a.index, a.terminated, a.truncated) == (b.sampled, b.index, b.terminated, b.truncated)


def test_round_trip_episodes_and_flat_arrays(tmp_path):
    w = _writer(tmp_path)
    eps = _episodes(early=0.5)
    assert any(e.terminated for e in eps) and any(e.truncated for e in eps)
    w.write_checkpoint(0, 200, eps[::-1])  # order of the input does not matter
    back = read_checkpoint_episodes(tmp_path, 0, 200)
    want = sorted(eps, key=lambda e: (e.sampled, e.index))
    assert len(back) == len(want)
    for a, b in zip(back, want):
        _assert_episode_equal(a, b)

    # load_offline_data: the sampled group, in k order, flags per row
    data = load_offline_data(tmp_path, [0], [200, 201, 1], n_trj=4, sample=1, obs_dim=OBS, act_dim=ACT)
    smp = [e for e in want if e.sampled]
    np.testing.assert_array_equal(data.obs, np.concatenate([e.observations for e in smp]))
    np.testing.assert_array_equal(data.actions, np.concatenate([e.actions for e in smp]))
    np.testing.assert_array_equal(data.rewards, np.concatenate([e.rewards for e in smp]))
    np.testing.assert_array_equal(data.next_obs, np.concatenate([e.next_observations for e in smp]))
    ends = np.cumsum([len(e) for e in smp]) - 1
    assert np.flatnonzero(data.episode_ends).tolist() == ends.tolist()
    assert np.flatnonzero(data.terminals).tolist() == [ends[i] for i, e in enumerate(smp) if e.terminated]
    assert np.flatnonzero(data.timeouts).tolist() == [ends[i] for i, e in enumerate(smp) if e.truncated]
    assert data.episode_index.tolist() == [0, 1, 2, 3] and data.episode_sampled.all()
    assert data.layout == "native" and data.terminals_known

    # deterministic group, n_trj subset
    det = load_offline_data(tmp_path, [0], 200, n_trj=1, sample=0)
    np.testing.assert_array_equal(det.obs, want[0].observations)

    # the file is a plain structured .npy readable without this package
    rec = np.load(tmp_path / checkpoint_relpath(0, 200))
    assert rec.dtype.names == ("obs", "action", "reward", "next_obs", "terminal", "timeout", "sampled", "episode")
    assert len(rec) == sum(len(e) for e in eps)

    # flat arrays + lengths give the same episodes
    flat = episodes_from_flat(
        np.concatenate([e.observations for e in want]), np.concatenate([e.actions for e in want]),
        np.concatenate([e.rewards for e in want]), np.concatenate([e.next_observations for e in want]),
        [len(e) for e in want], [e.sampled for e in want],
        terminated=[e.terminated for e in want], truncated=[e.truncated for e in want],
    )
    for a, b in zip(flat, want):
        _assert_episode_equal(a, b)


def test_metadata_records_env_tasks_dims_and_file_checksums(tmp_path):
    w = _writer(tmp_path)
    w.write_checkpoint(1, 400, _episodes(task=1, step=400))
    meta = read_metadata(tmp_path)
    assert meta["format"] == "csro-offline-dataset" and meta["format_version"] == 1
    assert meta["env_name"] == "point-robot" and meta["env_params"]["n_tasks"] == 2
    assert meta["tasks"] == [{"goal": [1.0, 0.0]}, {"goal": [0.0, 1.0]}]
    assert (meta["obs_dim"], meta["act_dim"]) == (OBS, ACT)
    assert meta["generator_config"]["num_eval_sample_episodes"] == 4
    rel = checkpoint_relpath(1, 400)
    entry = meta["files"][rel]
    raw = (tmp_path / rel).read_bytes()
    assert entry["bytes"] == len(raw) and entry["sha256"] == _io.sha256_hex(raw)
    assert entry["episodes"]["sampled"]["index"] == [0, 1, 2, 3]
    assert entry["episodes"]["deterministic"]["length"] == [7, 7]
    json.loads((tmp_path / "dataset.json").read_text())  # valid JSON for any reader


def test_resume_has_checkpoint_and_merge(tmp_path):
    w = _writer(tmp_path)
    assert not w.has_checkpoint(0, 200)
    eps = _episodes(n_det=1, n_smp=2)
    w.write_checkpoint(0, 200, eps)
    # a second writer (another process, or after a restart) sees the same state
    w2 = _writer(tmp_path)
    assert w2.has_checkpoint(0, 200)
    assert w2.has_checkpoint(0, 200, n_deterministic=1, n_sampled=2)
    assert not w2.has_checkpoint(0, 200, n_sampled=4)
    # --eval style: add sampled episodes 2 and 3, replace episode 1
    more = [e for e in _episodes(seed=1, n_det=0, n_smp=4) if e.index >= 1]
    w2.write_checkpoint(0, 200, more, merge=True)
    back = read_checkpoint_episodes(tmp_path, 0, 200)
    assert [(e.sampled, e.index) for e in back] == [(False, 0), (True, 0), (True, 1), (True, 2), (True, 3)]
    _assert_episode_equal(back[0], eps[0])
    _assert_episode_equal(back[2], more[0])
    assert w2.has_checkpoint(0, 200, n_sampled=4)
    # without merge the file is replaced
    w2.write_checkpoint(0, 200, eps[:1])
    assert len(read_checkpoint_episodes(tmp_path, 0, 200)) == 1


def test_writer_refuses_to_mix_configurations(tmp_path):
    _writer(tmp_path)
    with pytest.raises(DatasetError, match="env_params"):
        DatasetWriter(tmp_path, "point-robot", {"n_tasks": 3}, [], OBS, ACT, fsync=False)
    with pytest.raises(DatasetError, match="obs_dim"):
        DatasetWriter(tmp_path, "point-robot", {"n_tasks": 2, "max_episode_steps": 20}, [], OBS + 1, ACT,
                      fsync=False)
    with pytest.raises(DatasetError, match="task parameters"):
        DatasetWriter(tmp_path, "point-robot", {"n_tasks": 2, "max_episode_steps": 20}, [{"goal": 5}], OBS, ACT,
                      fsync=False)
    w = _writer(tmp_path)
    bad = _episodes()[0]
    bad.observations = np.zeros((len(bad), OBS + 1), np.float32)
    bad.next_observations = bad.observations
    with pytest.raises(DatasetError, match="dims"):
        w.write_checkpoint(0, 200, [bad])
    e = _episodes()[0]
    with pytest.raises(DatasetError, match="duplicate"):
        w.write_checkpoint(0, 200, [e, e])


def test_write_killed_mid_file_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    w = _writer(tmp_path)
    w.write_checkpoint(0, 200, _episodes())
    before = (tmp_path / "dataset.json").read_bytes()

    real_write = _io.atomic_write_bytes

    def dying_write(path, data, *, fsync=True):
        if str(path).endswith(".npy"):
            tmp = _io.temp_name_for(path)
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
            raise KeyboardInterrupt("killed mid-write")
        return real_write(path, data, fsync=fsync)

    import rlkit.data.native as native

    monkeypatch.setattr(native, "atomic_write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        w.write_checkpoint(0, 400, _episodes(step=400))
    monkeypatch.setattr(native, "atomic_write_bytes", real_write)

    # the half-written temp file exists, under a name no reader looks up
    temps = [p.name for p in (tmp_path / "task_000").iterdir() if _io.is_temp_name(p.name)]
    assert len(temps) == 1
    assert not (tmp_path / checkpoint_relpath(0, 400)).exists()
    assert (tmp_path / "dataset.json").read_bytes() == before
    assert not _writer(tmp_path).has_checkpoint(0, 400)
    with pytest.raises(DatasetError, match=r"lacks 1 selected checkpoints .*\(0, 400\)"):
        load_offline_data(tmp_path, [0], [200, 600, 200], n_trj=4)
    # resuming rewrites it and the load then works
    _writer(tmp_path).write_checkpoint(0, 400, _episodes(step=400))
    assert len(load_offline_data(tmp_path, [0], [200, 600, 200], n_trj=4)) == 2 * 4 * 7


def test_atomic_write_cleans_its_temp_file_on_error(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        _io.atomic_write_bytes(tmp_path / "x.npy", b"abc", fsync=False)
    assert list(tmp_path.iterdir()) == []


def test_file_renamed_but_not_recorded_counts_as_missing(tmp_path):
    w = _writer(tmp_path)
    w.write_checkpoint(0, 200, _episodes())
    # simulate a kill between the rename and the dataset.json update
    meta = json.loads((tmp_path / "dataset.json").read_text())
    del meta["files"][checkpoint_relpath(0, 200)]
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    assert (tmp_path / checkpoint_relpath(0, 200)).exists()
    assert not _writer(tmp_path).has_checkpoint(0, 200)
    with pytest.raises(DatasetError, match="no data for tasks 0"):
        load_offline_data(tmp_path, [0], 200, n_trj=4)


def test_truncated_and_corrupted_files_are_named(tmp_path):
    write_synthetic_dataset(tmp_path, n_tasks=2, steps=[200, 400], n_sampled=3, length=5, obs_dim=OBS, act_dim=ACT)
    path = tmp_path / checkpoint_relpath(1, 400)
    raw = path.read_bytes()

    path.write_bytes(raw[:-10])  # truncated
    with pytest.raises(DatasetError, match=r"task_001/step_00000400\.npy has \d+ bytes .* truncated"):
        load_offline_data(tmp_path, [0, 1], [200, 600, 200], n_trj=3)

    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(flipped))
    load_offline_data(tmp_path, [0, 1], [200, 600, 200], n_trj=3)  # sizes only by default
    with pytest.raises(DatasetError, match=r"task_001/step_00000400\.npy fails its SHA-256"):
        load_offline_data(tmp_path, [0, 1], [200, 600, 200], n_trj=3, verify=True)

    path.write_bytes(b"garbage" + raw[7:])  # header destroyed, size kept
    with pytest.raises(DatasetError, match=r"step_00000400\.npy is not a \.npy file"):
        load_offline_data(tmp_path, [1], 400, n_trj=3)

    path.unlink()
    with pytest.raises(DatasetError, match=r"step_00000400\.npy is listed in dataset.json but missing"):
        load_offline_data(tmp_path, [1], 400, n_trj=3)

    (tmp_path / "dataset.json").write_text('{"format": "csro-offline-dataset", "format_')
    with pytest.raises(DatasetError, match="dataset.json is not valid JSON"):
        load_offline_data(tmp_path, [0], 200, n_trj=3)


def test_missing_data_errors_say_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist: generate it with `python policy_train.py --config "
                                           r"configs/cheetah-vel.json --data_dir .*nope`"):
        load_offline_data(tmp_path / "nope", [0], 200, n_trj=1, env_name="cheetah-vel")
    (tmp_path / "empty").mkdir()
    # the env is unknown: the hint does not guess a config from the folder's name
    with pytest.raises(DatasetError, match=r"holds no offline dataset.*--config configs/ENV.json --data_dir .*empty`"):
        load_offline_data(tmp_path / "empty", [0], 200, n_trj=1)

    root = write_synthetic_dataset(tmp_path / "d", n_tasks=3, steps=[200, 400], n_sampled=3, length=4)
    with pytest.raises(DatasetError, match=r"no data for tasks 3, 7"):
        load_offline_data(root, [0, 3, 7], [200, 600, 200], n_trj=3)
    with pytest.raises(DatasetError, match=r"lacks 3 selected checkpoints .*\(0, 600\), \(1, 600\), \(2, 600\)"):
        load_offline_data(root, [0, 1, 2], [200, 800, 200], n_trj=3)
    with pytest.raises(DatasetError, match=r"fewer than n_trj=5 sampled episodes .*\(0, 200, 3\)"):
        load_offline_data(root, [0], 200, n_trj=5)
    with pytest.raises(DatasetError, match="observation dim 2 but the env has 20"):
        load_offline_data(root, [0], 200, n_trj=3, obs_dim=20)
    with pytest.raises(DatasetError, match="action dim 2 but the env has 6"):
        load_offline_data(root, [0], 200, n_trj=3, act_dim=6)
    with pytest.raises(DatasetError, match="holds a 'synthetic' dataset, not 'cheetah-vel'"):
        load_offline_data(root, [0], 200, n_trj=3, env_name="cheetah-vel")
    with pytest.raises(DatasetError, match="selects no checkpoint"):
        load_offline_data(root, [0], [400, 200, 200], n_trj=3)


def test_reference_order_and_counts(tmp_path):
    root = write_synthetic_dataset(tmp_path, n_tasks=3, steps=[200, 400, 600], n_deterministic=2, n_sampled=4,
                                   length=5, early_end_prob=0.3, seed=3)
    data = load_offline_data(root, [2, 0], [200, 800, 200], n_trj=3)
    assert data.task_ids.tolist() == [2, 0]
    # task, then checkpoint, then k, then time
    assert data.episode_task.tolist() == [2] * 9 + [0] * 9
    assert data.episode_step.tolist() == ([200] * 3 + [400] * 3 + [600] * 3) * 2
    assert data.episode_index.tolist() == [0, 1, 2] * 6
    np.testing.assert_array_equal(data.obs[:, 0], np.repeat(data.episode_task, np.diff(data.episode_offsets)))
    sl = data.task_slice(0)
    assert (data.obs[sl, 0] == 0).all() and data.num_transitions(0) == sl.stop - sl.start
    np.testing.assert_array_equal(data.rewards, np.concatenate([np.arange(n) for n in np.diff(data.episode_offsets)]))


def test_temp_files_of_killed_writers_are_removed_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from rlkit.data.synthetic import write_synthetic_dataset
    from rlkit.fileio import TMP_MARK

    root = write_synthetic_dataset(tmp_path / "d", n_tasks=1, steps=[100], n_sampled=2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = root / "task_000" / f".step_00000200.npy{TMP_MARK}{dead_pid}-abcd1234"
    live = root / "task_000" / f".step_00000300.npy{TMP_MARK}{os.getpid()}-abcd1234"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    write_synthetic_dataset(root, n_tasks=1, steps=[100], n_sampled=2)  # a new writer opens the dataset
    assert not stale.exists() and live.exists()


def test_a_dataset_still_being_generated_is_refused_naming_its_unfinished_tasks(tmp_path):
    """A generator at work holds its job's lock in the dataset's _generator folder: a run that would start on
    the half-written data is told so (with the process), not sent to generate what is already under way."""
    from rlkit.data.native import GENERATOR_STATE_DIR
    from rlkit.fileio import ExclusiveLock, lock_holder

    root = write_synthetic_dataset(tmp_path / "d", n_tasks=3, steps=[200, 400], n_sampled=3, length=4)
    lock_path = root / GENERATOR_STATE_DIR / "state_abc.lock"
    lock = ExclusiveLock.acquire(lock_path, busy=RuntimeError, unwritable=RuntimeError)
    try:
        assert lock_holder(lock_path) == str(os.getpid())
        with pytest.raises(DatasetError) as err:
            load_offline_data(root, [0, 1, 2], [200, 800, 200], n_trj=3)  # step 600 not written yet
        message = str(err.value)
        assert "\n" not in message and f"still being generated (process {os.getpid()})" in message
        assert "tasks 0, 1, 2 do not have every selected checkpoint yet" in message
        with pytest.raises(DatasetError, match="still being generated .*: tasks 5 do not have"):
            load_offline_data(root, [0, 5], [200, 400, 200], n_trj=3)  # task 5 not started yet
        load_offline_data(root, [0, 1, 2], [200, 400, 200], n_trj=3)  # what is complete still loads
    finally:
        lock.release()
    assert lock_holder(lock_path) is None  # the generator ended: the usual advice comes back
    with pytest.raises(DatasetError, match=r"no data for tasks 5: generate them"):
        load_offline_data(root, [0, 5], [200, 400, 200], n_trj=3)
