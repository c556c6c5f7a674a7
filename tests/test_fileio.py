"""The locks that keep writers apart work where fcntl does not exist (Windows), through filelock.

Before, :func:`rlkit.fileio.file_lock` was a silent no-op without fcntl: two generators on one
dataset could both rewrite dataset.json. Off Linux cannot run here, so fcntl is hidden from the
code under test, and a second process (with fcntl) probes the lock file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import filelock  # noqa: F401  (imported while fcntl is there: filelock's own flock backend)
import pytest

from rlkit.fileio import ExclusiveLock, file_lock

PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("busy")
"""


def probe(path: Path) -> str:
    """Whether another process can take the lock on ``path`` right now."""
    return subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.fixture
def no_fcntl(monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError, as on Windows


def test_file_lock_holds_without_fcntl(tmp_path, no_fcntl):
    path = tmp_path / ".lock"
    with file_lock(path):
        assert probe(path) == "busy"
    assert probe(path) == "free"


def test_an_exclusive_lock_holds_and_refuses_a_second_holder_without_fcntl(tmp_path, no_fcntl):
    path = tmp_path / "run" / ".lock"
    busy = lambda holder: RuntimeError(f"busy: {holder}")  # noqa: E731
    lock = ExclusiveLock.acquire(path, busy=busy, unwritable=lambda exc: RuntimeError(str(exc)))
    try:
        assert probe(path) == "busy"
        with pytest.raises(RuntimeError, match="^busy: "):
            ExclusiveLock.acquire(path, busy=busy, unwritable=lambda exc: RuntimeError(str(exc)))
    finally:
        lock.release()
    assert probe(path) == "free"
    ExclusiveLock.acquire(path, busy=busy, unwritable=lambda exc: RuntimeError(str(exc))).release()


def test_with_fcntl_the_lock_names_its_holder(tmp_path):
    path = tmp_path / ".lock"
    lock = ExclusiveLock.acquire(path, busy=lambda h: RuntimeError(h), unwritable=lambda e: RuntimeError(str(e)))
    try:
        assert probe(path) == "busy"
        import os

        with pytest.raises(RuntimeError, match=f"^{os.getpid()}$"):
            ExclusiveLock.acquire(path, busy=lambda h: RuntimeError(h), unwritable=lambda e: RuntimeError(str(e)))
    finally:
        lock.release()
    with file_lock(path):
        assert probe(path) == "busy"
