"""Run infrastructure shared by the CLIs: the run directory and its logs (``logger``)."""
