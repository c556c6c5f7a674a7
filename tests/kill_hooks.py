"""Run a CLI that SIGKILLs itself at a chosen phase: ``python -c BOOTSTRAP SCRIPT|-m MODULE ARGS...``.

tests/test_kill_anywhere.py starts each command through :func:`main` with ``KILL_AT=PHASE:N`` in its
environment: the process kills itself (SIGKILL: no handler, no cleanup, no flush) the N-th time it
reaches PHASE. A kill timed by the clock lands wherever the CPU happens to be (often nowhere useful, or
after the command already finished); a kill tied to a phase lands exactly where it is meant to, the same
way on every machine, and one that never happens is seen. The phases:

* ``data``: a dataset file (``*.npy``, ``dataset.json``) is complete and about to be renamed into place;
* ``snapshot``: a meta-training snapshot (``agent*.pth``) likewise;
* ``evaluation``: the meta-trainer's evaluation has computed its returns, nothing of that iteration is
  saved yet (no progress.csv row, no snapshot);
* ``record``: the reproduce runner's record (``METHOD_seedS.json``) is about to be renamed into place;
* ``profile``: the runner's ``dataset_profile.json`` likewise.

Every file the project writes goes through ``os.replace`` in :func:`rlkit.fileio.atomic_file` (looked
up at call time, so wrapping ``os.replace`` sees them all); the evaluation is
``rlkit.launchers.meta_train.evaluate`` (a module global the training loop calls by name).
:func:`install` checks that both still exist, so a rename in rlkit breaks this hook loudly instead of
letting the kill test pass without killing.

``KILL_AT=PHASE:N:NAME`` counts from the first hit written to NAME on (that hit is number 1): a restarted
command redoes part of what the killed one did (a generator resumes at its last checkpoint and rewrites
that checkpoint's files), so plain hit numbers of successive attempts would all fall near the start;
an anchor names a point of the run itself. NAME is the file's last two path components
(``task_003/step_00000200.npy``), as in the log.

``KILL_LOG=FILE`` appends ``PHASE<TAB>NAME`` per phase reached (before the kill, so the fatal one is
logged too): the test sizes its schedules from a clean run's log and checks each kill's phase from it.
Test-only code: nothing in rlkit knows about it.
"""

from __future__ import annotations

import inspect
import os
import re
import runpy
import signal
import sys
from pathlib import Path

PHASES = ("data", "snapshot", "evaluation", "record", "profile")
_RECORD = re.compile(r".+_seed\d+\.json")


def phase_of_write(dst: str | os.PathLike) -> str | None:
    """The phase that renaming a finished temp file onto ``dst`` belongs to (None: not a phase)."""
    name = Path(dst).name
    if name.endswith(".npy") or name == "dataset.json":
        return "data"
    if name.startswith("agent") and name.endswith(".pth"):
        return "snapshot"
    if name == "dataset_profile.json":
        return "profile"
    if _RECORD.fullmatch(name):
        return "record"
    return None


def write_name(dst: str | os.PathLike) -> str:
    """How the log and ``KILL_AT`` name a file: its last two path components."""
    parts = Path(dst).parts
    return "/".join(parts[-2:])


def parse_kill_at(text: str | None) -> tuple[str | None, int, str | None]:
    """``PHASE:N[:NAME]`` -> (PHASE, N, NAME); a malformed value is an error, never a run that kills nothing."""
    if not text:
        return None, 0, None
    phase, _, rest = text.partition(":")
    n, _, anchor = rest.partition(":")
    if phase not in PHASES or not n.isdigit() or int(n) < 1:
        raise SystemExit(f"KILL_AT={text!r}: expected PHASE:N[:NAME] with PHASE one of {', '.join(PHASES)} "
                         "and N >= 1")
    return phase, int(n), anchor or None


class Hits:
    """Counts the phases this process reaches; kills it at the chosen one."""

    def __init__(self, kill_at: str | None, log: str | None):
        self.phase, self.n, self.anchor = parse_kill_at(kill_at)
        self.log = log
        self.counts: dict[str, int] = {}
        self.armed = 0  # hits of the chosen phase since the anchor (since the start without one)
        self.anchored = self.anchor is None

    def reached(self, phase: str | None, name: str = "") -> None:
        if phase is None:
            return
        self.counts[phase] = self.counts.get(phase, 0) + 1
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:  # closed (so on disk) before any kill
                f.write(f"{phase}\t{name}\n")
        self.anchored = self.anchored or name == self.anchor
        if phase == self.phase and self.anchored:
            self.armed += 1
            if self.armed == self.n:
                os.kill(os.getpid(), signal.SIGKILL)


def install(hits: Hits) -> None:
    """Route ``os.replace`` and the meta-trainer's ``evaluate`` through ``hits``."""
    import rlkit.fileio
    from rlkit.launchers import meta_train

    # the names this hook relies on; a refactor that moves the writes or the evaluation must move it too
    assert "os.replace(" in inspect.getsource(rlkit.fileio.atomic_file), "atomic_file no longer calls os.replace"
    assert callable(getattr(meta_train, "evaluate", None)), "rlkit.launchers.meta_train.evaluate is gone"
    real_replace, real_evaluate = os.replace, meta_train.evaluate

    def replace(src, dst, *a, **kw):
        hits.reached(phase_of_write(os.fspath(dst)), write_name(os.fspath(dst)))
        return real_replace(src, dst, *a, **kw)

    def evaluate(*a, **kw):
        out = real_evaluate(*a, **kw)
        hits.reached("evaluation")
        return out

    os.replace = replace
    meta_train.evaluate = evaluate


def main(argv: list[str]) -> None:
    """Install the hooks, then run ``SCRIPT ARGS`` or ``-m MODULE ARGS`` as ``__main__``."""
    install(Hits(os.environ.get("KILL_AT"), os.environ.get("KILL_LOG")))
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


# ``python -c`` puts the current directory first on sys.path: run it from the repository root
BOOTSTRAP = "import sys; from tests.kill_hooks import main; main(sys.argv[1:])"


def hooked(cmd: list[str]) -> list[str]:
    """``[python, SCRIPT|-m MODULE, ARGS...]`` -> the same command started through the hooks."""
    return [cmd[0], "-c", BOOTSTRAP, *cmd[1:]]


def read_log(path: str | os.PathLike) -> list[tuple[str, str]]:
    """A ``KILL_LOG`` as (phase, name) pairs in the order they were reached ([] when none was)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [tuple(line.split("\t", 1)) for line in lines if line]
