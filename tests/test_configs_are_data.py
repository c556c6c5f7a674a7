"""Configs are data: defaults come from the package, and no Python beside a config is ever run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rlkit.config as config_module
from rlkit.config import load_config, load_defaults
from tests.helpers import REPO, small_point_robot_config

# A default.py that would announce it ran: writes a marker file and changes a default.
HOSTILE_DEFAULT_PY = """
from pathlib import Path
Path(__file__).with_name("MARKER").write_text("default.py was executed")
default_config = dict(net_size=77)
optional_config = {}
"""


@pytest.fixture
def foreign_folder(tmp_path):
    """A config folder from elsewhere: a valid JSON with a default.py beside it."""
    folder = tmp_path / "their-configs"
    folder.mkdir()
    (folder / "default.py").write_text(HOSTILE_DEFAULT_PY)
    return small_point_robot_config(folder)


def test_default_py_beside_a_config_is_never_executed(foreign_folder, capsys, monkeypatch):
    monkeypatch.setattr(config_module, "_warned_default_py", set())
    cfg = load_config(foreign_folder)
    assert not (foreign_folder.parent / "MARKER").exists()
    assert cfg["net_size"] == load_defaults()[0]["net_size"] == 256  # the package's default, not 77
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: ignoring ") and str(foreign_folder.parent / "default.py") in lines[0]
    assert "never run" in lines[0]


def test_the_warning_is_said_once_per_folder(foreign_folder, capsys, monkeypatch):
    monkeypatch.setattr(config_module, "_warned_default_py", set())
    for _ in range(3):  # a sweep loads its config once per run
        load_config(foreign_folder)
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_config_folder_without_default_py_says_nothing(tmp_path, capsys):
    load_config(small_point_robot_config(tmp_path))
    assert capsys.readouterr().err == ""


def test_the_cli_never_executes_it_either(foreign_folder, tmp_path):
    """As a user runs it: a subprocess from another working directory, the repo on PYTHONPATH only."""
    proc = subprocess.run([sys.executable, "-m", "rlkit.config", str(foreign_folder)], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (foreign_folder.parent / "MARKER").exists()
    assert json.loads(proc.stdout)["net_size"] == 256
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ignoring "), proc.stderr


def test_defaults_need_no_repository_checkout(monkeypatch, tmp_path):
    """An installed (non-editable) package has no configs/ folder: the defaults must not be read from there."""
    monkeypatch.setattr(config_module, "REPO_CONFIG_DIR", tmp_path / "no-such-checkout")
    defaults, optional = load_defaults()
    assert defaults["algo_params"]["meta_batch"] == 16 and "goal_radius" in optional["env_params"]
    from rlkit.torch.hyperparams import CSROHyperParams  # the training step's settings are built from them

    assert CSROHyperParams().net_size == 256


def test_no_copy_of_the_defaults_is_left_in_configs():
    """One place for the defaults: a configs/default.py would drift from the package's (and invite edits)."""
    assert not (REPO / "configs" / "default.py").exists()


def test_load_defaults_hands_out_copies():
    first, _ = load_defaults()
    first["algo_params"]["meta_batch"] = -1
    assert load_defaults()[0]["algo_params"]["meta_batch"] == 16
