#!/usr/bin/env python
"""The authors' command name, kept: the code lives in :mod:`rlkit.cli.meta_train` (also the console script `csro-train`)."""

import sys

from rlkit.cli.meta_train import main, parse_args  # noqa: F401 (the command's API, for scripts that import it)

if __name__ == "__main__":
    sys.exit(main())
