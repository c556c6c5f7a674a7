"""Fuzzing the inputs a user hands us: configs, overrides and dataset files.

Whatever the input, the answer is a valid result or the project's one-line
error (ConfigError, DatasetError, SnapshotError) — never another exception,
never code run from a file, never a hang (hypothesis' deadline).
"""

import json
import shutil
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlkit.config import ConfigError, load_config, load_defaults
from rlkit.core.logger import SnapshotError, load_snapshot
from rlkit.data import DatasetError, load_offline_data, read_legacy_file
from rlkit.data.synthetic import write_synthetic_dataset

DEFAULTS, _ = load_defaults()
KEYS = sorted({*DEFAULTS, *DEFAULTS["algo_params"], *DEFAULTS["env_params"], *DEFAULTS["util_params"],
               "algo_param", "n_task", "_x", ""})
SETTINGS = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(tree=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))
def test_random_config_trees_load_or_fail_cleanly(tmp_path, tree):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tree))
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(overrides=st.lists(st.text(alphabet=string.ascii_letters + string.digits + "._=[],-: ", max_size=30)
                          | st.builds(lambda k, v: f"algo_params.{k}={v}", st.sampled_from(KEYS),
                                      st.text(max_size=10)),
                          max_size=4))
def test_random_overrides_load_or_fail_cleanly(overrides):
    from pathlib import Path

    try:
        load_config(Path(__file__).resolve().parents[1] / "configs" / "point-robot.json", overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("fuzz") / "d", n_tasks=2, steps=[100, 200], n_sampled=3)


def _load(root):
    return load_offline_data(root, [0, 1], [100, 300, 100], n_trj=3, sample=True, verify=False)


@SETTINGS
@given(data=st.data())
def test_damaged_data_files_fail_cleanly(dataset, tmp_path, data):
    root = tmp_path / "d"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(dataset, root)
    target = root / data.draw(st.sampled_from(["task_000/step_00000100.npy", "task_001/step_00000200.npy",
                                               "dataset.json"]))
    raw = bytearray(target.read_bytes())
    how = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for i in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[i] ^= data.draw(st.integers(1, 255))
    else:
        raw = bytearray(data.draw(st.binary(max_size=400)))
    target.write_bytes(bytes(raw))
    try:
        out = _load(root)
    except DatasetError as exc:
        assert "\n" not in str(exc)
    else:  # flipped bytes inside values can still make a valid file: then the values must be finite
        assert np.isfinite(out.obs).all() and np.isfinite(out.rewards).all()


class _Planted:
    def __reduce__(self):
        return (open, ("/tmp/csro-fuzz-pwned", "w"))


@SETTINGS
@given(raw=st.binary(max_size=600))
def test_random_bytes_as_legacy_files_and_snapshots(tmp_path, raw):
    path = tmp_path / "trj_evalsample0_step2200.npy"
    path.write_bytes(raw)
    with pytest.raises(DatasetError):
        read_legacy_file(path)
    snap = tmp_path / "agent.pth"
    snap.write_bytes(raw)
    try:
        load_snapshot(snap)
    except SnapshotError as exc:
        assert "\n" not in str(exc)


def test_planted_pickles_never_run(tmp_path):
    import os
    import pickle

    import torch

    marker = "/tmp/csro-fuzz-pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    payload = pickle.dumps(np.array([_Planted()], dtype=object))
    (tmp_path / "trj_evalsample0_step2200.npy").write_bytes(payload)
    with pytest.raises(DatasetError):
        read_legacy_file(tmp_path / "trj_evalsample0_step2200.npy")
    torch.save({"x": _Planted()}, tmp_path / "agent.pth")
    with pytest.raises(SnapshotError):
        load_snapshot(tmp_path / "agent.pth")
    assert not os.path.exists(marker)
