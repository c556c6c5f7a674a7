"""The command-line error convention: one line ``error: ...`` on stderr, exit status 2.

Every error a user can cause and fix (a bad config, a missing or damaged
dataset, a busy run directory, a full disk, a permission) is a
:class:`UserError` or an ``OSError``; :func:`cli` turns those into one line
that says what to do. Anything else keeps its traceback, because it is a bug
to report. This module sits below every other one, so that each layer's error
can derive from :class:`UserError` without importing upwards.
"""

from __future__ import annotations

import errno
import functools
import sys
from typing import Callable, NoReturn

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # a command stopped by Ctrl-C / SIGINT (128 + 2, as a shell reports it)


class UserError(Exception):
    """An expected failure whose message (one line) tells the user what to do."""


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_EXIT)


_OS_HINTS = {
    errno.ENOSPC: "free some disk space and run the same command again (it resumes)",
    errno.EDQUOT: "free some disk space (quota) and run the same command again (it resumes)",
    errno.EACCES: "check the permissions of that path, or choose another folder",
    errno.EPERM: "check the permissions of that path, or choose another folder",
    errno.EROFS: "that file system is read-only: choose another folder",
    errno.ENOENT: "check the path",
}


def describe(exc: BaseException) -> str:
    """One line for an expected failure; an OSError names the path and what to do about it."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        hint = _OS_HINTS.get(exc.errno or 0)
        return f"{exc.strerror}:{where}" + (f"; {hint}" if hint else "")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cli(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's ``main``: a :class:`UserError` or an ``OSError`` becomes ``error: ...``, exit 2;
    an interrupt becomes ``interrupted``, exit 130 (the shell's code for SIGINT), without a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except (UserError, OSError) as exc:
            print(f"error: {describe(exc)}", file=sys.stderr)
            return USER_ERROR_EXIT
        except KeyboardInterrupt:
            # Ctrl-C (or the reproduce runner's stop): files were closed on the way out, and what
            # the command saves as it goes (checkpoints, snapshots) is what the next run resumes from
            print("interrupted", file=sys.stderr)
            return INTERRUPTED_EXIT

    return wrapper
