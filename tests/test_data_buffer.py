"""MultiTaskBuffer: shapes, per-task isolation, uniformity, sequences/windows, terminal modes (issue #3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit.data import DatasetError, MultiTaskBuffer, load_offline_data
from rlkit.data.synthetic import write_synthetic_dataset

TASKS = [0, 3, 5, 6]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_synthetic_dataset(tmp_path_factory.mktemp("buf") / "ds", n_tasks=7, steps=[100, 200, 300],
                                   n_deterministic=1, n_sampled=4, length=10, obs_dim=3, act_dim=2,
                                   early_end_prob=0.5, seed=11)
    return load_offline_data(root, TASKS, [100, 400, 100], n_trj=4)


@pytest.fixture(scope="module")
def buf(data):
    return MultiTaskBuffer(data)


def test_sample_shapes_and_views(buf):
    b = buf.sample([0, 5, 5], 17)
    assert {k: tuple(v.shape) for k, v in b.items()} == {
        "obs": (3, 17, 3), "actions": (3, 17, 2), "rewards": (3, 17, 1), "next_obs": (3, 17, 3),
        "terminals": (3, 17, 1)}
    assert all(v.dtype == torch.float32 and v.device.type == "cpu" for v in b.values())
    f = buf.sample(torch.tensor([6]), 5, with_flags=True)
    assert f["timeouts"].dtype == torch.bool and f["episode_ends"].shape == (1, 5, 1)
    ctx = buf.sample_context([0, 3], 9)
    assert ctx.shape == (2, 9, 3 + 2 + 1)
    assert buf.sample_context([0, 3], 9, use_next_obs=True).shape == (2, 9, 3 + 2 + 1 + 3)


def test_each_task_batch_holds_only_that_tasks_transitions(buf, data):
    ids = [6, 0, 3, 3, 5, 0]
    b = buf.sample(ids, 2000, generator=torch.Generator().manual_seed(0))
    for row, t in enumerate(ids):
        assert (b["obs"][row, :, 0] == t).all() and (b["next_obs"][row, :, 0] == t).all()
    ctx = buf.sample_context(np.array(ids), 500)
    assert (ctx[..., 0] == torch.tensor(ids, dtype=torch.float32)[:, None]).all()
    # a sampled row is a real transition: (obs, action, reward, next_obs, terminal) from the same row
    rows = {tuple(np.concatenate([data.obs[i], data.actions[i], [data.rewards[i]], data.next_obs[i],
                                  [data.episode_ends[i]]]).tolist()) for i in range(len(data))}
    flat = torch.cat([b[k] for k in ("obs", "actions", "rewards", "next_obs", "terminals")], -1).reshape(-1, 10)
    assert all(tuple(r) in rows for r in flat.tolist())


def test_uniform_within_each_task_chi_square(buf, data):
    g = torch.Generator().manual_seed(1234)
    n_draw = 200_000
    for task in (0, 6):
        sl = data.task_slice(task)
        n = sl.stop - sl.start
        idx = buf.sample_indices([task], n_draw, generator=g)[0].numpy()
        assert idx.min() >= sl.start and idx.max() < sl.stop
        counts = np.bincount(idx - sl.start, minlength=n)
        expected = n_draw / n
        chi2 = ((counts - expected) ** 2 / expected).sum()
        dof = n - 1
        # mean dof, sd sqrt(2 dof): 6 sd is p < 1e-8; the generator is seeded so the test cannot flake
        assert chi2 < dof + 6 * np.sqrt(2 * dof), (task, chi2, dof)
        assert counts.min() > 0


def test_seeded_generator_is_deterministic(buf):
    a = buf.sample([0, 3], 50, generator=torch.Generator().manual_seed(5))
    b = buf.sample([0, 3], 50, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(5)
    c = buf.sample([0, 3], 50)
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])


def test_unknown_tasks_are_errors(buf):
    with pytest.raises(DatasetError, match=r"tasks \[1, 99\] are not in this buffer"):
        buf.sample([0, 1, 99], 4)
    with pytest.raises(DatasetError, match=r"tasks \[1\] are not in this buffer"):
        buf.sample(torch.tensor([1]), 4)  # CPU tensors are checked too (CUDA ones index out of range)


def test_terminal_modes(data, tmp_path):
    ref = MultiTaskBuffer(data)  # reference: every episode's last row is done
    true = MultiTaskBuffer(data, terminal_mode="terminal")
    t_ref = torch.cat([ref.task_transitions(t)["terminals"] for t in TASKS]).squeeze(-1).numpy()
    t_true = torch.cat([true.task_transitions(t)["terminals"] for t in TASKS]).squeeze(-1).numpy()
    np.testing.assert_array_equal(t_ref, data.episode_ends)
    np.testing.assert_array_equal(t_true, data.terminals)
    assert 0 < t_true.sum() < t_ref.sum()
    fl = ref.task_transitions(3, with_flags=True)
    sl = data.task_slice(3)
    np.testing.assert_array_equal(fl["timeouts"].squeeze(-1).numpy(), data.timeouts[sl])
    np.testing.assert_array_equal(fl["true_terminals"].squeeze(-1).numpy(), data.terminals[sl])
    with pytest.raises(ValueError, match="terminal_mode"):
        MultiTaskBuffer(data, terminal_mode="done")
    legacy = write_synthetic_dataset(tmp_path / "leg", n_tasks=1, steps=[1], n_sampled=2, length=3, layout="legacy")
    with pytest.raises(DatasetError, match="records no terminals"):
        MultiTaskBuffer(load_offline_data(legacy, [0], 1, n_trj=2), terminal_mode="terminal")


def _episode_id(obs, actions):
    # synthetic data: obs[...,1] = checkpoint / 1e6, actions[...,0] = episode index k
    return np.round(obs[..., 1] * 1e6).astype(int) * 100 + np.round(actions[..., 0]).astype(int)


def test_sequences_are_whole_episodes_end_to_end(buf, data):
    s = buf.sample_sequences([3, 0], 37, generator=torch.Generator().manual_seed(2))
    assert s["obs"].shape == (2, 37, 3)
    for row, task in enumerate([3, 0]):
        rew = s["rewards"][row, :, 0].numpy()  # time step within its episode
        ends = s["terminals"][row, :, 0].numpy()
        assert rew[0] == 0 and (s["obs"][row, :, 0] == task).all()
        for i in range(1, 37):
            # either the next step of the same episode, or a fresh episode after an episode end
            assert (rew[i] == rew[i - 1] + 1 and not ends[i - 1]) or (rew[i] == 0 and ends[i - 1])


def test_windows_are_consecutive_steps_of_one_episode(buf, data):
    w = buf.sample_windows([0, 6, 0], length=4, num=50, generator=torch.Generator().manual_seed(3))
    assert w["obs"].shape == (3, 50, 4, 3)
    rew = w["rewards"][..., 0].numpy()
    assert (np.diff(rew, axis=-1) == 1).all()
    eid = _episode_id(w["obs"].numpy(), w["actions"].numpy())
    assert (eid == eid[..., :1]).all()
    np.testing.assert_array_equal(w["next_obs"][..., :-1, :].numpy(), w["obs"][..., 1:, :].numpy())
    with pytest.raises(DatasetError, match="no episode with at least 11 steps"):
        buf.sample_windows([0], length=11)


def test_trajectories_and_task_transitions(buf, data):
    trajs = buf.trajectories(5)
    bounds = data.episode_bounds(5)
    assert len(trajs) == len(bounds) == buf.num_episodes(5) == 12
    for tr, (a, b) in zip(trajs, bounds):
        np.testing.assert_array_equal(tr["obs"].numpy(), data.obs[a:b])
        assert tr["terminals"][-1, 0] == 1 and tr["terminals"][:-1].sum() == 0
    allt = buf.task_transitions(5)
    np.testing.assert_array_equal(allt["next_obs"].numpy(), data.next_obs[data.task_slice(5)])
    assert buf.num_transitions(5) == data.num_transitions(5)


def test_with_capacity_keeps_the_newest_rows_like_the_reference_ring_buffer(data):
    cap = 50
    small = data.with_capacity(cap)
    for j, t in enumerate(TASKS):
        old = data.task_slice(t)
        new = small.task_slice(t)
        n = min(cap, old.stop - old.start)
        assert new.stop - new.start == n
        np.testing.assert_array_equal(small.obs[new], data.obs[old][-n:])
    assert small.episode_offsets[-1] == len(small)
    lens = np.diff(small.episode_offsets)
    assert (lens > 0).all()
    np.testing.assert_array_equal(np.flatnonzero(small.episode_ends), small.episode_offsets[1:] - 1)
    b = MultiTaskBuffer(small).sample_windows(TASKS, length=2, num=10)
    assert b["obs"].shape == (4, 10, 2, 3)


def test_device_code_path_draws_the_same_rows(data):
    # The CUDA path (torch ops, index_select) run on CPU: same RNG draws -> same rows as the NumPy path.
    cpu = MultiTaskBuffer(data)
    dev = MultiTaskBuffer(data)
    dev._cpu = False
    a = cpu.sample([6, 0, 3], 300, generator=torch.Generator().manual_seed(9))
    b = dev.sample(torch.tensor([6, 0, 3]), 300, generator=torch.Generator().manual_seed(9))
    for k in a:
        assert torch.equal(a[k], b[k])
    assert torch.equal(cpu.sample_context([5], 7, generator=torch.Generator().manual_seed(1)),
                       dev.sample_context([5], 7, generator=torch.Generator().manual_seed(1)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_buffer_matches_cpu(data):
    gpu = MultiTaskBuffer(data, "cuda")
    b = gpu.sample([0, 3], 64, generator=torch.Generator("cuda").manual_seed(0))
    assert b["obs"].is_cuda and (b["obs"][0, :, 0] == 0).all() and (b["obs"][1, :, 0] == 3).all()
    w = gpu.sample_windows([0, 3], 3, num=4)
    assert w["obs"].shape == (2, 4, 3, 3)


def test_sparsify_rewards_matches_the_reference_formula():
    from rlkit.data import sparsify_rewards

    r = np.array([-0.5, -0.2, -0.1, 0.0])
    np.testing.assert_allclose(sparsify_rewards(r, -0.2), [0.0, 0.0, 0.5, 1.0])
    t = sparsify_rewards(torch.tensor(r), -0.2)
    np.testing.assert_allclose(t.numpy(), [0.0, 0.0, 0.5, 1.0])
