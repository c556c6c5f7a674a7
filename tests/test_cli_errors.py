"""One error style for every command: expected failures are one line `error: ...` and exit 2.

Disk-full and permission failures are simulated in process (the tests run as
root, for whom permission bits do not apply): the failing call raises the
OSError the kernel would give.
"""

import errno

import pytest
from pathlib import Path

import launch_experiment
import policy_train
from rlkit import plot as rplot
from rlkit.data import __main__ as data_cli
from rlkit.errors import cli

REPO = Path(__file__).resolve().parents[1]


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
    # the first snapshot was lost, so the same command would refuse (progress rows, nothing to resume): the
    # line names the command that does go on, not "run the same command again (it resumes)"
    assert "free some disk space, then start it over with: " in line and line.endswith(" --restart")
    assert "(it resumes)" not in line


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


# --------------------------------------------------------------------------------------
# issue 19: the probe's remaining cases, each one line

def _tiny_run_args(tiny, out, *extra):
    return [str(tiny.config), "--seed", "0", "--exp_name", "probe", f"algo_params.data_dir={tiny.data_dir}",
            f"util_params.base_log_dir={out}", "algo_params.train_epoch=[100,200,100]",
            "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2", "algo_params.num_iterations=1",
            "algo_params.num_train_steps_per_itr=2", "algo_params.num_steps_per_eval=20", *extra]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("meta-train")]
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--seed", "99999999999"], ["--seeds", "0,-1"],
                                  ["--seeds", "99999999999"], ["SECOND", "--seed", "4294967296"]])
def test_seeds_out_of_range_are_one_line_errors(tmp_path, capsys, argv):
    from tests.helpers import small_point_robot_config

    config = small_point_robot_config(tmp_path)
    argv = [str(config) if a == "SECOND" else a for a in argv]
    assert launch_experiment.main([str(config), *argv, f"util_params.base_log_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be an integer from 0 to 4294967295 (2**32 - 1)" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("radius, says", [("-0.2", "goal_radius must be a positive number"),
                                          ("0", "goal_radius must be a positive number"),
                                          ("nan", "goal_radius must be a finite number")])
def test_a_goal_radius_that_makes_the_sparse_reward_zero_everywhere_is_refused(tmp_path, capsys, radius, says):
    """Was accepted: the sparse reward is then 0 for every method, and a table compares zeros."""
    config = REPO / "configs" / "sparse-point-robot.json"
    out = tmp_path / "out"
    try:  # a config error exits from inside the config loader
        rc = launch_experiment.main([str(config), f"env_params.goal_radius={radius}", f"util_params.base_log_dir={out}"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not out.exists()


def test_an_override_without_equals_is_reported_as_such(tmp_path, capsys):
    from tests.helpers import small_point_robot_config

    config = small_point_robot_config(tmp_path)
    assert launch_experiment.main([str(config), "algo_params.num_iterations"]) == 2
    line = last_line(capsys)
    assert "'algo_params.num_iterations' is neither a config file nor an override" in line
    assert "KEY=VALUE" in line and "not found" not in line


def test_a_data_dir_that_is_a_file(tiny_csro_run, tmp_path, capsys):
    a_file = tmp_path / "data.npz"
    a_file.write_bytes(b"x")
    rc = launch_experiment.main(_tiny_run_args(tiny_csro_run, tmp_path / "out", f"algo_params.data_dir={a_file}"))
    assert rc == 2
    line = last_line(capsys)
    assert f"{a_file} is a file, not a dataset folder" in line and "does not exist" not in line


def test_networks_that_cannot_fit_are_refused_up_front(tiny_csro_run, tmp_path, monkeypatch, capsys):
    from rlkit.launchers import meta_train

    monkeypatch.setattr(meta_train, "_device_memory", lambda device: 64 * 2**30)
    out = tmp_path / "out"
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out, "latent_size=1e8")) == 2
    line = last_line(capsys)
    assert line.startswith("error: latent_size=100000000 needs at least ") and "more than the 64 GiB of cpu" in line
    assert not out.exists()  # refused before the run folder was made
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out, "net_size=200000")) == 2
    assert last_line(capsys).startswith("error: net_size=200000 needs at least ")


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
                 "allocate 1099511627776 bytes."),
    MemoryError(),
])
def test_running_out_of_memory_is_one_line_naming_the_sizes(tiny_csro_run, tmp_path, monkeypatch, capsys, error):
    from rlkit.launchers import meta_train

    def oom(self):
        raise error

    monkeypatch.setattr(meta_train.MetaTrainer, "run", oom)
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, tmp_path, "latent_size=7")) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: out of memory on cpu; lower the settings that size the run (latent_size=7, ")
    assert "algo_params.embedding_batch_size=" in line


def test_other_runtime_errors_are_not_taken_for_memory(tiny_csro_run, tmp_path, monkeypatch):
    from rlkit.launchers import meta_train

    def bug(self):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(meta_train.MetaTrainer, "run", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        launch_experiment.main(_tiny_run_args(tiny_csro_run, tmp_path))


def test_torch_save_runtime_error_on_a_full_disk_is_the_disk_full_line(tiny_csro_run, tmp_path, monkeypatch,
                                                                       capsys):
    """torch's zip writer reports a short write as RuntimeError('... unexpected pos ...'), not ENOSPC."""
    import shutil
    from collections import namedtuple

    import torch

    def short_write(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12, 4096))
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, tmp_path)) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: No space left on device:") and "agent.pth" in line
    assert "free some disk space" in line


def test_torch_save_runtime_error_with_space_left_is_still_one_line(tmp_path, monkeypatch):
    import torch

    from rlkit.core.logger import atomic_torch_save
    from rlkit.errors import describe

    def broken(obj, f, *a, **k):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError) as err:
        atomic_torch_save({"a": 1}, tmp_path / "agent.pth")
    assert err.value.errno == errno.EIO
    assert describe(err.value) == (f"cannot write the snapshot (PytorchStreamWriter failed writing file data/0: "
                                   f"file write failed): {tmp_path / 'agent.pth'}")
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_disk_full_at_the_first_snapshot_never_blocks_the_retry(tiny_csro_run, tmp_path, monkeypatch, capsys):
    """Progress rows without a snapshot: the rerun and --resume both say how to start over, and --restart does."""
    from rlkit.core import logger

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    out = tmp_path / "out"
    run_dir = out / "point-robot" / "probe" / "seed0"
    with monkeypatch.context() as m:
        m.setattr(logger, "atomic_torch_save", full)
        assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out)) == 2
    assert (run_dir / "progress.csv").is_file() and not list(run_dir.glob("agent*.pth"))
    capsys.readouterr()
    # the same command: not "use --resume"
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out)) == 2
    line = last_line(capsys)
    assert "holds progress rows but no snapshot, so there is nothing to resume" in line and "--restart" in line
    # --resume: not a dead end either
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out, "--resume", str(run_dir))) == 2
    line = last_line(capsys)
    assert "nothing to resume" in line and "--restart (moves the old folder aside, deletes nothing)" in line
    # --restart: the old folder is kept beside, the run starts over
    old_rows = (run_dir / "progress.csv").read_text()
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out, "--restart")) == 0
    moved = list(run_dir.parent.glob("replaced-seed0-*"))
    assert len(moved) == 1 and (moved[0] / "progress.csv").read_text() == old_rows
    assert (run_dir / "agent.pth").is_file()
    assert f"--restart: the old run {run_dir} is now {moved[0]}" in capsys.readouterr().err


# ---- a full disk while writing results: nothing half-written, one line naming the file --------------------


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp-" in p.name]


def test_a_full_disk_after_the_first_snapshot_names_the_resume_command(tiny_csro_run, tmp_path, monkeypatch,
                                                                       capsys):
    from rlkit.core import logger

    real, calls = logger.atomic_torch_save, {"n": 0}

    def full_at_the_second(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(obj, path)

    monkeypatch.setattr(logger, "atomic_torch_save", full_at_the_second)
    out = tmp_path / "out"
    run_dir = out / "point-robot" / "probe" / "seed0"
    assert launch_experiment.main(_tiny_run_args(tiny_csro_run, out, "algo_params.num_iterations=2")) == 2
    line = last_line(capsys)
    assert "free some disk space, then continue it with: " in line and line.endswith(f"--resume {run_dir}")


def test_a_full_disk_leaves_no_truncated_evaluation_csv(tiny_csro_run, tmp_path, monkeypatch, capsys):
    """Was: a truncated ev.csv, and a line naming no file that said "run the same command again (it resumes)"."""
    import csv

    from rlkit import evaluate as ev

    out = tmp_path / "ev"
    args = [str(tiny_csro_run.run_dir), "--protocols", "online", "--num_evals", "1", "--out", str(out)]
    assert ev.main(args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real, calls = csv.DictWriter.writerow, {"n": 0}

    def full_after_two_rows(self, row):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name
        return real(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", full_after_two_rows)
    capsys.readouterr()
    assert ev.main(args) == 2
    assert last_line(capsys) == (f"error: No space left on device: {out}.csv; free some disk space, then run the "
                                 "same command again")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the old results, whole
    assert _no_temp_files(tmp_path)


def _pil_disk_full(monkeypatch) -> None:
    """PIL's save on a full disk: the file is created, its data does not fit."""
    import os

    from PIL import Image

    def full(self, fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)):
            open(fp, "wb").close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)


def test_a_full_disk_leaves_no_empty_figures_or_clips(tiny_csro_run, tmp_path, monkeypatch, capsys):
    """Was: 0-byte PNGs from show_path and context_shift (and GIFs), and a line naming no file."""
    import importlib.util

    import numpy as np

    from rlkit import context_shift
    from rlkit.evaluation.protocol_video import write_gif

    spec = importlib.util.spec_from_file_location("show_path", REPO / "show_path.py")
    show_path = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(show_path)
    _pil_disk_full(monkeypatch)
    hint = "; free some disk space, then run the same command again"
    figs = tmp_path / "figs"
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "tiny", "--base_log_dir",
                           str(tiny_csro_run.base_log_dir), "--out", str(figs), "--protocols", "online"]) == 2
    assert last_line(capsys) == f"error: No space left on device: {figs / 'paths_itr1.png'}{hint}"
    assert list(figs.iterdir()) == []
    shift = tmp_path / "shift"
    assert context_shift.main([str(tiny_csro_run.run_dir), "--num_evals", "1", "--draws", "2",
                               "--out", str(shift)]) == 2
    assert last_line(capsys) == f"error: No space left on device: {shift / 'context_shift_itr1.png'}{hint}"
    assert list(shift.iterdir()) == []
    clip = tmp_path / "clip.gif"
    with pytest.raises(OSError) as err:
        write_gif([np.zeros((4, 4, 3), np.uint8)] * 2, clip)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(clip) and not clip.exists()
    assert _no_temp_files(tmp_path)
