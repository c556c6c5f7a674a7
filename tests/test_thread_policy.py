"""The busy-machine thread policy: importing rlkit makes OpenMP's waiting threads sleep, unless the user chose.

Spinning OpenMP threads beside a core another process holds made a 2-thread step slower than one
thread (benchmarks/bench_thread_policy.py measures it). The policy only works if it is in the
environment when torch loads OpenMP, so these run in fresh interpreters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env_after(code: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",)}
    base.update(env)
    base["PYTHONPATH"] = str(REPO) + os.pathsep + base.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_rlkit_makes_waiting_openmp_threads_sleep():
    got = _env_after("import json, os, rlkit; print(json.dumps(os.environ.get('OMP_WAIT_POLICY')))")
    assert got == "PASSIVE"


@pytest.mark.parametrize("value", ["ACTIVE", "passive"])
def test_a_wait_policy_the_user_set_is_kept(value):
    got = _env_after("import json, os, rlkit; print(json.dumps(os.environ.get('OMP_WAIT_POLICY')))",
                     OMP_WAIT_POLICY=value)
    assert got == value


def test_the_runners_children_start_with_the_policy_in_place():
    """A child imports torch through the launcher after rlkit, but the policy also travels in its environment,
    so a child that loads OpenMP first (a user's script as a plan step) gets it too."""
    got = _env_after("import json; from rlkit.reproduce.runner import child_env; "
                     "e = child_env(1); print(json.dumps([e.get('OMP_WAIT_POLICY'), e.get('OMP_NUM_THREADS')]))")
    assert got == ["PASSIVE", "1"]


@pytest.mark.slow  # eight fresh interpreters that each import torch: minutes on a busy 2-core machine
def test_the_benchmark_times_every_variant_quiet_and_busy(tmp_path):
    """The smoke run of the benchmark: each variant in its own interpreter, with the policy it claims."""
    path = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.bench_thread_policy", "--quick", "--json", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=540,
                         env={**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"},
                              "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(path.read_text())["rows"]
    from benchmarks.bench_thread_policy import VARIANTS

    assert len(rows) == 2 * len(VARIANTS) and {r["condition"] for r in rows} == {"quiet", "1 core held"}
    policy = {r["variant"]: r["omp_wait_policy"] for r in rows}
    assert policy["2 threads, rlkit's policy"] == "PASSIVE"
    assert policy["2 threads, torch's default"] == policy["2 threads, short spin"] == "(unset)"
    assert all(r["s_per_step"] > 0 for r in rows)
