"""CSRO (offline meta-RL): the package behind the commands listed in :mod:`rlkit.cli`.

When one of those commands starts (and only then), Ctrl-C or SIGTERM during its imports (torch
takes seconds) ends it in one line rather than a traceback: :func:`rlkit.errors.guard_startup`.
"""

from rlkit.errors import guard_startup as _guard_startup, started_as_cli as _started_as_cli

if _started_as_cli():
    _guard_startup()
