"""MultiTaskBuffer: shapes, per-task isolation, uniformity, sequences/windows, terminal modes (issue #3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit.core.precision import computing_in
from rlkit.data import DatasetError, MultiTaskBuffer, load_offline_data
from rlkit.data.synthetic import write_synthetic_dataset
from tests.helpers import SMALL_DATA_TASKS, small_episodic_data

TASKS = SMALL_DATA_TASKS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_episodic_data(tmp_path_factory.mktemp("buf"))


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
    every_row = torch.arange(len(data))[None]  # the buffer keeps the data's row order
    t_ref = ref.gather(every_row)["terminals"].reshape(-1).numpy()
    t_true = true.gather(every_row)["terminals"].reshape(-1).numpy()
    np.testing.assert_array_equal(t_ref, data.episode_ends)
    np.testing.assert_array_equal(t_true, data.terminals)
    assert 0 < t_true.sum() < t_ref.sum()
    fl = ref.gather(every_row, with_flags=True)
    np.testing.assert_array_equal(fl["timeouts"].reshape(-1).numpy(), data.timeouts)
    np.testing.assert_array_equal(fl["true_terminals"].reshape(-1).numpy(), data.terminals)
    with pytest.raises(ValueError, match="terminal_mode"):
        MultiTaskBuffer(data, terminal_mode="done")
    legacy = write_synthetic_dataset(tmp_path / "leg", n_tasks=1, steps=[1], n_sampled=2, length=3, layout="legacy")
    with pytest.raises(DatasetError, match="records no terminals"):
        MultiTaskBuffer(load_offline_data(legacy, [0], 1, n_trj=2), terminal_mode="terminal")


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
    assert MultiTaskBuffer(small).num_episodes(TASKS[0]) == int((small.episode_task == TASKS[0]).sum())


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


def test_a_float64_buffer_holds_the_float32_data_exactly(data, buf):
    """Datasets are float32 files; a float64 run's buffer casts them once, exactly, and samples the same rows."""
    wide = MultiTaskBuffer(data, dtype=torch.float64)
    a = buf.sample([0, 5], 50, generator=torch.Generator().manual_seed(3))
    b = wide.sample([0, 5], 50, generator=torch.Generator().manual_seed(3))
    assert all(v.dtype == torch.float64 for v in b.values())
    assert all(torch.equal(a[k].double(), b[k]) for k in a)
    assert wide.nbytes() - len(wide) == 2 * (buf.nbytes() - len(buf))  # the flags stay one byte a row
    with computing_in("float64"):  # by default the buffer takes the run's compute dtype
        assert MultiTaskBuffer(data).dtype == torch.float64
    assert MultiTaskBuffer(data).dtype == torch.float32
