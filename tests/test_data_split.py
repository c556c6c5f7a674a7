"""The train/test task split (docs/method.md §3), against hand-computed lists and the reference's RNG use."""

from __future__ import annotations

import numpy as np
import pytest

from rlkit.data import checkpoint_steps, generation_tasks, split_tasks, split_tasks_from_variant
from rlkit.data.errors import DatasetError


def test_interpolation_30_10_matches_hand_computed_lists():
    train, test = split_tasks(40, 30, 10, interpolation=True)
    assert test.tolist() == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]
    assert train.tolist() == [t for t in range(40) if t % 4 != 2]
    assert train.dtype == np.int64 and test.dtype == np.int64


def test_interpolation_other_sizes():
    # gap = 20 // 20 + 1 = 2 -> test 1, 3, ..., 39
    train, test = split_tasks(40, 20, 20, interpolation=True)
    assert test.tolist() == list(range(1, 40, 2)) and train.tolist() == list(range(0, 40, 2))
    # gap = 35 // 5 + 1 = 8 -> test 4, 12, 20, 28, 36
    _, test = split_tasks(40, 35, 5, interpolation=True)
    assert test.tolist() == [4, 12, 20, 28, 36]
    # 3/2: gap 2 picks task 5 of 5 tasks -> clear error instead of a missing buffer later
    with pytest.raises(ValueError, match="picks test task 5, beyond n_tasks=5"):
        split_tasks(5, 3, 2, interpolation=True)


def test_plain_split_is_first_and_last():
    train, test = split_tasks(40, 30, 10)
    assert train.tolist() == list(range(30)) and test.tolist() == list(range(30, 40))
    train, test = split_tasks(10, 8, 2, randomize=True)  # randomize without interpolation is ignored
    assert train.tolist() == list(range(8)) and test.tolist() == [8, 9]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_randomize_reproduces_the_reference_global_rng_draw(seed):
    # launch_experiment.py: global_seed(seed) -> np.random.seed(seed); nothing draws from the
    # global NumPy RNG before np.random.choice(len(tasks), n_train, replace=False).
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        want_train = np.random.choice(40, size=30, replace=False)
        want_test = np.array(sorted(set(range(40)).difference(want_train)))
    finally:
        np.random.set_state(state)
    train, test = split_tasks(40, 30, 10, interpolation=True, randomize=True, seed=seed)
    assert train.tolist() == want_train.tolist()  # draw order kept, as the reference keeps it
    assert test.tolist() == want_test.tolist()
    assert sorted(train.tolist() + test.tolist()) == list(range(40))


def test_from_variant_reads_top_level_keys():
    variant = {"n_train_tasks": 30, "n_eval_tasks": 10, "interpolation": True, "randomize_tasks": 0,
               "env_params": {"n_tasks": 40, "randomize_tasks": 1}}
    train, test = split_tasks_from_variant(variant, seed=3)
    assert test.tolist() == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]
    del variant["interpolation"]  # absent -> plain split, as the reference's 'in variant.keys()' check
    _, test = split_tasks_from_variant(variant)
    assert test.tolist() == list(range(30, 40))


def test_generation_tasks_and_checkpoint_steps():
    assert list(generation_tasks(40, 4, 1)) == list(range(10, 20))
    assert list(generation_tasks(40)) == list(range(40))
    with pytest.raises(ValueError, match="does not divide n_tasks=40"):
        generation_tasks(40, 3, 0)
    assert checkpoint_steps([2200, 5000, 200]) == list(range(2200, 5000, 200))
    assert len(checkpoint_steps([100000, 1000000, 50000])) == 18
    assert checkpoint_steps(600000.0) == [600000]
    with pytest.raises(DatasetError):
        checkpoint_steps([1, 2])
    with pytest.raises(DatasetError):
        checkpoint_steps(2.5)
