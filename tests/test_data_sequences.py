"""MultiTaskBuffer's trajectory segments (issue 29, part 3): windows, whole episodes, returns-to-go.

Every fast result is checked against a slow, written-out loop over the same draws: the
loops below walk ``OfflineData``'s own episode table one window at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit.data import DatasetError, MultiTaskBuffer
from rlkit.data.synthetic import synthetic_offline_data
from tests.helpers import SMALL_DATA_TASKS, small_episodic_data

TASKS = SMALL_DATA_TASKS
KEYS = ("obs", "actions", "rewards", "next_obs", "terminals")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_episodic_data(tmp_path_factory.mktemp("seq"))


@pytest.fixture(scope="module")
def buf(data):
    return MultiTaskBuffer(data)


def _device_path(data, **kw):
    """The CUDA code path (torch gathers) run on the CPU."""
    b = MultiTaskBuffer(data, **kw)
    b._cpu = False  # noqa: SLF001
    return b


# ---- slow, obvious references --------------------------------------------------------------


def slow_returns_to_go(data, gamma=None):
    """[N] float64: for each row, r_t + gamma r_{t+1} + ... to its episode's last row (gamma None: 1)."""
    out = np.zeros(len(data))
    offsets = data.episode_offsets.tolist()
    for a, b in zip(offsets[:-1], offsets[1:]):
        g = 0.0
        for i in reversed(range(a, b)):
            g = float(data.rewards[i]) + (g if gamma is None else gamma * g)
            out[i] = g
    return out


def slow_segments(data, starts, length, padding, gamma=None, dtype=torch.float32):
    """Per task, per window, a Python walk from the start row to min(start + L, episode end), then padding."""
    rtg = slow_returns_to_go(data, gamma)
    offsets = data.episode_offsets.tolist()
    term = data.episode_ends.astype(np.float64)
    out = {k: [] for k in (*KEYS, "returns_to_go", "timesteps", "mask")}
    for task_row in starts.tolist():
        per_task = {k: [] for k in out}
        for s in task_row:
            e = max(i for i in range(len(offsets) - 1) if offsets[i] <= s)
            ep_start, ep_stop = offsets[e], offsets[e + 1]
            steps = []
            for i in range(s, min(s + length, ep_stop)):
                steps.append({"obs": data.obs[i].tolist(), "actions": data.actions[i].tolist(),
                              "rewards": [float(data.rewards[i])], "next_obs": data.next_obs[i].tolist(),
                              "terminals": [term[i]], "returns_to_go": [rtg[i]], "timesteps": i - ep_start,
                              "mask": True})
            pad = {"obs": [0.0] * data.obs_dim, "actions": [0.0] * data.act_dim, "rewards": [0.0],
                   "next_obs": [0.0] * data.obs_dim, "terminals": [0.0], "returns_to_go": [0.0], "timesteps": 0,
                   "mask": False}
            pads = [pad] * (length - len(steps))
            window = pads + steps if padding == "left" else steps + pads
            for k in out:
                per_task[k].append([w[k] for w in window])
        for k in out:
            out[k].append(per_task[k])
    res = {k: torch.tensor(out[k], dtype=dtype) for k in (*KEYS, "returns_to_go")}
    res["timesteps"] = torch.tensor(out["timesteps"], dtype=torch.int64)
    res["mask"] = torch.tensor(out["mask"], dtype=torch.bool)
    return res


def _assert_same(fast, slow):
    assert set(fast) >= set(slow)
    for k in slow:
        assert fast[k].dtype == slow[k].dtype, k
        assert fast[k].shape == slow[k].shape, (k, fast[k].shape, slow[k].shape)
        assert torch.equal(fast[k], slow[k]), k


# ---- returns-to-go ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [None, 0.99, 0.5])
def test_returns_to_go_match_a_written_out_loop(buf, data, gamma):
    fast = buf.returns_to_go(gamma)
    assert fast.shape == (len(data),) and fast.dtype == torch.float32
    # same float64 arithmetic in the same order, then one cast: equal, not merely close
    assert torch.equal(fast, torch.from_numpy(slow_returns_to_go(data, gamma)).float())
    assert buf.returns_to_go(gamma) is fast  # computed once per buffer and gamma


def test_returns_to_go_on_the_device_path_and_in_float64(data):
    dev = _device_path(data, dtype=torch.float64)
    rtg = dev.returns_to_go(0.9)
    assert rtg.dtype == torch.float64
    assert torch.equal(rtg, torch.from_numpy(slow_returns_to_go(data, 0.9)))


# ---- windows against the per-task loop ---------------------------------------------------------


@pytest.mark.parametrize("padding", [None, "left", "right"])
@pytest.mark.parametrize("device_path", [False, True])
def test_segments_match_the_per_task_loop(data, padding, device_path):
    b = _device_path(data) if device_path else MultiTaskBuffer(data)
    ids = [6, 0, 3, 3, 5]  # repeated ids are allowed, as in sample()
    g = torch.Generator().manual_seed(3)
    starts = b.segment_starts(ids, 16, 4, padding=padding, generator=g)
    assert starts.shape == (5, 16) and starts.dtype == torch.int64
    seg = b.segments_at(starts, 4, padding=padding or "right", gamma=0.9)
    _assert_same(seg, slow_segments(data, starts, 4, padding, gamma=0.9))
    # sample_segments is segment_starts then segments_at, with the same draws
    again = b.sample_segments(ids, 16, 4, padding=padding, gamma=0.9, generator=torch.Generator().manual_seed(3))
    _assert_same(again, seg)


def test_the_device_path_draws_the_same_segments(data):
    cpu, dev = MultiTaskBuffer(data), _device_path(data)
    for padding in (None, "left"):
        a = cpu.sample_segments([5, 0], 32, 3, padding=padding, generator=torch.Generator().manual_seed(1))
        b = dev.sample_segments(torch.tensor([5, 0]), 32, 3, padding=padding,
                                generator=torch.Generator().manual_seed(1))
        _assert_same(a, b)
    a = cpu.sample_episodes([6, 3], 5, generator=torch.Generator().manual_seed(2))
    _assert_same(a, dev.sample_episodes([6, 3], 5, generator=torch.Generator().manual_seed(2)))


def test_windows_never_mix_two_episodes_or_two_tasks(data):
    b = MultiTaskBuffer(data)
    ep_of_row = np.repeat(np.arange(data.num_episodes), np.diff(data.episode_offsets))
    ids = [0, 3, 5, 6]
    for padding in (None, "left", "right"):
        starts = b.segment_starts(ids, 400, 5, padding=padding, generator=torch.Generator().manual_seed(7))
        seg = b.segments_at(starts, 5, padding=padding or "right")
        mask = seg["mask"]
        if padding is None:
            assert mask.all()
        # each window's real steps: one task (obs[..., 0] is the task id), one episode, consecutive time steps
        for row, task in enumerate(ids):
            sl = data.task_slice(task)
            assert ((starts[row] >= sl.start) & (starts[row] < sl.stop)).all()
            assert (seg["obs"][row, ..., 0][mask[row]] == task).all()
        eps = ep_of_row[starts.numpy()]
        for t in range(len(ids)):
            for k in range(starts.shape[1]):
                m = mask[t, k].numpy()
                ts = seg["timesteps"][t, k].numpy()[m]
                assert np.array_equal(ts, ts[0] + np.arange(m.sum()))  # consecutive steps
                rows = int(starts[t, k]) + np.arange(m.sum())
                assert (ep_of_row[rows] == eps[t, k]).all()  # all of them in the start's episode
                # the synthetic reward is the time step: the gathered rows are those time steps
                assert np.array_equal(seg["rewards"][t, k, :, 0].numpy()[m], ts.astype(np.float32))
                # a window ends at the episode's end at the latest: only its last real step may be an episode end
                assert not seg["terminals"][t, k, :, 0].numpy()[m][:-1].any()


def test_full_windows_start_uniformly_over_every_place_a_window_fits(data):
    b = MultiTaskBuffer(data)
    L, n_draw, task = 4, 200_000, 3
    bounds = data.episode_bounds(task)
    valid = [s for a, e in bounds for s in range(a, e - L + 1)]  # every start whose window fits
    starts = b.segment_starts([task], n_draw, L, generator=torch.Generator().manual_seed(0))[0].numpy()
    assert set(starts.tolist()) == set(valid)
    counts = np.array([np.sum(starts == s) for s in valid])
    expected = n_draw / len(valid)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = len(valid) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)  # seeded: cannot flake


def test_padded_windows_start_at_the_uniform_samplers_rows(buf):
    # padding on: every row may start a window, drawn exactly as sample() draws its transitions
    a = buf.segment_starts([0, 6], 50, 7, padding="left", generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, buf.sample_indices([0, 6], 50, generator=torch.Generator().manual_seed(4)))


# ---- short episodes: masks and padding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def short():
    # task 10: episodes of 3, 6 and 1 steps; task 11: one of 2 steps
    return synthetic_offline_data([[3, 6, 1], [2]], obs_dim=2, act_dim=1, task_ids=[10, 11], seed=1)


def test_masks_and_padding_of_short_episodes(short):
    b = MultiTaskBuffer(short)
    starts = torch.tensor([[0, 1, 3, 9]])  # episode starts 0, 3, 9 (lengths 3, 6, 1); 1 is step 1 of the first
    right = b.segments_at(starts, 5, padding="right")
    left = b.segments_at(starts, 5, padding="left")
    assert right["mask"].int().tolist() == [[[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]]
    assert left["mask"].int().tolist() == [[[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]]
    assert right["timesteps"].tolist() == [[[0, 1, 2, 0, 0], [1, 2, 0, 0, 0], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]]
    assert left["timesteps"].tolist() == [[[0, 0, 0, 1, 2], [0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]]
    # returns-to-go of the rewards 0, 1, 2 (the synthetic reward is the time step): 3, 3, 2
    assert right["returns_to_go"][0, 0, :, 0].tolist() == [3.0, 3.0, 2.0, 0.0, 0.0]
    assert left["returns_to_go"][0, 1, :, 0].tolist() == [0.0, 0.0, 0.0, 3.0, 2.0]
    for seg in (right, left):  # padded steps hold zeros in every field
        pad = ~seg["mask"]
        for k in (*KEYS, "returns_to_go"):
            assert (seg[k][pad] == 0).all(), k
        assert (seg["obs"][..., 0][seg["mask"]] == 10).all()


def test_whole_episodes_one_per_task(short):
    b = MultiTaskBuffer(short)
    assert b.max_episode_length == 6
    ep = b.sample_episodes([10, 11, 10], 50, generator=torch.Generator().manual_seed(0))
    assert ep["obs"].shape == (3, 50, 6, 2) and ep["mask"].shape == (3, 50, 6)
    lengths = ep["mask"].sum(-1)
    assert set(lengths[0].tolist()) == {3, 6, 1} and set(lengths[1].tolist()) == {2}
    assert (ep["timesteps"][..., 0] == 0).all()  # each starts at its episode's first step
    assert ep["mask"][..., 0].all()  # right-padded by default: real steps first
    # uniform over the task's episodes (not weighted by length)
    counts = np.bincount(lengths[0].numpy(), minlength=7)[[1, 3, 6]]
    assert counts.min() > 5, counts
    left = b.sample_episodes([10], 4, padding="left", generator=torch.Generator().manual_seed(0))
    assert left["mask"][..., -1].all()
    starts = b.episode_starts([10], 4, generator=torch.Generator().manual_seed(0))
    _assert_same(left, slow_segments(short, starts, 6, "left"))


def test_full_windows_come_only_from_episodes_long_enough(short):
    b = MultiTaskBuffer(short)
    starts = b.segment_starts([10], 500, 4, generator=torch.Generator().manual_seed(0))
    assert set(starts[0].tolist()) == {3, 4, 5}  # only the 6-step episode (rows 3..8) fits a window of 4


# ---- dtype, device, seeds ------------------------------------------------------------------------------


def test_dtypes_and_device(data):
    wide = MultiTaskBuffer(data, dtype=torch.float64)
    seg = wide.sample_segments([0, 3], 8, 3, padding="right", gamma=0.9, with_flags=True)
    for k in (*KEYS, "returns_to_go"):
        assert seg[k].dtype == torch.float64 and seg[k].device.type == "cpu", k
    assert seg["timesteps"].dtype == torch.int64 and seg["mask"].dtype == torch.bool
    assert seg["obs"].shape == (2, 8, 3, 3) and seg["rewards"].shape == (2, 8, 3, 1)
    assert seg["returns_to_go"].shape == (2, 8, 3, 1)
    for k in ("true_terminals", "timeouts", "episode_ends"):
        assert seg[k].dtype == torch.bool and seg[k].shape == (2, 8, 3, 1)
        assert not seg[k][~seg["mask"]].any()  # padded steps carry no flags
    # the episode end flag sits on the last real step of windows that reach the episode's end
    assert torch.equal(seg["episode_ends"][..., 0].float(), seg["terminals"][..., 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_segments_match_cpu(data):
    gpu, cpu = MultiTaskBuffer(data, "cuda"), MultiTaskBuffer(data)
    starts = cpu.segment_starts([0, 3], 64, 4, padding="left")
    a = gpu.segments_at(starts.cuda(), 4, padding="left", gamma=0.9)
    assert all(v.is_cuda for v in a.values())
    _assert_same({k: v.cpu() for k, v in a.items()}, cpu.segments_at(starts, 4, padding="left", gamma=0.9))
    gpu.sample_segments(torch.tensor([0, 3], device="cuda"), 8, 4, generator=torch.Generator("cuda").manual_seed(0))
    gpu.sample_episodes([0], 2)


def test_seeded_and_reproducible(buf):
    for padding in (None, "right"):
        a = buf.sample_segments([0, 3], 20, 4, padding=padding, generator=torch.Generator().manual_seed(5))
        b = buf.sample_segments([0, 3], 20, 4, padding=padding, generator=torch.Generator().manual_seed(5))
        torch.manual_seed(5)
        c = buf.sample_segments([0, 3], 20, 4, padding=padding)
        _assert_same(a, b)
        _assert_same(a, c)
        d = buf.sample_segments([0, 3], 20, 4, padding=padding, generator=torch.Generator().manual_seed(6))
        assert not torch.equal(a["obs"], d["obs"])
    e1 = buf.sample_episodes([5], 3, generator=torch.Generator().manual_seed(8))
    _assert_same(e1, buf.sample_episodes([5], 3, generator=torch.Generator().manual_seed(8)))


# ---- errors: one line each ---------------------------------------------------------------------------


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_bad_sizes_are_one_line_errors(buf, short):
    with pytest.raises(ValueError, match=r"num must be an integer >= 1, got 0") as e:
        buf.sample_segments([0], 0, 3)
    _one_line(e)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1, got 0") as e:
        buf.sample_segments([0], 4, 0)
    _one_line(e)
    with pytest.raises(TypeError, match=r"length must be an integer >= 1, got 2.5") as e:
        buf.sample_segments([0], 4, 2.5)
    _one_line(e)
    with pytest.raises(ValueError, match=r"padding must be one of None, 'left', 'right', got 'middle'"):
        buf.sample_segments([0], 4, 3, padding="middle")
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\] or None, got 1.5"):
        buf.returns_to_go(1.5)
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\] or None, got 0"):
        buf.sample_segments([0], 4, 3, gamma=0)
    # every episode is shorter than L: name the tasks, the longest episode and the two ways out
    with pytest.raises(DatasetError, match=r"tasks \[0, 3\] have no episode of at least 11 steps \(longest: 10\)"
                                           r".*padding='left' or 'right'") as e:
        buf.sample_segments([0, 3], 4, 11)
    _one_line(e)
    b = MultiTaskBuffer(short)
    with pytest.raises(DatasetError, match=r"tasks \[11\] have no episode of at least 3 steps \(longest: 2\)") as e:
        b.sample_segments([10, 11], 4, 3)
    _one_line(e)
    assert b.sample_segments([10, 11], 4, 3, padding="right")["mask"][1].sum() > 0  # padding serves short tasks
    with pytest.raises(ValueError, match=r"whole episodes differ in length: padding must be 'left' or 'right'"):
        b.sample_episodes([10], padding=None)
    with pytest.raises(DatasetError, match=r"tasks \[1\] are not in this buffer"):
        buf.sample_segments([1], 4, 3)
    with pytest.raises(ValueError, match=r"starts must be \[T, K\] row indices, got shape \(3,\)"):
        buf.segments_at(torch.tensor([0, 1, 2]), 3)
