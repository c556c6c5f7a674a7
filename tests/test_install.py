"""A non-editable install carries everything a run needs: the configs ship inside the package.

Before, the env JSONs, algorithm presets, SAC presets and plans lived only in the checkout's
configs/ (the config loader found them relative to the source tree), so ``pip install .`` gave a
package that could not build its hyper-parameters or run the demo.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# every preset of the source tree must reach an installed copy (the five methods and CORRO's relabelling variant)
SHIPPED_PRESETS = sorted(p.stem for p in (REPO / "rlkit" / "configs" / "algos").glob("*.json"))


def install_copy(tmp_path) -> Path:
    """A non-editable install of the sources into ``tmp_path/site`` (built from a copy: building in the
    checkout would leave build/ there)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "rlkit", "rand_param_envs"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                         if (REPO / name).is_dir() else {}))
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(src)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return target


def run_installed(target: Path, args, cwd: Path, timeout=600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**env, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"})


def test_an_installed_copy_finds_its_configs_away_from_the_checkout(tmp_path):
    assert {"CSRO", "FOCAL", "offline-PEARL", "CORRO", "UNICORN-SS"} <= set(SHIPPED_PRESETS)
    target = install_copy(tmp_path)
    script = textwrap.dedent("""
        import rlkit, rlkit.config as c
        from rlkit.behavior.config import compose_sac_config
        from rlkit.reproduce.plan import load_plan, plan_path
        assert rlkit.__file__.startswith(TARGET), rlkit.__file__
        for env_json in sorted(c.REPO_CONFIG_DIR.glob("*.json")):
            for preset in c.algo_presets():
                c.load_config(env_json, [f"algo_type={preset}"])
        assert sorted(c.algo_presets()) == PRESETS, sorted(c.algo_presets())
        assert compose_sac_config("train_quick", []).num_train_steps > 0
        assert load_plan(plan_path("point-robot", "cpu")).name == "point-robot-cpu"
        print("ok", c.REPO_CONFIG_DIR)
    """).replace("TARGET", repr(str(target))).replace("PRESETS", repr(SHIPPED_PRESETS))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**env, "PYTHONPATH": str(target)})
    assert res.returncode == 0 and res.stdout.startswith("ok " + str(target)), res.stderr[-3000:]


def test_an_installed_copy_names_its_configs_by_env_and_its_hints_run_as_printed(tmp_path):
    """Was: `csro-train configs/point-robot.json` failed with "not found" outside a checkout, and the hints
    named `python policy_train.py`, which only a checkout has. Now the shipped configs are named by env, and
    the generator's hint (a command that exists where it runs) trains as printed, with tiny overrides."""
    target = install_copy(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    gen = run_installed(target, ["-m", "rlkit.cli.policy_train", "--config", "point-robot", "--preset",
                                 "train_quick", "--data_dir", "data", "--no-progress", "num_train_steps=300",
                                 "num_seed_steps=100", "eval_frequency=100", "num_eval_sample_episodes=2",
                                 "agent.hidden_dim=16", "agent.batch_size=16"], work)
    assert gen.returncode == 0, gen.stderr[-2000:]
    hint = gen.stdout.strip().splitlines()[-1].strip()
    assert "policy_train.py" not in hint and "launch_experiment.py" not in hint
    assert hint.split()[1:3] == ["-m", "rlkit.cli.meta_train"] and " point-robot " in hint, hint
    tiny = ["algo_params.num_iterations=1", "algo_params.num_train_steps_per_itr=2", "algo_params.meta_batch=4",
            "algo_params.embedding_batch_size=16", "algo_params.batch_size=16", "algo_params.num_steps_per_eval=20",
            "util_params.base_log_dir=out"]
    train = run_installed(target, [*shlex.split(hint)[1:], *tiny], work)
    assert train.returncode == 0, train.stderr[-2000:]
    assert (work / "out" / "point-robot" / "CSRO" / "seed0" / "agent.pth").is_file()
    missing = run_installed(target, ["-m", "rlkit.cli.meta_train", "pointrobot"], work)
    assert missing.returncode == 2
    assert "shipped env configs are named by env: " in missing.stderr and "point-robot" in missing.stderr


def test_what_a_build_leaves_in_the_checkout_is_ignored():
    """`pip wheel .` in the checkout leaves build/ (and `python -m build`, dist/): git status showed them."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        import pytest

        pytest.skip("not a git checkout")
    paths = ["build/lib/rlkit/__init__.py", "dist/csro-0.1.0-py3-none-any.whl", "csro.egg-info/PKG-INFO"]
    res = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert res.stdout.split() == paths, res.stdout + res.stderr
