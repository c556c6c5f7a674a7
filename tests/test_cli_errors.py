"""One error style for every command: expected failures are one line `error: ...` and exit 2.

Disk-full and permission failures are simulated in process (the tests run as
root, for whom permission bits do not apply): the failing call raises the
OSError the kernel would give.
"""

import errno

import pytest

import launch_experiment
import policy_train
from rlkit import plot as rplot
from rlkit.data import __main__ as data_cli
from rlkit.errors import cli


def last_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_disk_full_while_saving_a_snapshot(tiny_csro_run, tmp_path, monkeypatch, capsys):
    from rlkit.core import logger

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(logger, "atomic_torch_save", full)
    rc = launch_experiment.main([str(tiny_csro_run.config), "--seed", "0", "--exp_name", "full",
                                 f"algo_params.data_dir={tiny_csro_run.data_dir}",
                                 f"util_params.base_log_dir={tmp_path}", "algo_params.train_epoch=[100,200,100]",
                                 "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
                                 "algo_params.num_iterations=1", "algo_params.num_train_steps_per_itr=2",
                                 "algo_params.num_steps_per_eval=20"])
    assert rc == 2
    line = last_line(capsys)
    assert line.startswith("error: No space left on device:") and "agent.pth" in line
    assert "free some disk space and run the same command again" in line


def test_read_only_dataset_folder(tiny_csro_run, tmp_path, monkeypatch, capsys):
    from rlkit.data import native

    def denied(self, meta):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.path))

    monkeypatch.setattr(native._MetadataStore, "save", denied)
    rc = policy_train.main(["--config", str(tiny_csro_run.config), "--preset", "train_quick", "--data_dir",
                            str(tmp_path / "data"), "--no-progress", "num_train_steps=150", "num_seed_steps=100",
                            "eval_frequency=100", "num_eval_sample_episodes=1"])
    assert rc == 2
    assert last_line(capsys) == (f"error: Permission denied: {tmp_path / 'data' / 'dataset.json'}; "
                                 "check the permissions of that path, or choose another folder")


@pytest.mark.parametrize("argv", [["info", "DATA"], ["verify", "DATA"]])
def test_unreadable_dataset_json(tiny_csro_run, monkeypatch, capsys, argv):
    from rlkit.data import native

    def denied(root):
        raise PermissionError(errno.EACCES, "Permission denied", str(root))

    monkeypatch.setattr(native, "read_metadata", denied)
    monkeypatch.setattr(data_cli, "dataset_info", lambda d: denied(d))
    monkeypatch.setattr(data_cli, "verify_dataset", lambda d: denied(d))
    argv = [a.replace("DATA", str(tiny_csro_run.data_dir)) for a in argv]
    assert data_cli.main(argv) == 2
    assert last_line(capsys).startswith("error: Permission denied:")


def test_unreadable_progress_for_plot(tiny_csro_run, tmp_path, monkeypatch, capsys):
    import pandas as pd

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_csv", denied)
    assert rplot.main([str(tiny_csro_run.run_dir), "--out", str(tmp_path / "p.png")]) == 2
    line = last_line(capsys)
    assert line.startswith("error: cannot read") and "progress.csv" in line and "Permission denied" in line


def test_unexpected_errors_keep_their_traceback():
    @cli
    def main(argv=None):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        main([])
