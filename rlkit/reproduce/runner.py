"""Drive one reproduction: build the dataset, train every (method, seed), write records.

Every piece of work is one of the project's own CLIs run as a child process
(``policy_train.py``, ``launch_experiment.py``, ``python -m rlkit.context_shift``),
so a reproduction resumes exactly as a user's run does: the generator from its
last checkpoint, a meta-training run from its last per-iteration snapshot
(``--resume``). The wall-clock budget is enforced by interrupting the children
(SIGINT, then SIGKILL after a grace period); nothing is lost but the
iteration in flight, which the next call recomputes identically.

A run whose record exists is never started again: records are what the table
is made of, and they are committed, so the table grows across sessions.

Nothing is lost to the runner itself: it takes a run's lock before it looks
into or moves its folder (a run still written by another runner, or by a child
a killed runner left behind, is refused, not touched), it never deletes a run
folder (one without a snapshot is moved aside), and its children die with it,
however it dies (Linux: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from rlkit.behavior.config import compose_sac_config
from rlkit.config import save_config
from rlkit.core.logger import RunLock, latest_snapshot
from rlkit.data import DatasetError, read_metadata
from rlkit.data.fingerprint import fingerprint_mismatch, recorded_fingerprint
from rlkit.data.native import generator_clash
from rlkit.data.profile import profile_dataset
from rlkit.errors import INTERRUPTED_EXIT, UserError
from rlkit.evaluation.protocols import PROGRESS_KEYS
from rlkit.fileio import remove_stale_temps
from rlkit.launchers.meta_train import run_data_fingerprint
from rlkit.reproduce.plan import PROTOCOLS, Plan, settings_drift
from rlkit.reproduce.records import (
    PROFILE_FILE,
    build_record,
    load_records,
    record_path,
    write_record,
)
from rlkit.reproduce.renames import moved_work_hint, renamed_from
from rlkit.trainers import trainer_of

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 60.0  # after SIGINT, how long a child may take to close its files before SIGKILL
MIN_START_S = 30.0  # do not start new work with less budget left than this
BUDGET_EXIT = 3  # exit status when the budget ran out with work left: "call me again"


class ReproduceError(UserError, RuntimeError):
    """A step failed in a way the user must fix; the message is one line."""


def min_budget_s() -> float:
    """The smallest budget that can start anything: a run is started only with more than MIN_START_S
    left, and a budget spent before that would exit "call me again" forever without doing any work."""
    return 2 * MIN_START_S


def parse_budget(text: str | None) -> float | None:
    """``90s``, ``50m``, ``2h``, ``1h30m`` or plain seconds -> seconds (None: no budget)."""
    if text is None:
        return None
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
        if not parts or "".join(n + u for n, u in parts) != t:
            raise ReproduceError(f"--budget {text!r}: write it like 90s, 50m, 2h or 1h30m")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds < min_budget_s():
        raise ReproduceError(f"--budget {text!r} is under the minimum of {min_budget_s():g}s: a run starts only "
                             f"with more than {MIN_START_S:g}s of budget left; give {min_budget_s():g}s or more, "
                             "or no --budget")
    return seconds


@dataclass
class Budget:
    seconds: float | None
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - (time.monotonic() - self.start)


@dataclass
class Layout:
    """Where one plan's work lives: ``OUT/ENV-SCALE/{offline_dataset,runs,logs}`` and its records.

    A plan that takes another plan's dataset (``dataset: {from_plan: ...}``) reads it from that
    plan's folder (``dataset_root``), so both stamp and verify one copy.
    """

    root: Path
    records: Path
    dataset_root: Path | None = None

    @classmethod
    def for_plan(cls, out: Path, plan: Plan, records: Path) -> Layout:
        return cls(out / plan.name, records, out / plan.dataset_home)

    @property
    def data_dir(self) -> Path:
        return (self.dataset_root or self.root) / "offline_dataset"

    @property
    def dataset_stamp(self) -> Path:
        return (self.dataset_root or self.root) / "dataset.done.json"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def run_dir(self, plan: Plan, method: str, seed: int) -> Path:
        return self.runs / plan.env / method / f"seed{seed}"


def _repo_relative(path: str) -> str:
    """A config path as the checkout sees it (``configs/point-robot.json``), whichever checkout it is in."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        parts = Path(path).parts
        if "configs" in parts:  # another checkout's configs folder
            return str(Path(*parts[len(parts) - 1 - parts[::-1].index("configs"):]))
        return str(path)


def portable_args(args: list[str]) -> list[str]:
    """policy_train arguments with the dataset folder and the checkout left out."""
    out, flag = [], None
    for a in args:
        out.append("<data_dir>" if flag == "--data_dir" else _repo_relative(a) if flag == "--config" else a)
        flag = a
    return out


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


@dataclass
class Job:
    """One child process: what it is, its command, and what to do when it ends."""

    label: str
    cmd: list[str]
    log: Path
    method: str | None = None
    seed: int | None = None
    kind: str = "train"  # train | shift | dataset | verify
    proc: subprocess.Popen | None = None
    started: float = 0.0

    def start(self, threads: int) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"\n$ {' '.join(self.cmd)}\n")
        out = open(self.log, "a", encoding="utf-8")
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                     env=child_env(threads), start_new_session=True,
                                     preexec_fn=_child_setup(os.getpid()))
        out.close()
        self.started = time.monotonic()

    def tail(self, n: int = 3) -> str:
        try:
            lines = [ln for ln in self.log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-n:])


def _sigint_stops_child() -> None:
    """SIGINT is how :func:`interrupt` asks a child to stop cleanly, so the child must not inherit an
    ignored SIGINT: a runner started in the background by a shell without job control (``cmd &``,
    nohup in a script) has SIGINT ignored, and its children would sit out the grace period and be
    killed mid-iteration instead of closing their files."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _prctl():
    """libc's ``prctl``, looked up in the runner (not between fork and exec, where an import could
    deadlock on a lock another thread held at the fork); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_setup(parent_pid: int):
    """What each child runs between fork and exec: SIGINT back to its default, and death with the runner.

    The kernel sends the child SIGINT when the runner dies, however it dies (SIGKILL included;
    ``PR_SET_PDEATHSIG``). The children run in sessions of their own, so nothing else would reach them:
    an orphan would keep training and hold its run's lock. SIGINT, not SIGKILL, so the child closes its
    files as on the runner's own interrupt (a killed child would lose nothing either: it resumes from its
    last snapshot). A runner that died between the fork and the request is caught by its pid. Off Linux
    only the runner's SIGTERM/SIGINT handling stops the children."""
    prctl = _prctl()

    def setup() -> None:
        _sigint_stops_child()
        if prctl is not None and prctl(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0) == 0 \
                and os.getppid() != parent_pid:
            os._exit(INTERRUPTED_EXIT)
    return setup


def interrupt(jobs: list[Job]) -> None:
    """SIGINT every running child (they close their files), SIGKILL what is left after the grace period."""
    live = [j for j in jobs if j.proc is not None and j.proc.poll() is None]
    for j in live:
        os.killpg(j.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + GRACE_S
    for j in live:
        try:
            j.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(j.proc.pid, signal.SIGKILL)
            j.proc.wait()


def wait_one(job: Job, budget: Budget, poll: float = 1.0) -> bool:
    """Wait for one job; False (after interrupting it) when the budget runs out first.

    The children run in sessions of their own (a Ctrl-C in the terminal reaches only
    this process), so an interrupt of this process stops the child here too.
    """
    try:
        while job.proc.poll() is None:
            if budget.remaining() <= 0:
                interrupt([job])
                return False
            time.sleep(poll)
    except BaseException:
        interrupt([job])
        raise
    return True


def move_aside(path: Path) -> Path:
    """Rename a run folder to a free ``aside.NAME.YYYYmmdd-HHMMSS[-N]`` beside it, never deleting its files.

    The new name does not start with ``seed``, so a tool given the experiment folder (``rlkit.plot``
    takes its ``seed*`` folders) never counts the old attempt as one more seed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        target = path.with_name(f"aside.{path.name}.{stamp}" + (f"-{n}" if n else ""))
        if not target.exists():
            path.rename(target)
            return target
    raise ReproduceError(f"cannot find a free name to move {path} aside; move it away by hand")


def _progress(run_dir: Path) -> pd.DataFrame | None:
    """A run's progress.csv, or None while there is none (an empty or half-written table counts as
    none; resume rewrites it)."""
    path = run_dir / "progress.csv"
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except Exception:
        return None
    return table if "Epoch" in table and len(table) else None


def progress_rows(run_dir: Path, progress: pd.DataFrame | None = None) -> int:
    progress = _progress(run_dir) if progress is None else progress
    return 0 if progress is None else int(progress["Epoch"].nunique())


def _last_returns(progress: pd.DataFrame | None) -> str:
    if progress is None or not all(PROGRESS_KEYS[p] in progress for p in PROTOCOLS):
        return ""
    row = progress.iloc[-1]
    return ", ".join(f"{p} {float(row[PROGRESS_KEYS[p]]):.2f}" for p in PROTOCOLS)


class Reproduction:
    """The state machine over one plan's work; :meth:`run` does what the budget allows."""

    def __init__(self, plan: Plan, layout: Layout, budget: Budget, gpu: int | None = None,
                 parallel: int | None = None, threads: int | None = None, echo=print,
                 methods: list[str] | None = None, seeds: list[int] | None = None):
        self.plan, self.layout, self.budget, self.gpu = plan, layout, budget, gpu
        self.methods = plan.select_methods(methods)
        self.seeds = plan.select_seeds(seeds)
        self.parallel = parallel or plan.parallel
        self.threads = plan.threads_per_run if threads is None else threads
        self.echo = echo
        self.py = sys.executable

    # ------------------------------------------------------------------ dataset
    @property
    def dataset_config(self) -> Path:
        return self.plan.dataset_config or self.plan.config

    def dataset_args(self) -> list[str]:
        return self.plan.dataset.policy_train_args(self.dataset_config, self.layout.data_dir)

    def _stamp(self) -> Path:
        return self.layout.dataset_stamp

    def portable_dataset_args(self) -> list[str]:
        """:meth:`dataset_args` with the checkout and the work folder left out, so that a work folder
        moved or copied to another checkout (or machine) is still recognised as the same dataset."""
        return portable_args(self.dataset_args())

    def dataset_ready(self) -> bool:
        """True when the plan's dataset is built; a dataset built with other settings is an error."""
        stamp = self._stamp()
        if not stamp.is_file():
            return False
        if not (self.layout.data_dir / "dataset.json").is_file():
            self.echo(f"[{self.plan.name}] {stamp} says the dataset was built, but {self.layout.data_dir} holds "
                      "none: building it again")
            stamp.unlink()
            return False
        made = json.loads(stamp.read_text(encoding="utf-8"))
        made_args = made.get("policy_train_args")
        # stamps written before portable ones held the absolute paths of the checkout that made them
        if not isinstance(made_args, list) or portable_args([str(a) for a in made_args]) != self.portable_dataset_args():
            before = renamed_from(self.plan.dataset_home)
            was = (f" (until {before.on} this folder's name was that of the plan now called {before.new}: move it "
                   f"to {self.layout.data_dir.parent.parent / before.new})") if before else ""
            raise ReproduceError(f"the dataset in {self.layout.data_dir} was made with other settings "
                                 f"({made.get('policy_train_args')}){was}; use another --out or delete it")
        self._check_generator_settings()
        self.write_dataset_profile()
        return True

    def _check_generator_settings(self) -> None:
        """The same arguments can mean other settings when a SAC preset's defaults change: compare what
        the dataset records it was made with (dataset.json) with what the plan's arguments resolve to now."""
        try:
            made = read_metadata(self.layout.data_dir).get("generator_config")
        except DatasetError as exc:
            raise ReproduceError(f"the dataset in {self.layout.data_dir} is unreadable ({exc}); "
                                 "move it aside to build it anew") from None
        ds = self.plan.dataset
        try:
            planned = {"sac": OmegaConf.to_container(compose_sac_config(ds.preset, ds.overrides), resolve=True),
                       "seed": ds.seed}
        except ValueError as exc:
            raise ReproduceError(f"plan {self.plan.name}: {exc}") from None
        clash = generator_clash(made, planned)
        if clash:
            raise ReproduceError(f"the dataset in {self.layout.data_dir} was made with other generator settings than "
                                 f"plan {self.plan.name} resolves to now ({clash}); restore the plan's dataset "
                                 "settings, or move that dataset aside (or use another --out) to build it anew")

    def write_dataset_profile(self) -> Path:
        """``dataset_profile.json`` beside the plan's records: the behaviour data's quality, committed
        with the records, so the page can show it when the dataset itself is long gone."""
        path = Path(self.layout.records) / self.plan.name / PROFILE_FILE
        profile = profile_dataset(self.layout.data_dir).as_json()
        if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != profile:
            save_config(profile, path)
        return path

    def ensure_dataset(self) -> bool:
        """Build (or resume building) and verify the dataset; False if the budget ran out first."""
        if self.dataset_ready():
            return True
        gpu = ["--gpu", str(self.gpu)] if self.gpu is not None else []
        steps = [("dataset", [self.py, str(REPO / "policy_train.py"), *self.dataset_args(), *gpu]),
                 ("verify", [self.py, "-m", "rlkit.data", "verify", str(self.layout.data_dir)])]
        for kind, cmd in steps:
            job = Job(kind, cmd, self.layout.logs / "dataset.log", kind=kind)
            self.echo(f"[{self.plan.name}] {kind}: {self.layout.data_dir} (log {job.log})")
            job.start(0)
            if not wait_one(job, self.budget):
                return False
            if job.proc.returncode != 0:
                raise ReproduceError(f"{kind} of {self.layout.data_dir} failed (exit {job.proc.returncode}): "
                                     f"{job.tail()}")
        save_config({"policy_train_args": self.portable_dataset_args(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
                    self._stamp())
        self.write_dataset_profile()
        return True

    # ------------------------------------------------------------------ runs
    def pending(self) -> list[tuple[str, int]]:
        """The selected runs without a record, seed-major: every method's first seed lands before
        any second seed, so a table cut short by the budget still compares all methods."""
        return [(m, s) for s in self.seeds for m in self.methods
                if not record_path(self.layout.records, self.plan, m, s).is_file()]

    def train_job(self, method: str, seed: int) -> Job:
        run_dir = self.layout.run_dir(self.plan, method, seed)
        cmd = [self.py, str(REPO / "launch_experiment.py"), str(self.plan.config), "--seed", str(seed),
               *self.plan.run_overrides(method, self.layout.data_dir, self.layout.runs)]
        if self.gpu is not None:
            cmd += ["--gpu", str(self.gpu)]
        if run_dir.exists():
            lock = self._claim(run_dir)
            try:
                if latest_snapshot(run_dir) is not None:
                    self._same_settings(method, run_dir)
                    self._same_data(run_dir)
                    cmd += ["--resume", str(run_dir)]
                else:
                    # started but stopped before its first snapshot: nothing to resume from, so it
                    # starts afresh, but whatever it wrote (progress rows, logs) is kept aside
                    aside = move_aside(run_dir)
                    self.echo(f"[{self.plan.name}] {run_dir} has no snapshot to resume from: moved to {aside}, "
                              "starting the run afresh")
            finally:
                lock.release()  # the child takes it next; it refuses to start should anyone come between
        return Job(f"{method} seed {seed}", cmd, self.layout.logs / f"{method}_seed{seed}.log", method, seed)

    def _claim(self, run_dir: Path) -> RunLock:
        """The run's lock, before its folder is looked into or moved; a run held by a live process
        (another runner on this plan, or a child left by a runner that was killed) is refused."""
        try:
            return RunLock.acquire(run_dir)
        except UserError as exc:
            raise ReproduceError(f"{exc} (another runner on plan {self.plan.name}, or a child a killed runner "
                                 "left behind); this runner touches nothing of it") from None

    def _same_settings(self, method: str, run_dir: Path) -> None:
        """Refuse to continue a run that the plan, edited since it started, no longer describes."""
        try:
            ran = json.loads((run_dir / "variant.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no readable variant.json: launch_experiment's own resume checks report it
        drift = settings_drift(ran, self.plan.resolved_config(method), resuming=True)
        if drift:
            raise ReproduceError(f"{run_dir} was started under other settings than {self.plan.source or self.plan.name} "
                                 f"now asks ({'; '.join(drift)}); restore the plan, or move that run away to start "
                                 "it afresh")

    def _same_data(self, run_dir: Path) -> None:
        """Refuse to continue or summarise a run on other data than it was trained on: the plan's dataset
        rebuilt (the same recipe gives other data), or another work folder's. Compared from the
        dataset's metadata (rlkit.data.fingerprint); a run from before runs recorded it is said, and used."""
        try:
            ran = json.loads((run_dir / "variant.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no readable variant.json: launch_experiment's own resume checks report it
        recorded = recorded_fingerprint(ran)
        if recorded is None:
            self.echo(f"[{self.plan.name}] note: {run_dir} was made before runs recorded their data's fingerprint; "
                      f"whether {self.layout.data_dir} holds the data it was trained on cannot be checked")
            return
        try:
            now = run_data_fingerprint(ran, int(ran.get("seed", 0)), self.layout.data_dir)
        except DatasetError as exc:
            raise ReproduceError(f"cannot read the dataset of {run_dir} ({exc})") from None
        differ = fingerprint_mismatch(recorded, now)
        if differ:
            raise ReproduceError(f"{run_dir} was trained on other data than {self.layout.data_dir} holds now (data "
                                 f"fingerprint {'; '.join(differ)}): move that run away to train "
                                 "it afresh on this dataset, or restore the dataset it was trained on")

    def shift_job(self, method: str, seed: int) -> Job:
        run_dir = self.layout.run_dir(self.plan, method, seed)
        self._claim(run_dir).release()  # a run some process still writes is not summarised
        self._same_data(run_dir)
        cmd = [self.py, "-m", "rlkit.context_shift", str(run_dir), "--draws", str(self.plan.context_shift_draws),
               "--seed", str(seed)]
        if self.gpu is not None:
            cmd += ["--gpu", str(self.gpu)]
        return Job(f"{method} seed {seed} context shift", cmd, self.layout.logs / f"{method}_seed{seed}.log",
                   method, seed, kind="shift")

    def has_task_embedding(self, method: str) -> bool:
        """Whether the method's trainer has a task embedding for the context-shift diagnostics
        (:attr:`rlkit.trainers.base.Trainer.task_embedding`); without one its runs are recorded without them."""
        return bool(trainer_of(self.plan.resolved_config(method)).task_embedding)

    def after_training(self, method: str, seed: int) -> Job | None:
        """What follows a finished training: the context-shift job, or, for a method without a task
        embedding (the diagnostics are n/a for it), the record written at once (None)."""
        if self.has_task_embedding(method):
            return self.shift_job(method, seed)
        run_dir = self.layout.run_dir(self.plan, method, seed)
        self._claim(run_dir).release()  # a run some process still writes is not summarised
        self._same_data(run_dir)
        self.write_run_record(method, seed, f"{method} seed {seed}", 0.0)
        return None

    def write_run_record(self, method: str, seed: int, label: str, shift_seconds: float) -> Path:
        run_dir = self.layout.run_dir(self.plan, method, seed)
        record = build_record(self.plan, method, seed, run_dir, context_shift_seconds=shift_seconds)
        path = write_record(self.layout.records, self.plan, record)
        self.echo(f"[{self.plan.name}] {label} done: "
                  + ", ".join(f"{p} {v:.2f}" for p, v in record["final"].items()) + f" -> {path}")
        return path

    def next_job(self, method: str, seed: int) -> Job | None:
        """The job a pending run needs next; None when it only needed its record, now written."""
        run_dir = self.layout.run_dir(self.plan, method, seed)
        if progress_rows(run_dir) >= self.plan.num_iterations and (run_dir / "agent.pth").is_file():
            return self.after_training(method, seed)
        return self.train_job(method, seed)

    def finish(self, job: Job) -> Job | None:
        """After a child ends well: the follow-up job, or None once the record is written."""
        run_dir = self.layout.run_dir(self.plan, job.method, job.seed)
        if job.kind == "train":
            if progress_rows(run_dir) < self.plan.num_iterations:
                raise ReproduceError(f"{job.label} ended without finishing ({progress_rows(run_dir)} of "
                                     f"{self.plan.num_iterations} iterations); see {job.log}")
            return self.after_training(job.method, job.seed)
        self.write_run_record(job.method, job.seed, job.label.replace(" context shift", ""),
                              time.monotonic() - job.started)
        return None

    def rename_notes(self) -> list[str]:
        """What a reused plan name meant before, and work left under this plan's old names (renames.py)."""
        notes = []
        before = renamed_from(self.plan.name)
        if before is not None:
            notes.append(f"note: until {before.on} the name {self.plan.name} was the plan now called {before.new}; "
                         f"its records are in {Path(self.layout.records) / before.new}")
        root = self.layout.root.parent
        for name in dict.fromkeys((self.plan.name, self.plan.dataset_home)):
            hint = moved_work_hint(root, name)
            if hint:
                notes.append(f"note: {hint}")
        return notes

    def status(self) -> list[str]:
        """One line per selected run (and one for the dataset): what is done, from the files alone."""
        if self._stamp().is_file():
            data = "ready"
        elif self.layout.data_dir.exists():
            data = f"started, not finished (running, or paused until the next call; log {self.layout.logs / 'dataset.log'})"
        else:
            data = "not started"
        lines = [f"dataset {self.layout.data_dir}: {data}", *self.rename_notes()]
        total = self.plan.num_iterations
        for seed in self.seeds:
            for method in self.methods:
                run_dir = self.layout.run_dir(self.plan, method, seed)
                progress = _progress(run_dir)
                if record_path(self.layout.records, self.plan, method, seed).is_file():
                    state = "recorded"
                else:
                    done = progress_rows(run_dir, progress)
                    pending = "context shift" if self.has_task_embedding(method) else "record"
                    state = ("not started" if done == 0 else
                             f"trained, {pending} pending" if done >= total else f"{done} of {total} iterations")
                last = _last_returns(progress)
                lines.append(f"{method} seed {seed}: {state}" + (f" (last iteration: {last})" if last else ""))
        return lines

    def run(self) -> bool:
        """Do what the budget allows; True when every selected run has its record."""
        # a runner killed while writing a record or the profile leaves its hidden temp file in a folder
        # that is committed with the results: gone before anything else happens there
        remove_stale_temps(Path(self.layout.records) / self.plan.name)
        load_records(self.layout.records, self.plan)  # a record made under other settings stops everything here
        if not self.pending():
            return True
        root = self.layout.root.parent
        for name in dict.fromkeys((self.plan.name, self.plan.dataset_home)):
            hint = moved_work_hint(root, name)
            if hint:  # hours of work under the old name: never started again from scratch beside it
                raise ReproduceError(hint)
        if not self.ensure_dataset():
            return False
        queue, running = list(self.pending()), []
        threads = self.threads
        try:
            while queue or running:
                while queue and len(running) < self.parallel and self.budget.remaining() > MIN_START_S:
                    job = self.next_job(*queue.pop(0))
                    if job is None:  # trained before, recorded now without context-shift diagnostics
                        continue
                    self.echo(f"[{self.plan.name}] start {job.label}" + (" (resuming)" if "--resume" in job.cmd else ""))
                    job.start(threads)
                    running.append(job)
                if not running:  # budget too small to start anything
                    return False
                time.sleep(1.0)
                if self.budget.remaining() <= 0:
                    self.echo(f"[{self.plan.name}] budget reached: interrupting {len(running)} job(s)")
                    interrupt(running)
                    return False
                for job in [j for j in running if j.proc.poll() is not None]:
                    running.remove(job)
                    if job.proc.returncode != 0:
                        raise ReproduceError(f"{job.label} failed (exit {job.proc.returncode}): {job.tail()}")
                    follow = self.finish(job)
                    if follow is not None:
                        if self.budget.remaining() > MIN_START_S:
                            follow.start(threads)
                            running.append(follow)
                        else:
                            queue.insert(0, (job.method, job.seed))
        except BaseException:
            interrupt(running)
            raise
        return not self.pending()
