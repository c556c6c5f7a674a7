"""The package's commands. Each is also a console script (pyproject ``[project.scripts]``) and,
for the authors' users, a thin script at the repository root with the name they know:

| console script | module | root script |
|---|---|---|
| ``csro-generate`` | :mod:`rlkit.cli.policy_train` | ``policy_train.py`` |
| ``csro-train`` | :mod:`rlkit.cli.meta_train` | ``launch_experiment.py`` |
| ``csro-show-path`` | :mod:`rlkit.cli.show_path` | ``show_path.py`` |
| ``csro-evaluate`` | :mod:`rlkit.evaluate` | ``python -m rlkit.evaluate`` |
| ``csro-context-shift`` | :mod:`rlkit.context_shift` | ``python -m rlkit.context_shift`` |
| ``csro-corro-negatives`` | :mod:`rlkit.corro_negatives` | ``python -m rlkit.corro_negatives`` |
| ``csro-plot`` | :mod:`rlkit.plot` | ``python -m rlkit.plot`` |
| ``csro-data`` | :mod:`rlkit.data.__main__` | ``python -m rlkit.data`` |
| ``csro-reproduce`` | :mod:`rlkit.reproduce.__main__` | ``python -m rlkit.reproduce`` |
"""
