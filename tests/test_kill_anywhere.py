"""Kill anywhere, lose nothing: SIGKILL each CLI at fixed phases, restart, compare with a clean run.

Opt-in (``make test-slow``). Every command starts through tests/kill_hooks.py, which makes the process
SIGKILL itself the N-th time it reaches a phase (``KILL_AT=PHASE:N``): a dataset file, a snapshot or a
record about to be renamed into place, or an evaluation computed and not yet saved. A clean run logs
the phases it reaches (``KILL_LOG``); each case derives from that log a schedule of at least
:data:`MIN_KILLS` kills at distinct points of the run, every one sized so that it must land (the
restarted command redoes at least everything not yet in place). The case then runs the command once
per kill (each attempt must die by SIGKILL at its phase, nothing else counts) and once more to
completion, and compares the result with the clean run's:

* ``policy_train.py`` (kills while dataset files are written): every file's checksum, ``verify``, and
  the generator's returns.csv;
* ``launch_experiment.py`` (kills at snapshots and after evaluations; restarted with ``--resume``, or
  ``--restart`` when a kill left progress rows but no snapshot yet): progress.csv without its
  wall-clock columns, and the networks in agent.pth;
* ``python -m rlkit.reproduce`` (kills while its dataset profile and its records are written): the
  records and the profile, without their wall-clock fields.

Each case prints its kills and the phases the attempts reached.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from rlkit.core.logger import holds_a_run, latest_snapshot, load_snapshot
from rlkit.data import verify_dataset
from rlkit.fileio import is_temp_name
from tests.helpers import processes_mentioning, small_point_robot_config
from tests.kill_hooks import hooked, read_log
from tests.test_reproduce import args as reproduce_args
from tests.test_reproduce import tiny_plan

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
MIN_KILLS = 5
# one thread per process: the machines this runs on have few cores, and the numbers do not depend on it
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------ commands (tiny settings)
def generate_cmd(config: Path, data: Path) -> list[str]:
    return [sys.executable, str(REPO / "policy_train.py"), "--config", str(config), "--preset", "train_quick",
            "--data_dir", str(data), "--no-progress", "num_train_steps=300", "num_seed_steps=100",
            "eval_frequency=100", "num_eval_sample_episodes=2", "agent.hidden_dim=32", "agent.batch_size=32"]


def train_cmd(config: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "launch_experiment.py"), str(config), "--seed", "0", "--exp_name", "k",
            f"algo_params.data_dir={data}", f"util_params.base_log_dir={out}", "algo_params.train_epoch=[100,300,100]",
            "algo_params.eval_epoch=[100,300,100]", "algo_params.n_trj=2", "algo_params.num_iterations=6",
            "algo_params.num_train_steps_per_itr=3", "algo_params.embedding_batch_size=32",
            "algo_params.batch_size=16", "algo_params.num_steps_per_eval=40", "net_size=32", "latent_size=4"]


def reproduce_cmd(plan: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "rlkit.reproduce", *reproduce_args(plan, tmp)]


# ------------------------------------------------------------------ running through the hooks
def run_hooked(cmd: list[str], log: Path, kill_at: str | None = None) -> tuple[int, list[tuple[str, str]], str]:
    """Run ``cmd`` through the kill hooks; (exit code, phases it reached, the tail of its stderr)."""
    log.unlink(missing_ok=True)
    env = {**ENV, "KILL_LOG": str(log)}
    env.pop("KILL_AT", None)
    if kill_at:
        env["KILL_AT"] = kill_at
    proc = subprocess.run(hooked(cmd), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=900)
    return proc.returncode, read_log(log), proc.stderr[-3000:]


def spread_over(log: list[tuple[str, str]], phase: str, kills: int = MIN_KILLS) -> list[tuple[str, int, str | None]]:
    """``kills`` kills spread over a clean run whose ``log`` writes files of ``phase`` in a fixed order.

    The first kill is the run's first hit (``PHASE:1``); each further one is anchored at a file of the
    clean run (``PHASE:N:NAME``), evenly spaced over its files and alternately at the file itself (N=1:
    killed before it is in place) and at the phase's next hit (N=2: in place, not yet recorded). A
    restarted command may redo earlier work, never skip work not yet in place; the anchors follow the
    clean run's order and each kill falls at or right after its anchor, so every later anchor is still
    to be written when its attempt starts: each kill must land (:func:`kill_positions` checks it)."""
    files = [i for i, (p, name) in enumerate(log) if p == phase and log.count((p, name)) == 1]
    picks = [files[round((j + 1) * (len(files) - 1) / kills)] for j in range(kills - 1)]
    return [(phase, 1, None)] + [(phase, 1 + j % 2, log[i][1]) for j, i in enumerate(picks)]


def kill_positions(schedule: list[tuple[str, int, str | None]], log: list[tuple[str, str]]) -> list[int]:
    """Where in the clean run's ``log`` each kill of ``schedule`` falls; asserts they exist and strictly
    increase (distinct points, each one still ahead of what the previous attempts left in place)."""
    positions = []
    for phase, n, anchor in schedule:
        start = 0 if anchor is None else [name for _, name in log].index(anchor)
        ahead = [i for i in range(start, len(log)) if log[i][0] == phase]
        assert len(ahead) >= n, f"{phase}:{n}:{anchor} is past the end of the clean run"
        positions.append(ahead[n - 1])
    assert positions == sorted(set(positions)), positions
    return positions


def lands(schedule: list[tuple[str, int, str | None]], total: int) -> bool:
    """For unanchored kills counted in units of which a clean run has ``total``, when a restart redoes at
    least everything a kill left undone: a process killed at its N-th hit put at most N-1 units in place,
    so kill k must land when ``n_k <= total - sum_{i<k} (n_i - 1)``."""
    done = 0
    for _, n, _ in schedule:
        if n > total - done:
            return False
        done += n - 1
    return True


def run_schedule(name: str, schedule: list[tuple[str, int, str | None]], attempt_cmd, log: Path,
                 after_kill=None) -> dict:
    """One attempt per kill of ``schedule`` (each must die by SIGKILL at its phase), then one to completion.

    ``attempt_cmd()`` gives the command for the next attempt (it may depend on what the last one left);
    ``after_kill()`` runs after each kill (e.g. waits for orphaned children). Returns the report."""
    kills, reached = [], Counter()
    for phase, n, anchor in schedule:
        kill_at = f"{phase}:{n}" + (f":{anchor}" if anchor else "")
        rc, hits, err = run_hooked(attempt_cmd(), log, kill_at)
        reached.update(p for p, _ in hits)
        assert rc == -signal.SIGKILL, f"{name}: KILL_AT={kill_at} did not land (exit {rc}; reached {hits}): {err}"
        names = [h for _, h in hits]
        counted = hits if anchor is None else hits[names.index(anchor):]
        assert hits[-1][0] == phase and sum(p == phase for p, _ in counted) == n, (kill_at, hits)
        kills.append(f"{kill_at} -> died at {hits[-1][1] or 'evaluate'}")
        if after_kill is not None:
            after_kill()
    rc, hits, err = run_hooked(attempt_cmd(), log)
    reached.update(p for p, _ in hits)
    assert rc == 0, f"{name}: the run after {len(kills)} kills failed (exit {rc}): {err}"
    report = {"kills": kills, "phases_hit": dict(reached)}
    print(f"\n{name}: {len(kills)} kills: " + "; ".join(kills) + f"; phases reached over all attempts: {dict(reached)}")
    return report


def check_report(report: dict, phases: set[str]) -> None:
    assert len(report["kills"]) >= MIN_KILLS and len(set(report["kills"])) == len(report["kills"])
    killed_at = {k.split(":")[0] for k in report["kills"]}
    assert killed_at == phases, (killed_at, phases)


# ------------------------------------------------------------------ comparisons
def file_checksums(data: Path) -> dict:
    meta = json.loads((data / "dataset.json").read_text())
    return {rel: e["sha256"] for rel, e in meta["files"].items()}


def stable(progress: Path) -> pd.DataFrame:
    df = pd.read_csv(progress)
    return df[[c for c in df.columns if "Time (s)" not in c]]


def stray_temps(folder: Path) -> list[Path]:
    """Temp files that killed writers left and nothing removed (a finished command leaves none)."""
    return [p for p in folder.rglob(".*") if is_temp_name(p.name)]


def networks(snapshot: Path) -> dict[str, torch.Tensor]:
    state = load_snapshot(snapshot)
    return {f"{net}.{k}": v for net, sd in state["trainer"]["networks"].items() for k, v in sd.items()}


WALL_CLOCK = ("wall_time_s", "created")


def comparable(path: Path, root: Path) -> dict:
    """A JSON file without wall-clock fields, with its run's folder written as ROOT."""
    data = json.loads(path.read_text().replace(str(root), "ROOT"))
    return {k: v for k, v in data.items() if k not in WALL_CLOCK} if isinstance(data, dict) else data


# ------------------------------------------------------------------ clean runs
@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    config = small_point_robot_config(tmp)
    t0 = time.monotonic()
    rc, gen_hits, err = run_hooked(generate_cmd(config, tmp / "data"), tmp / "gen.log")
    assert rc == 0, err
    gen_s = time.monotonic() - t0
    t0 = time.monotonic()
    rc, train_hits, err = run_hooked(train_cmd(config, tmp / "data", tmp / "out"), tmp / "train.log")
    assert rc == 0, err
    print(f"\nclean runs: generation {gen_s:.0f} s, {Counter(p for p, _ in gen_hits)}; "
          f"meta-training {time.monotonic() - t0:.0f} s, {Counter(p for p, _ in train_hits)}")
    return {"config": config, "data": tmp / "data", "run": tmp / "out" / "point-robot" / "k" / "seed0",
            "gen_log": gen_hits, "train": Counter(p for p, _ in train_hits)}


# ------------------------------------------------------------------ the cases
def test_generation_killed_while_writing_data_writes_the_same_dataset(clean, tmp_path):
    data = tmp_path / "data"
    schedule = spread_over(clean["gen_log"], "data", MIN_KILLS + 1)
    positions = kill_positions(schedule, clean["gen_log"])
    print(f"\ngeneration: kills at hits {[p + 1 for p in positions]} of the clean run's {len(clean['gen_log'])}")
    report = run_schedule("generation", schedule, lambda: generate_cmd(clean["config"], data), tmp_path / "kill.log")
    check_report(report, {"data"})
    assert file_checksums(data) == file_checksums(clean["data"])
    assert verify_dataset(data) == []
    assert stray_temps(data) == []
    returns = pd.read_csv(data / "_generator" / "returns.csv")
    assert not returns.duplicated(["step", "task"]).any()  # a checkpoint redone after a kill replaces its rows
    assert returns.equals(pd.read_csv(clean["data"] / "_generator" / "returns.csv"))


def test_meta_training_killed_at_snapshots_and_evaluations_writes_the_same_run(clean, tmp_path):
    out = tmp_path / "out"
    run_dir = out / "point-robot" / "k" / "seed0"
    cmd = train_cmd(clean["config"], clean["data"], out)

    def attempt() -> list[str]:  # what the user does next, after what the last kill left
        if latest_snapshot(run_dir) is not None:
            return [*cmd, "--resume", str(run_dir)]
        if run_dir.is_dir() and holds_a_run(run_dir):  # progress rows, killed before the first snapshot
            return [*cmd, "--restart"]
        return cmd

    # a kill at an iteration's evaluation or its snapshot undoes at most that iteration, so iterations (one
    # evaluation each) are the unit: kill k lands when n_k <= iterations - sum_{i<k} (n_i - 1)
    iterations = clean["train"]["evaluation"]
    schedule = [("snapshot", 1, None), ("evaluation", 2, None), ("snapshot", 2, None), ("evaluation", 1, None),
                ("snapshot", 3, None)]
    assert clean["train"]["snapshot"] >= iterations and lands(schedule, iterations), (clean["train"], schedule)
    rows = []  # progress rows after each kill: an iteration's row is written after its evaluation, before its
    #            snapshot, and a resume first drops the rows after its snapshot

    def after_kill() -> None:
        rows.append(len(pd.read_csv(run_dir / "progress.csv")) if (run_dir / "progress.csv").is_file() else 0)

    report = run_schedule("meta-training", schedule, attempt, tmp_path / "kill.log", after_kill=after_kill)
    check_report(report, {"snapshot", "evaluation"})
    points = [(phase, r - 1 if phase == "snapshot" else r) for (phase, _, _), r in zip(schedule, rows)]
    print(f"meta-training: killed at (phase, iteration) {points}")
    # distinct points, reaching into the run's second half
    assert len(set(points)) == len(points) and max(i for _, i in points) >= iterations // 2, points
    got, want = stable(run_dir / "progress.csv"), stable(clean["run"] / "progress.csv")
    assert list(got["Epoch"]) == list(range(iterations))
    assert stray_temps(run_dir) == []
    pd.testing.assert_frame_equal(got[want.columns], want)
    got_nets, want_nets = networks(run_dir / "agent.pth"), networks(clean["run"] / "agent.pth")
    assert got_nets.keys() == want_nets.keys()
    assert all(torch.equal(got_nets[k], want_nets[k]) for k in want_nets)


def test_reproduce_runner_killed_while_writing_records_ends_with_the_same_records(tmp_path):
    """Two methods x two seeds: four records, written one by one as runs finish, and a dataset profile.
    The killed runner takes over the clean runner's finished dataset (dataset generation is the case
    above), so its attempts spend their time on the runs and the records."""
    plan = tiny_plan(tmp_path)
    plan.write_text(plan.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    clean_root, killed_root = tmp_path / "clean", tmp_path / "killed"
    t0 = time.monotonic()
    rc, hits, err = run_hooked(reproduce_cmd(plan, clean_root), tmp_path / "clean.log")
    assert rc == 0, err
    counts = Counter(p for p, _ in hits)
    print(f"\nclean runner: {time.monotonic() - t0:.0f} s, {counts}")
    # the dataset (and the stamp that says it is complete) as a finished build leaves it
    shutil.copytree(clean_root / "work", killed_root / "work")
    for runs in (killed_root / "work").glob("*/runs"):
        shutil.rmtree(runs)
    shutil.rmtree(killed_root / "work" / "point-robot-tiny" / "logs", ignore_errors=True)

    got_dir = killed_root / "records" / "point-robot-tiny"
    in_place = []  # records in place after each kill

    def after_kill() -> None:
        """The runner's children stop when it dies (PR_SET_PDEATHSIG); the next runner must find their
        runs unlocked, as a user's next command would a moment later."""
        deadline = time.monotonic() + 120
        while processes_mentioning(str(killed_root)):
            assert time.monotonic() < deadline, processes_mentioning(str(killed_root))
            time.sleep(0.2)
        in_place.append(len(list(got_dir.glob("*_seed*.json"))) if got_dir.is_dir() else 0)

    # the profile is written once, each record once: kill the 1st record, then the 2nd of those still to
    # write (the first of them lands), and so on, so the kills fall on records 1, 2, ..., n of the clean run
    assert counts["profile"] == 1 and counts["record"] >= MIN_KILLS - 1, counts
    schedule = [("profile", 1, None), ("record", 1, None)] + [("record", 2, None)] * (counts["record"] - 1)
    assert lands([s for s in schedule if s[0] == "record"], counts["record"])
    report = run_schedule("reproduce runner", schedule, lambda: reproduce_cmd(plan, killed_root),
                          tmp_path / "kill.log", after_kill=after_kill)
    assert len(report["kills"]) >= MIN_KILLS and {k.split(":")[0] for k in report["kills"]} == {"profile", "record"}
    assert in_place == [0] + list(range(counts["record"])), in_place  # every record kill one record further
    want_dir = clean_root / "records" / "point-robot-tiny"
    assert sorted(p.name for p in got_dir.iterdir()) == sorted(p.name for p in want_dir.iterdir())
    for want in sorted(want_dir.iterdir()):
        assert comparable(got_dir / want.name, killed_root) == comparable(want, clean_root), want.name
