#!/usr/bin/env python
"""The authors' command name, kept: the code lives in :mod:`rlkit.cli.show_path` (also the console script `csro-show-path`)."""

import sys

from rlkit.cli.show_path import main, parse_args, pick_tasks, rollouts, labelled_episodes, make_figures, check_same_env  # noqa: F401 (the command's API, for scripts that import it)

if __name__ == "__main__":
    sys.exit(main())
