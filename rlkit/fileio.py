"""Atomic file writes, the project's one implementation.

Every file that a resume, a reader or another process may look at (snapshots,
variant.json, progress.csv, dataset files, dataset.json, records) is written
under a hidden temporary name beside its target and renamed over it: a kill or
a full disk leaves the old file or the new one, never half of one. The temp
name carries the writer's PID so that a later writer can delete what a killed
one left (:func:`remove_stale_temps`). The locks that keep writers apart
(:func:`file_lock`, :class:`ExclusiveLock`) live here too. This module sits at
the bottom layer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Callable, Iterator

TMP_MARK = ".tmp-"


def temp_name_for(path: Path) -> Path:
    """``.NAME.tmp-PID-RANDOM`` beside ``path``: hidden, unique, and naming its writer."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def _writer_pid(name: str) -> int | None:
    try:
        return int(name.rsplit(TMP_MARK, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> int:
    """Delete temp files whose writer process is gone; returns how many. Live writers' files stay."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for p in folder.rglob(".*") if recursive else folder.glob(".*"):
        pid = _writer_pid(p.name) if is_temp_name(p.name) else None
        if pid is not None and not _alive(pid):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    return removed


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the rename itself) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, fsync: bool = True) -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success rename it over ``path``.

    With ``fsync`` the data is flushed before the rename and the folder after
    it, so a machine crash cannot leave an empty file under the final name
    either; without it only process kills are covered. The temp file is opened
    normally, so it gets the umask's permissions (``mkstemp`` would give 0600).

    An OSError of the write itself names ``path``: ``write()`` on a full disk
    raises one that names no file, and the temp file's name means nothing to
    the user (rlkit.errors.describe puts the name in the error line).
    """
    path = Path(path)
    tmp = temp_name_for(path)
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with open(tmp, mode.replace("w", "x"), **kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno is not None and exc.filename in (None, str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview, *, fsync: bool = True) -> None:
    with atomic_file(path, "wb", fsync=fsync) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    with atomic_file(path, "w", fsync=fsync) as f:
        f.write(text)


# --------------------------------------------------------------------------------------
# locks: one writer at a time


def _fcntl():
    """The fcntl module where the platform has one (every POSIX system), else None.

    With fcntl the locks are ``flock``s, as they always were on Linux: the kernel drops them when
    their process dies, however it dies. Without it (Windows) they are :mod:`filelock`'s (a
    dependency of torch, so always installed), which locks the file with the platform's own call.
    """
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (created if missing), held for the ``with`` block.

    The reference runs one data-generation process per task, all writing into
    the same dataset folder; the lock serialises their read-modify-write of
    ``dataset.json``. A POSIX ``flock``, or :mod:`filelock` where fcntl does not
    exist (before, the lock was a no-op there).
    """
    fcntl = _fcntl()
    if fcntl is None:
        from filelock import FileLock

        with FileLock(os.fspath(path)):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def lock_holder(path: Path) -> str | None:
    """Who holds the :class:`ExclusiveLock` at ``path`` (the PID it wrote), or None when nobody does.

    Asked with a shared, non-blocking lock on a read-only descriptor, so asking changes nothing (and works
    on a dataset one may not write). None also where it cannot be told (no fcntl, no such file)."""
    fcntl = _fcntl()
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 64).decode(errors="replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class ExclusiveLock:
    """An exclusive lock on a lock file, held until :meth:`release` (or the process ends).

    The operating system drops the lock when its process dies however it dies,
    so a killed job never leaves a stale lock behind; the PID written into the
    file (with fcntl) only serves the message of the process that finds it busy.
    Without fcntl it is a :mod:`filelock` lock, whose holder the message cannot name.
    """

    def __init__(self, fd: int | None, portable=None):
        self._fd: int | None = fd
        self._portable = portable  # a filelock.FileLock where fcntl does not exist

    @classmethod
    def acquire(cls, path: Path, busy: Callable[[str], Exception], unwritable: Callable[[OSError], Exception]):
        """Take the lock at ``path`` or raise ``busy(holder)`` / ``unwritable(exc)``."""
        fcntl = _fcntl()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                return cls._acquire_portable(path, busy)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise unwritable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise busy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(fd)

    @classmethod
    def _acquire_portable(cls, path: Path, busy: Callable[[str], Exception]):
        from filelock import FileLock, Timeout

        lock = FileLock(os.fspath(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise busy("another process") from None
        return cls(None, lock)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._portable is not None:
            self._portable.release()
            self._portable = None
