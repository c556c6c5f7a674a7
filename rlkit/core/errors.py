"""The command-line error convention: one line ``error: ...`` on stderr, exit status 2.

Expected failures (bad input, missing or unreadable files, a busy run
directory) end a CLI through :func:`fail`; unexpected exceptions keep their
traceback, because those are bugs to report.
"""

from __future__ import annotations

import sys
from typing import NoReturn

USER_ERROR_EXIT = 2


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_EXIT)
