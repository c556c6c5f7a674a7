"""The reference's dataset layout: reading with its selection rules, writing, converting (issue #3)."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from rlkit.data import (
    DatasetError,
    Episode,
    convert_dataset,
    legacy_has_checkpoint,
    load_offline_data,
    read_checkpoint_episodes,
    read_legacy_file,
    write_legacy_checkpoint,
)
from rlkit.data.synthetic import write_synthetic_dataset

POINT_STEPS = list(range(2200, 5000, 200))  # point-robot train_epoch [2200, 5000, 200]: 14 checkpoints


def reference_style_file(path, rng, t, obs_dim=2, act_dim=2):
    """A trajectory file made the way the reference's generator does: np.save of [obs, action, reward, next_obs] rows."""
    obs = rng.standard_normal((t + 1, obs_dim))  # float64, as the env returns them
    rows = []
    for i in range(t):
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)  # the actor's output
        rows.append([obs[i], action, np.float64(rng.standard_normal()), obs[i + 1]])
    arr = np.empty((t, 4), dtype=object)  # what np.array(rows) made under NumPy 1.20 (ragged rows)
    for i, r in enumerate(rows):
        for j in range(4):
            arr[i, j] = r[j]
    np.save(path, arr)
    return arr


@pytest.fixture(scope="module")
def point_robot_legacy(tmp_path_factory):
    """2 tasks x 14 checkpoints x 50 sampled trajectories (+1 deterministic) of 20 steps."""
    root = tmp_path_factory.mktemp("legacy") / "point-robot"
    rng = np.random.default_rng(0)
    made = {}
    for task in range(2):
        folder = root / f"goal_idx{task}"
        folder.mkdir(parents=True)
        for step in POINT_STEPS:
            made[(task, step, False, 0)] = reference_style_file(folder / f"trj_eval0_step{step}.npy", rng, 20)
            for k in range(50):
                made[(task, step, True, k)] = reference_style_file(folder / f"trj_evalsample{k}_step{step}.npy",
                                                                   rng, 20)
    return root, made


def test_reference_selection_counts_and_exact_values(point_robot_legacy):
    root, made = point_robot_legacy
    data = load_offline_data(root, [0, 1], [2200, 5000, 200], n_trj=50, sample=1, obs_dim=2, act_dim=2)
    assert data.layout == "legacy" and not data.terminals_known
    assert np.diff(data.task_offsets).tolist() == [14_000, 14_000]
    assert data.num_episodes == 2 * 14 * 50
    # exact values, in the reference's order (task, checkpoint, k, time)
    pos = 0
    for task in range(2):
        for step in POINT_STEPS:
            for k in range(50):
                arr = made[(task, step, True, k)]
                sl = slice(pos, pos + 20)
                np.testing.assert_array_equal(data.obs[sl], np.stack(arr[:, 0]).astype(np.float32))
                np.testing.assert_array_equal(data.actions[sl], np.stack(arr[:, 1]))
                np.testing.assert_array_equal(data.rewards[sl], arr[:, 2].astype(np.float32))
                np.testing.assert_array_equal(data.next_obs[sl], np.stack(arr[:, 3]).astype(np.float32))
                pos += 20
    # the reference marks the last row of every file terminal, and nothing else
    assert np.flatnonzero(data.terminals).tolist() == list(range(19, 28_000, 20))
    np.testing.assert_array_equal(data.terminals, data.episode_ends)
    assert not data.timeouts.any()

    # selection rules: n_trj, sub-range of checkpoints, deterministic files
    part = load_offline_data(root, [1], [2400, 3000, 200], n_trj=7, sample=1)
    assert len(part) == 3 * 7 * 20 and part.episode_step.tolist() == [2400] * 7 + [2600] * 7 + [2800] * 7
    det = load_offline_data(root, [0], [2200, 5000, 200], n_trj=1, sample=0)
    assert len(det) == 14 * 20
    np.testing.assert_array_equal(det.obs[:20], np.stack(made[(0, 2200, False, 0)][:, 0]).astype(np.float32))


def test_missing_and_corrupted_legacy_files(point_robot_legacy, tmp_path):
    root, _ = point_robot_legacy
    with pytest.raises(DatasetError, match=r"no data for tasks 2, 5"):
        load_offline_data(root, [0, 2, 5], [2200, 5000, 200], n_trj=50)
    with pytest.raises(DatasetError, match=r"fewer than n_trj=2 deterministic episodes .*\(0, 2200, 1\)"):
        load_offline_data(root, [0], [2200, 5000, 200], n_trj=2, sample=0)
    with pytest.raises(DatasetError, match=r"lacks 1 selected checkpoints .*\(0, 5000\)"):
        load_offline_data(root, [0], [2200, 5200, 200], n_trj=50)

    # a copy of one task with a truncated file and a garbage file
    bad = tmp_path / "bad"
    (bad / "goal_idx0").mkdir(parents=True)
    for name in os.listdir(root / "goal_idx0"):
        (bad / "goal_idx0" / name).write_bytes((root / "goal_idx0" / name).read_bytes())
    victim = bad / "goal_idx0" / "trj_evalsample3_step2400.npy"
    victim.write_bytes(victim.read_bytes()[:-40])
    with pytest.raises(DatasetError, match=r"trj_evalsample3_step2400\.npy is truncated or corrupted"):
        load_offline_data(bad, [0], [2200, 5000, 200], n_trj=50)
    victim.write_bytes(b"not a numpy file at all")
    with pytest.raises(DatasetError, match=r"trj_evalsample3_step2400\.npy is not a \.npy file"):
        load_offline_data(bad, [0], [2200, 5000, 200], n_trj=50)
    np.save(victim, np.zeros((20, 4)))  # numeric, not the reference's object rows
    with pytest.raises(DatasetError, match=r"trj_evalsample3_step2400\.npy is not a reference trajectory file"):
        load_offline_data(bad, [0], [2200, 5000, 200], n_trj=50)
    (bad / "goal_idx0" / "trj_evalsample3_step2400.npy").unlink()
    with pytest.raises(DatasetError, match=r"fewer than n_trj=50 sampled episodes .*\(0, 2400, 49\)"):
        load_offline_data(bad, [0], [2200, 5000, 200], n_trj=50)


def test_rows_of_the_wrong_size_name_the_file(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "goal_idx0"
    folder.mkdir()
    reference_style_file(folder / "trj_evalsample0_step10.npy", rng, 5)
    reference_style_file(folder / "trj_evalsample1_step10.npy", rng, 5, obs_dim=3)
    with pytest.raises(DatasetError, match=r"trj_evalsample1_step10\.npy has \(obs, action, next_obs\) dims"):
        load_offline_data(tmp_path, [0], 10, n_trj=2)


def test_pickles_that_are_not_trajectories_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    arr = np.empty((1, 4), dtype=object)
    arr[0] = [np.zeros(2), np.zeros(2), Evil(), np.zeros(2)]
    path = tmp_path / "goal_idx0" / "trj_evalsample0_step10.npy"
    path.parent.mkdir()
    np.save(path, arr)
    with pytest.raises(DatasetError, match=r"trj_evalsample0_step10\.npy is truncated or corrupted .*unexpected "
                                           r"pickled object posix.system"):
        read_legacy_file(path)


def test_legacy_writer_matches_the_reference_reader(tmp_path):
    rng = np.random.default_rng(1)
    eps = [Episode(rng.standard_normal((t, 3)), rng.uniform(-1, 1, (t, 2)), rng.standard_normal(t),
                   rng.standard_normal((t, 3)), sampled=s, index=k)
           for s, k, t in [(False, 0, 6), (True, 0, 4), (True, 1, 6)]]
    assert not legacy_has_checkpoint(tmp_path, 3, 800, n_deterministic=1, n_sampled=2)
    paths = write_legacy_checkpoint(tmp_path, 3, 800, eps)
    assert legacy_has_checkpoint(tmp_path, 3, 800, n_deterministic=1, n_sampled=2)
    assert not legacy_has_checkpoint(tmp_path, 3, 800, n_sampled=3)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "goal_idx3/trj_eval0_step800.npy", "goal_idx3/trj_evalsample0_step800.npy",
        "goal_idx3/trj_evalsample1_step800.npy"]
    for e, p in zip(eps, paths):
        raw = p.read_bytes()
        # pickle protocol 3 naming numpy.core: readable by the reference's NumPy 1.20 / Python 3.7
        assert b"numpy._core" not in raw and b"cnumpy.core.multiarray\n_reconstruct" in raw
        assert raw[raw.index(b"\n") + 1:][:2] == b"\x80\x03"
        arr = np.load(p, allow_pickle=True)  # what the reference's loader calls
        assert arr.shape == (len(e), 4) and arr.dtype == object
        np.testing.assert_array_equal(np.stack(arr[:, 0]), e.observations)
        np.testing.assert_array_equal(np.stack(arr[:, 1]), e.actions)
        np.testing.assert_array_equal(arr[:, 2].astype(np.float32), e.rewards)
        np.testing.assert_array_equal(np.stack(arr[:, 3]), e.next_observations)
        assert all(isinstance(r, float) for r in arr[:, 2])
    data = load_offline_data(tmp_path, [3], 800, n_trj=2, sample=1)
    assert np.flatnonzero(data.terminals).tolist() == [3, 9]


def test_convert_both_ways_keeps_every_transition(tmp_path):
    src = write_synthetic_dataset(tmp_path / "native", n_tasks=2, steps=[100, 200], n_deterministic=1, n_sampled=3,
                                  length=6, early_end_prob=0.4, seed=5)
    legacy = tmp_path / "legacy"
    stats = convert_dataset(src, legacy, "legacy", fsync=False)
    assert stats == {"files": 2 * 2 * 4, "transitions": stats["transitions"]}
    back = tmp_path / "native2"
    stats2 = convert_dataset(legacy, back, "native", max_episode_steps=6, fsync=False)
    assert stats2["files"] == 4 and stats2["transitions"] == stats["transitions"]
    for sample, n in ((1, 3), (0, 1)):
        a = load_offline_data(src, [0, 1], [100, 300, 100], n_trj=n, sample=sample)
        b = load_offline_data(legacy, [0, 1], [100, 300, 100], n_trj=n, sample=sample)
        c = load_offline_data(back, [0, 1], [100, 300, 100], n_trj=n, sample=sample)
        for x in (b, c):
            for name in ("obs", "actions", "rewards", "next_obs", "episode_ends", "task_offsets", "episode_offsets"):
                np.testing.assert_array_equal(getattr(a, name), getattr(x, name))
        # legacy -> native infers falls from short episodes (the synthetic ones are exactly those)
        np.testing.assert_array_equal(a.terminals, c.terminals)
        np.testing.assert_array_equal(a.timeouts, c.timeouts)
    for task in (0, 1):
        for x, y in zip(read_checkpoint_episodes(src, task, 200), read_checkpoint_episodes(back, task, 200)):
            np.testing.assert_array_equal(x.observations, y.observations)
    with pytest.raises(DatasetError, match="not empty"):
        convert_dataset(src, legacy, "legacy")
    with pytest.raises(DatasetError, match="already in the native layout"):
        convert_dataset(src, tmp_path / "x", "native")


def test_reference_pickles_with_numpy_core_names_load(tmp_path):
    # Files from the reference's environment name numpy.core (NumPy 1.x); make one by hand.
    arr = np.empty((2, 4), dtype=object)
    for i in range(2):
        arr[i] = [np.arange(2.0) + i, np.ones(2, np.float32), np.float64(0.5), np.arange(2.0) + i + 1]
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
    pickle.dump(arr, f, protocol=2)
    raw = f.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "goal_idx0").mkdir()
    (tmp_path / "goal_idx0" / "trj_evalsample0_step5.npy").write_bytes(raw)
    data = load_offline_data(tmp_path, [0], 5, n_trj=1)
    np.testing.assert_array_equal(data.obs, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(data.rewards, [0.5, 0.5])


def test_worker_processes_give_the_same_data_and_errors(point_robot_legacy, tmp_path):
    root, _ = point_robot_legacy
    serial = load_offline_data(root, [1, 0], [2200, 3000, 200], n_trj=10, workers=1)
    pooled = load_offline_data(root, [1, 0], [2200, 3000, 200], n_trj=10, workers=2)
    for name in ("obs", "actions", "rewards", "next_obs", "terminals", "task_offsets", "episode_offsets",
                 "episode_task", "episode_step", "episode_index"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(pooled, name))
    bad = tmp_path / "bad"
    for task in (0, 1):
        (bad / f"goal_idx{task}").mkdir(parents=True)
        for k in range(2):
            src = root / f"goal_idx{task}" / f"trj_evalsample{k}_step2200.npy"
            (bad / f"goal_idx{task}" / src.name).write_bytes(src.read_bytes())
    victim = bad / "goal_idx1" / "trj_evalsample1_step2200.npy"
    victim.write_bytes(victim.read_bytes()[:-40])
    with pytest.raises(DatasetError, match=r"goal_idx1/trj_evalsample1_step2200\.npy is truncated or corrupted"):
        load_offline_data(bad, [0, 1], 2200, n_trj=2, workers=2)
