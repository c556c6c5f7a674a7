"""The run directory: everything one training run leaves behind.

``output/ENV/EXP_NAME/seedN/`` holds

* ``variant.json``  the resolved config,
* ``git.txt``       revision, ``git status --porcelain`` and diff of the code,
* ``debug.log``     the run's text log (also echoed to stderr),
* ``progress.csv``  one row per iteration, readable by viskit and pandas,
* TensorBoard event files with the same scalars under namespaced tags
  (``trainer/QF Loss``, ``eval/Average_OnlineReturn_all_test_tasks``) and,
  once the run finishes, its key hyperparameters and final metrics (hparams),
* ``agent_itr_K.pth`` / ``agent.pth`` snapshots, written atomically.

A :class:`RunLogger` object owns one run directory; there is no module-level
logger state, so two runs (or a test and a run) can log side by side.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import io
import json
import logging
import math
import numbers
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlkit.config import json_default, save_config
from rlkit.core.progress import ConsoleHandler
from rlkit.errors import UserError
from rlkit.fileio import ExclusiveLock, atomic_file, atomic_write_text, remove_stale_temps

PROGRESS_FILE = "progress.csv"
VARIANT_FILE = "variant.json"
GIT_FILE = "git.txt"
DEBUG_LOG = "debug.log"
HPARAMS_DIR = "hparams"  # TensorBoard HParams session of the finished run (replaced when a resume finishes it again)
LAST_SNAPSHOT = "agent.pth"
_ITR_SNAPSHOT = re.compile(r"^agent_itr_(\d+)\.pth$")
REPO_DIR = Path(__file__).resolve().parents[2]


class RunDirError(UserError, RuntimeError):
    """The run directory cannot be created or reopened as asked."""


class SnapshotError(UserError, RuntimeError):
    """A snapshot is missing, truncated or not a snapshot; the message names the file."""


def run_dir_path(base_log_dir: str | os.PathLike, env_name: str, exp_name: str, seed: int) -> Path:
    """``BASE/ENV/EXP_NAME/seedN``: the layout the reference uses (without its timestamp)."""
    for what, name in (("env_name", env_name), ("exp_name", exp_name)):
        if not name or "/" in name or os.sep in name or name in (".", ".."):
            raise RunDirError(f"{what} {name!r} cannot be used as a directory name")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RunDirError(f"seed must be an int, got {seed!r}")
    return Path(base_log_dir) / env_name / exp_name / f"seed{seed}"


# --------------------------------------------------------------------------------------
# small file helpers


def _unlink_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _git(repo: Path, *args: str) -> str:
    # --no-optional-locks: `git status` must not rewrite the index of the user's checkout.
    out = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def git_report(repo_dir: str | os.PathLike = REPO_DIR) -> str:
    """Revision, status and diff of ``repo_dir``; a note instead when git or the repo is absent."""
    repo = Path(repo_dir)
    try:
        top = _git(repo, "rev-parse", "--show-toplevel").strip()
    except FileNotFoundError:
        return "git is not installed; revision unknown\n"
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr or "").strip().splitlines()
        return f"{repo} is not inside a usable git repository ({why[0] if why else 'git failed'}); revision unknown\n"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"git failed in {repo} ({type(exc).__name__}); revision unknown\n"
    parts = [f"repository: {top}"]
    try:
        parts.append(f"revision: {_git(repo, 'rev-parse', 'HEAD').strip()}")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        parts.append("revision: none (no commits yet)")
    for title, args in (("status --porcelain", ("status", "--porcelain")), ("diff HEAD", ("diff", "HEAD"))):
        try:
            body = _git(repo, *args)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            body = f"(git {args[0]} failed: {exc})\n"
        parts.append(f"\n--- git {title} ---\n{body}")
    return "\n".join(parts).rstrip("\n") + "\n"


def _scalar(key: str, value: Any) -> Any:
    """A plain python scalar (or string) for the CSV, from numpy/torch scalars too."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        size = getattr(value, "size", None)
        numel = value.numel() if hasattr(value, "numel") else (size if isinstance(size, int) else 1)
        if numel != 1:
            raise TypeError(f"record_tabular: value for {key!r} must be a scalar, got shape {getattr(value, 'shape', '?')}")
        value = value.item()
    if isinstance(value, bool):
        return int(value)  # viskit parses numbers; True would not plot
    if value is None or isinstance(value, (str, numbers.Number)):
        return value
    raise TypeError(f"record_tabular: value for {key!r} must be a number or a string, got {type(value).__name__}")


def _format_table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {_fmt(v)}" for k, v in rows]
    rule = "-" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


# --------------------------------------------------------------------------------------
# snapshots


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a hidden temp file in the same folder, then rename over ``path``.

    A crash or a full disk mid-write leaves the previous file intact and no
    partial ``agent*.pth`` that a resume would pick up.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as f:
        try:
            torch.save(to_cpu(obj), f)
        except RuntimeError as exc:  # checked while the partial temp file still takes its space
            raise _save_failure(path, exc) from None
    return path


# below this much free space a failed write is taken for a full disk
_NEARLY_FULL = 64 * 2**20


def _save_failure(path: Path, exc: RuntimeError) -> OSError:
    """The OSError a failed ``torch.save`` stands for.

    torch's zip writer reports a short write (a disk that fills up mid-file) as
    ``RuntimeError: ... unexpected pos``, not as the ENOSPC it is; as an OSError
    it gets the one-line message and the what-to-do hint of every other full
    disk (rlkit.errors.describe) instead of a traceback.
    """
    try:
        full = shutil.disk_usage(path.parent).free < _NEARLY_FULL
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OSError(errno.EIO, f"cannot write the snapshot ({reason})", str(path))


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (dicts, lists and tuples walked).

    Snapshots are written with CPU tensors so that a machine without a GPU can
    read a GPU run's files; loading moves them back with ``load_state_dict``.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def numbered_snapshots(run_dir: str | os.PathLike) -> dict[int, Path]:
    """``{K: RUN_DIR/agent_itr_K.pth}`` for the numbered snapshots present, sorted by K."""
    found = {int(m.group(1)): p for p in Path(run_dir).iterdir() if (m := _ITR_SNAPSHOT.match(p.name))}
    return dict(sorted(found.items()))


def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    """The snapshot to resume from: ``agent.pth`` unless an ``agent_itr_K.pth`` is newer.

    ``agent.pth`` is rewritten every iteration, so it is normally the newest;
    the modification-time check covers a run that stopped between the two writes
    or saved only every K iterations.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    numbered = numbered_snapshots(run_dir)
    newest_itr = numbered[max(numbered)] if numbered else None
    last = run_dir / LAST_SNAPSHOT
    if last.is_file():
        if newest_itr is None or last.stat().st_mtime >= newest_itr.stat().st_mtime:
            return last
    return newest_itr


def newest_loadable_snapshot(run_dir: str | os.PathLike) -> tuple[Path | None, dict | None, list[str]]:
    """(path, state, skipped) of the snapshot of ``run_dir`` with the highest iteration that loads.

    Ordered by the iteration recorded in the snapshot (``agent.pth``) or its
    name (``agent_itr_K.pth``), not by modification time, which a copied
    run directory does not keep. A snapshot cut short by a full disk or a kill
    cannot block a resume while an older intact one exists: each one that
    fails to load is skipped, and ``skipped`` says which and why (one line each).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None, None, []
    skipped, loaded = [], []  # loaded: (iteration, is agent.pth, path, state)
    last = run_dir / LAST_SNAPSHOT
    if last.is_file():
        try:
            state = load_snapshot(last)
            loaded.append((int(state.get("iteration", -1)), 1, last, state))
        except SnapshotError as exc:
            skipped.append(str(exc))
    for itr, path in reversed(numbered_snapshots(run_dir).items()):
        if loaded and loaded[0][0] >= itr:
            break  # agent.pth is at least as new as every remaining numbered snapshot
        try:
            return path, load_snapshot(path), skipped
        except SnapshotError as exc:
            skipped.append(str(exc))
    if loaded:
        return loaded[0][2], loaded[0][3], skipped
    return None, None, skipped


def load_snapshot(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a snapshot dict safely; any failure is a one-line :class:`SnapshotError` naming the file.

    Always ``weights_only=True``: a snapshot may come from anywhere (a shared
    run folder, a downloaded dataset's ``_generator/`` state), and a full
    unpickle would run whatever code a planted file carries. Snapshots hold
    only tensors, numbers, strings and containers of them, which the safe
    loader accepts; anything else is refused. ``map_location`` defaults to the
    CPU: ``load_state_dict`` then moves each tensor to its module's device, and
    optimizer state never lands on the GPU as thousands of small transfers.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise SnapshotError(f"snapshot {str(path)!r} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # the safe unpickler names the global it refused; other failures are damaged bytes
        if "GLOBAL" in str(exc) or "Unsupported global" in str(exc):
            raise SnapshotError(
                f"refusing to load {str(path)!r}: it holds Python objects besides tensors and numbers "
                "(a foreign or tampered file; loading it could run code). Delete it or regenerate it."
            ) from None
        raise SnapshotError(f"cannot load snapshot {str(path)!r} (truncated or corrupted?): "
                            "not a readable torch file") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SnapshotError(
            f"cannot load snapshot {str(path)!r} (truncated or corrupted?): {type(exc).__name__}: {reason}"
        ) from None
    if not isinstance(state, dict):
        raise SnapshotError(f"snapshot {str(path)!r} holds a {type(state).__name__}, expected a dict")
    return state


# --------------------------------------------------------------------------------------
# one writer per run directory


LOCK_FILE = ".lock"


class RunLock(ExclusiveLock):
    """``RUN_DIR/.lock``, held for the run's life: one writer per run directory."""

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":  # type: ignore[override]
        run_dir = Path(run_dir)
        return super().acquire(
            run_dir / LOCK_FILE,
            busy=lambda holder: RunDirError(f"run directory {str(run_dir)!r} is in use by process {holder}; wait "
                                            "for it to finish or use another --exp_name / --seed"),
            unwritable=lambda exc: RunDirError(f"cannot write in run directory {str(run_dir)!r}: "
                                               f"{exc.strerror or exc}"))


def holds_a_run(run_dir: Path) -> bool:
    """A run directory "holds a run" once it has a snapshot or a progress row.

    A launch that failed before its first iteration leaves only variant.json,
    git.txt, debug.log and TensorBoard files: that is not a run, and the
    corrected command may reuse the directory.
    """
    run_dir = Path(run_dir)
    if (run_dir / LAST_SNAPSHOT).is_file() or numbered_snapshots(run_dir):
        return True
    progress = run_dir / PROGRESS_FILE
    if progress.is_file():
        with open(progress, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if line.strip()) > 1  # a header alone is no row
    return False


# what every message that blocks a run directory offers, so that a retry is never stuck
START_OVER = "start it over with --restart (moves the old folder aside, deletes nothing) or use another --exp_name"


def move_aside(run_dir: Path, now: _dt.datetime | None = None) -> Path:
    """Rename ``EXP/seedN`` to ``EXP/replaced-seedN-YYYYmmdd-HHMMSS`` (never deleted); returns the new path.

    Taken under the run's lock, so a live run is never moved from under its
    writer. The new name does not start with ``seed``: tools that read an
    experiment folder's ``seed*`` runs (rlkit.plot) do not count it as a seed.
    """
    run_dir = Path(run_dir)
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"replaced-{run_dir.name}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"replaced-{run_dir.name}-{stamp}-{n}")
    lock = RunLock.acquire(run_dir)
    try:
        os.rename(run_dir, target)
    finally:
        lock.release()
    return target


def clear_failed_start(run_dir: Path) -> None:
    """Remove what a failed start left (its TensorBoard events, empty progress); keep debug.log, which appends."""
    for p in Path(run_dir).iterdir():
        if p.name.startswith("events.out.tfevents") or p.name == PROGRESS_FILE:
            _unlink_quietly(p)


# --------------------------------------------------------------------------------------
# the run logger


class RunLogger:
    """One run directory and its logs. Build it with :meth:`create`.

    Per iteration: ``record_tabular`` any number of scalars,
    then ``dump_tabular(step)`` writes one progress.csv row, the TensorBoard
    scalars and a table in debug.log. Column names are the caller's, unchanged.
    """

    def __init__(self, run_dir: Path, *, tensorboard: bool, console: bool, epoch_key: str):
        self.run_dir = run_dir
        self.epoch_key = epoch_key
        self.progress_path = run_dir / PROGRESS_FILE
        self._columns: list[str] = []
        self._pending: dict[str, tuple[Any, str]] = {}  # column -> (value, TensorBoard tag)
        self._tb = None
        self._lock: RunLock | None = None
        self._sinks: list = []  # extra destinations of each row (e.g. Weights & Biases), see add_sink
        self.last_row: dict[str, tuple[Any, str]] = {}  # column -> (value, tag) of the last dumped row
        self.log = self._make_text_logger(console)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        base_log_dir: str | os.PathLike,
        env_name: str,
        exp_name: str,
        seed: int,
        variant: Mapping[str, Any],
        *,
        resume: bool = False,
        truncate_to_epoch: int | None = None,
        tensorboard: bool = True,
        console: bool = True,
        repo_dir: str | os.PathLike | None = None,
        epoch_key: str = "Epoch",
    ) -> RunLogger:
        """Make (or with ``resume=True`` reopen) ``BASE/ENV/EXP_NAME/seedN``.

        A directory that already holds files is never overwritten without
        ``resume``. When resuming from a snapshot taken after iteration K-1,
        pass ``truncate_to_epoch=K``: progress.csv keeps only rows with
        ``Epoch < K`` and TensorBoard discards events from step K on, so the
        repeated iterations are not logged twice.
        """
        run_dir = run_dir_path(base_log_dir, env_name, exp_name, seed)
        if truncate_to_epoch is not None and not resume:
            raise RunDirError("truncate_to_epoch only applies when resuming (resume=True)")
        if resume and not run_dir.is_dir():
            raise RunDirError(f"cannot resume: no run in {str(run_dir)!r}")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {str(run_dir)!r}: {exc.strerror or exc}") from None
        lock = RunLock.acquire(run_dir)  # before looking inside: two launches never both decide "new"
        remove_stale_temps(run_dir)  # snapshot writes cut short by a kill
        try:
            has_run = holds_a_run(run_dir)
            if has_run and not resume:
                if latest_snapshot(run_dir) is None:  # e.g. a full disk at the first snapshot
                    raise RunDirError(
                        f"run directory {str(run_dir)!r} holds progress rows but no snapshot, so there is "
                        f"nothing to resume; {START_OVER}")
                raise RunDirError(
                    f"run directory {str(run_dir)!r} already holds a run; use --resume to continue it, "
                    "--restart to move it aside and start over, or another --exp_name / --seed"
                )
            if resume and not has_run:
                raise RunDirError(f"cannot resume: no run in {str(run_dir)!r}")
            if not has_run:
                clear_failed_start(run_dir)
        except BaseException:
            lock.release()
            raise

        self = cls(run_dir, tensorboard=tensorboard, console=console, epoch_key=epoch_key)
        self._lock = lock
        try:
            now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            self.log.info("%s run %s at %s", "resuming" if resume else "starting", run_dir, now)
            self.log.info("command: %s", " ".join([sys.executable, *sys.argv]))
            self.log.info("host %s, python %s", platform.node(), platform.python_version())
            git_text = git_report(Path(repo_dir) if repo_dir is not None else REPO_DIR)
            if resume:
                self._reopen(variant, git_text, now, truncate_to_epoch)
            else:
                save_config(variant, run_dir / VARIANT_FILE)
                atomic_write_text(run_dir / GIT_FILE, git_text)
            if tensorboard:
                self._open_tensorboard(purge_step=truncate_to_epoch)
        except BaseException:
            self.close()
            raise
        return self

    def _reopen(self, variant: Mapping, git_text: str, now: str, truncate_to_epoch: int | None) -> None:
        variant_path = self.run_dir / VARIANT_FILE
        old = None
        if variant_path.is_file():
            try:
                old = json.loads(variant_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
        new = json_roundtrip(variant)
        if old != new:
            if old is not None:
                stamp = now.replace(":", "").replace("-", "")[:15]
                keep = variant_path.with_name(f"variant.before_resume_{stamp}.json")
                shutil.copyfile(variant_path, keep)
                changed = ", ".join(changed_keys(old, new)) or "(formatting only)"
                self.log.warning("config differs from the original run in: %s; old one kept as %s", changed, keep.name)
            save_config(variant, variant_path)
        with open(self.run_dir / GIT_FILE, "a", encoding="utf-8") as f:
            f.write(f"\n=== resumed at {now} ===\n{git_text}")
        self._load_progress(truncate_to_epoch)

    def _load_progress(self, truncate_to_epoch: int | None) -> None:
        if not self.progress_path.is_file():
            return
        with open(self.progress_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        self._columns = columns
        if truncate_to_epoch is None:
            return
        kept = [row for i, row in enumerate(rows) if self._row_before(row, i, truncate_to_epoch)]
        if len(kept) != len(rows):
            self.log.info(
                "progress.csv: dropped %d row(s) with %s >= %d (they will be redone)",
                len(rows) - len(kept), self.epoch_key, truncate_to_epoch,
            )
        self._rewrite_progress(columns, kept)

    def _row_before(self, row: dict, index: int, k: int) -> bool:
        raw = row.get(self.epoch_key)
        if raw is None:  # no epoch column: rows are iterations 0, 1, ... in order
            return index < k
        try:
            return float(raw) < k
        except ValueError:
            return True  # unparsable epoch: keep the row rather than lose data

    def _make_text_logger(self, console: bool) -> logging.Logger:
        # A logger per run directory, not propagating to the root logger, so the
        # handlers (and therefore the files) of two runs never mix.
        log = logging.getLogger(f"csro.run.{self.run_dir.resolve()}")
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
        log.setLevel(logging.DEBUG)
        log.propagate = False
        file_handler = logging.FileHandler(self.run_dir / DEBUG_LOG, mode="a", encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
        log.addHandler(file_handler)
        if console:
            stream = ConsoleHandler(sys.stderr)  # above a progress bar, not into its line
            stream.setLevel(logging.INFO)
            stream.setFormatter(logging.Formatter("%(asctime)s | %(message)s", "%H:%M:%S"))
            log.addHandler(stream)
        return log

    def _open_tensorboard(self, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)

    # ---- text ---------------------------------------------------------------------
    def info(self, msg: str, *args: Any) -> None:
        self.log.info(msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log.warning(msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        self.log.debug(msg, *args)

    # ---- tabular ------------------------------------------------------------------
    def record_tabular(self, key: str, value: Any, *, group: str | None = None) -> None:
        """Record one scalar for this iteration. CSV column ``key``; TensorBoard tag ``group/key``.

        A key that already starts with ``group/`` (``eval/online_return_episode_1``)
        keeps it as its tag instead of doubling it (``eval/eval/...``).
        """
        key = str(key)
        if key in self._pending:
            raise ValueError(f"record_tabular: {key!r} was already recorded this iteration")
        tag = key if not group or key.startswith(f"{group}/") else f"{group}/{key}"
        self._pending[key] = (_scalar(key, value), tag)

    def dump_tabular(self, step: int) -> None:
        """Write the recorded scalars: one progress.csv row, TensorBoard at ``step``, a debug.log table."""
        if not self._pending:
            return
        row = {key: value for key, (value, _) in self._pending.items()}
        new_columns = [key for key in row if key not in self._columns]
        if new_columns and self._columns and self.progress_path.is_file():
            self._widen_progress(new_columns)
        elif new_columns:
            self._columns += new_columns
        write_header = not self.progress_path.is_file() or self.progress_path.stat().st_size == 0
        with open(self.progress_path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, restval="")
            if write_header:
                writer.writeheader()
            writer.writerow(row)
            f.flush()
        if self._tb is not None:
            for key, (value, tag) in self._pending.items():
                if isinstance(value, numbers.Real) and not isinstance(value, bool):
                    self._tb.add_scalar(tag, float(value), global_step=int(step))
            self._tb.flush()
        tagged = {tag: value for value, tag in self._pending.values()}  # W&B keys grouped as the tags are
        for sink in self._sinks:
            sink.log(tagged, int(step))
        self.log.debug("iteration %s\n%s", step, _format_table([(k, v) for k, (v, _) in self._pending.items()]))
        self.last_row, self._pending = self._pending, {}

    def add_sink(self, sink: Any) -> None:
        """Also send each row to ``sink``: ``sink.log(row, step)`` per row, ``sink.close()`` at :meth:`close`."""
        self._sinks.append(sink)

    def write_hparams(self, hparams: Mapping[str, Any], metrics: list[str]) -> None:
        """The run's hyperparameters and final metrics for TensorBoard's HParams tab: ``RUN_DIR/hparams/``.

        ``metrics`` are progress.csv columns of the last row. The session lives in
        a folder of its own, with the final value of each metric, and that folder
        is replaced each time the run finishes: a run extended by a resume keeps
        one session, with its final settings and results (one written into the
        run's own events stayed there, and TensorBoard showed the first, stale one).
        """
        if self._tb is None:
            return
        import shutil

        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        final = {self.last_row[k][1]: self.last_row[k][0] for k in metrics if k in self.last_row}
        values = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in hparams.items()}
        target = self.run_dir / HPARAMS_DIR
        stage = self.run_dir / f".{HPARAMS_DIR}.writing"
        shutil.rmtree(stage, ignore_errors=True)
        writer = SummaryWriter(log_dir=str(stage))
        try:
            for summary in hparams_summary(values, final):
                writer.file_writer.add_summary(summary)
            for tag, value in final.items():
                writer.add_scalar(tag, float(value), global_step=0)
        finally:
            writer.close()
        old = self.run_dir / f".{HPARAMS_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        os.rename(stage, target)
        shutil.rmtree(old, ignore_errors=True)

    def _widen_progress(self, new_columns: list[str]) -> None:
        """A key first seen after some rows: rewrite progress.csv with the wider header.

        viskit and pandas read a single header, so appending a longer row under
        the old header would misalign every later column.
        """
        with open(self.progress_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self._columns = self._columns + new_columns
        self.log.debug("progress.csv: new column(s) %s", ", ".join(new_columns))
        self._rewrite_progress(self._columns, rows)

    def _rewrite_progress(self, columns: list[str], rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.progress_path, buf.getvalue())

    # ---- snapshots ----------------------------------------------------------------
    def save_snapshot(self, state: Mapping[str, Any], name: str) -> Path:
        """Write ``state`` as ``RUN_DIR/name`` (e.g. ``agent_itr_5.pth``) atomically."""
        if not name or Path(name).name != name:
            raise ValueError(f"snapshot name must be a plain file name, got {name!r}")
        path = atomic_torch_save(dict(state), self.run_dir / name)
        self.log.debug("saved snapshot %s", name)
        return path

    def save_iteration_snapshot(self, state: Mapping[str, Any], itr: int, gap: int = 5) -> list[Path]:
        """The reference's "gap_and_last" policy: ``agent.pth`` always, ``agent_itr_K.pth`` every ``gap``.

        ``agent.pth`` is written first and the numbered file copied from it, so
        an interruption never leaves a numbered snapshot newer than ``agent.pth``.
        """
        paths = [self.save_snapshot(state, LAST_SNAPSHOT)]
        if gap > 0 and itr % gap == 0:
            target = self.run_dir / f"agent_itr_{itr}.pth"
            with atomic_file(target, "wb") as dst, open(paths[0], "rb") as src:
                shutil.copyfileobj(src, dst)
            paths.append(target)
        return paths

    # ---- teardown -----------------------------------------------------------------
    def close(self) -> None:
        """Flush and close TensorBoard, the sinks and the log files, release the run lock (idempotent)."""
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        for handler in list(self.log.handlers):
            self.log.removeHandler(handler)
            handler.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None and self.log.handlers:
            self.log.error("run stopped by %s: %s", exc[0].__name__, exc[1])
        self.close()


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), to compare configs."""
    return json.loads(json.dumps(obj, default=json_default))


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two nested configs differ (a key only one side has counts; NaN equals NaN)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            out += changed_keys(old.get(key, _MISSING), new.get(key, _MISSING), f"{prefix}{key}.")
        return out
    if old != new and not (isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new)):
        return [prefix.rstrip(".")]
    return []


_MISSING = object()


# Where and how a run ran, not what it computes: a resumed run may differ here (a moved
# checkout, another device, a new log folder, --no-verify, --wandb) and still be the same experiment.
RUN_CONTROL_KEYS = ("util_params", "algo_params.data_dir", "algo_params.verify_data", "algo_params.dump_eval_paths",
                    "seed_list", "seed", "exp_name", "device")
# ...except the float precision, which changes what the run computes.
COMPUTED_RUN_KEYS = ("util_params.dtype",)
# Keys a run may be extended along: more iterations continue the same run (the
# per-iteration seeds do not depend on the total), fewer would cut a longer run
# at another point than the one asked for.
EXTENDABLE_KEYS = ("algo_params.num_iterations",)


def _at(tree: Mapping, path: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def settings_drift(ran: Mapping, asked: Mapping, limit: int = 3, *, resuming: bool = False) -> list[str]:
    """How the settings a run ran with (its variant.json) differ from what is asked now.

    A config edited after a run started (another learning rate, another
    algo_type) must not be resumed into that run, nor a finished run taken for
    the new settings' result: one folder would mix two experiments under one
    name. Run-control keys (:data:`RUN_CONTROL_KEYS`) and keys only one side has
    (options added to the code since) are not compared; an asked ``auto``
    matches whatever value the run resolved it to. With ``resuming`` (a run
    about to continue, or a sweep deciding a run), asking for more iterations
    than the run was started with extends it (:data:`EXTENDABLE_KEYS`); a
    finished run's record never matches another length. One entry per
    differing key (``key: old then, new now``), at most ``limit``.
    """
    asked = json_roundtrip(asked)  # as variant.json holds it: tuples become lists
    diffs = []
    for path in sorted(changed_keys(ran, asked)):
        if path not in COMPUTED_RUN_KEYS and any(path == k or path.startswith(k + ".") for k in RUN_CONTROL_KEYS):
            continue
        then, now = _at(ran, path), _at(asked, path)
        if then is _MISSING or now is _MISSING or now == "auto":
            continue
        if resuming and path in EXTENDABLE_KEYS and isinstance(then, int) and isinstance(now, int) and then <= now:
            continue
        diffs.append(f"{path}: {then!r} then, {now!r} now")
    return diffs[:limit] + ([f"and {len(diffs) - limit} more"] if len(diffs) > limit else [])
