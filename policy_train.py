#!/usr/bin/env python
"""The authors' command name, kept: the code lives in :mod:`rlkit.cli.policy_train` (also the console script `csro-generate`)."""

import sys

from rlkit.cli.policy_train import main, parse_args, select_tasks, build_job  # noqa: F401 (the command's API, for scripts that import it)

if __name__ == "__main__":
    sys.exit(main())
