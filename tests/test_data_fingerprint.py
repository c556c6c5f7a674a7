"""The fingerprint of a selection of offline data (rlkit.data.fingerprint): what a run records of its data.

It must change when what the run reads changes (a selected file regenerated, another normalizer),
stay when what the run does not read changes (other tasks or checkpoints added), be the same for
the loader (which has the files in hand) and for a look at the metadata alone (the reproduction
runner), and read no data file twice for the reference layout.
"""

import numpy as np
import pytest

from rlkit.data import DatasetWriter, load_offline_data, read_metadata
from rlkit.data.fingerprint import FINGERPRINT_LENGTH, fingerprint_mismatch
from rlkit.data.loader import selection_fingerprint
from rlkit.data.native import read_checkpoint_episodes
from rlkit.data.normalizer import save_normalizer
from rlkit.data.synthetic import synthetic_episodes, write_synthetic_dataset

STEPS = (100, 200)
SELECT = dict(tasks=[0, 2], epochs=[100, 300, 100], n_trj=2, sample=True)


def _fp(root) -> str:
    data = load_offline_data(root, SELECT["tasks"], SELECT["epochs"], SELECT["n_trj"], SELECT["sample"], verify=True)
    assert data.fingerprint == selection_fingerprint(root, SELECT["tasks"], SELECT["epochs"], SELECT["n_trj"],
                                                     SELECT["sample"])
    return data.fingerprint


def _writer(root) -> DatasetWriter:
    meta = read_metadata(root)
    return DatasetWriter(root, meta["env_name"], meta["env_params"], meta["tasks"], meta["obs_dim"], meta["act_dim"],
                         meta["generator_config"], fsync=False)


def test_native_fingerprint_follows_the_selected_files_only(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", 4, STEPS, n_sampled=3)
    first = _fp(root)
    assert len(first) == FINGERPRINT_LENGTH and int(first, 16) >= 0
    assert _fp(root) == first  # stable
    # what the run does not read: another task's checkpoint regenerated, a new checkpoint added
    writer = _writer(root)
    rng = np.random.default_rng(9)
    writer.write_checkpoint(1, 100, synthetic_episodes(rng, 1, 100, 1, 3, 20, 2, 2))
    writer.write_checkpoint(0, 900, synthetic_episodes(rng, 0, 900, 1, 3, 20, 2, 2))
    assert _fp(root) == first
    # a selected file regenerated (same tasks, other episodes): another fingerprint
    writer.write_checkpoint(2, 200, synthetic_episodes(rng, 2, 200, 1, 3, 20, 2, 2))
    second = _fp(root)
    assert second != first
    # a normalizer changes what the networks see
    save_normalizer(root, np.array([3.0, 4.0]))
    assert _fp(root) not in (first, second)


def test_legacy_fingerprint_hashes_names_sizes_and_content(tmp_path):
    root = write_synthetic_dataset(tmp_path / "legacy", 3, STEPS, n_sampled=3, layout="legacy")
    first = _fp(root)
    assert len(first) == FINGERPRINT_LENGTH
    # a file of the selection edited in place, same size: the content hash catches it
    path = root / "goal_idx2" / "trj_evalsample1_step200.npy"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    assert _fp(root) != first
    # an unselected task's file: no change
    again = _fp(root)
    other = root / "goal_idx1" / "trj_evalsample0_step100.npy"
    other.write_bytes(other.read_bytes()[:-4] + b"\0\0\0\0")
    assert _fp(root) == again


def test_the_legacy_loader_reads_each_file_once(tmp_path, monkeypatch):
    """The fingerprint hashes the bytes the loader read anyway: no second pass over the data."""
    import builtins

    root = write_synthetic_dataset(tmp_path / "legacy", 3, STEPS, n_sampled=3, layout="legacy")
    opened = []
    real_open = builtins.open

    def counting_open(file, *a, **k):
        if str(file).endswith(".npy"):
            opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    load_offline_data(root, SELECT["tasks"], SELECT["epochs"], SELECT["n_trj"], SELECT["sample"], workers=1)
    assert len(opened) == len(set(opened)) == 2 * 2 * 2  # tasks x checkpoints x episodes


def test_mismatch_names_both_fingerprints_of_each_split():
    ran = {"train": "a" * 16, "test": "b" * 16}
    assert fingerprint_mismatch(ran, dict(ran)) == []
    assert fingerprint_mismatch(ran, {"train": "a" * 16, "test": "c" * 16}) == [f"test {'b' * 16} then, {'c' * 16} now"]
    assert fingerprint_mismatch(ran, {"test": "b" * 16}, splits=("test",)) == []  # only what was loaded


def test_native_data_and_its_records_agree_with_the_metadata_alone(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", 3, STEPS, n_sampled=3)
    fp = _fp(root)
    # the episodes of the same file, read back and written again unchanged: the same bytes, the same fingerprint
    eps = read_checkpoint_episodes(root, 0, 100)
    _writer(root).write_checkpoint(0, 100, eps)
    assert _fp(root) == fp
    with pytest.raises(Exception):
        selection_fingerprint(tmp_path / "missing", [0], [100, 200, 100], 1, True)
