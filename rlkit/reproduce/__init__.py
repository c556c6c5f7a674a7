"""Reproduce the paper's comparison: dataset, every method x seed, records, table and figures.

    python -m rlkit.reproduce point-robot --scale cpu [--budget 50m] [--parallel N]

The plan of one comparison (which dataset, which methods and seeds, which
reductions of the paper's settings) is a committed file,
``configs/reproduce/ENV-SCALE.yaml`` (:mod:`rlkit.reproduce.plan`). The
runner (:mod:`rlkit.reproduce.runner`) drives the project's own CLIs as child
processes so that every piece resumes the way a user's run does; each finished
run leaves a small JSON record (:mod:`rlkit.reproduce.records`) that is
committed, and the results table and figures are assembled from the records
alone (:mod:`rlkit.reproduce.report`).
"""
