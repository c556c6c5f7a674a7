"""Golden regression: a tiny fixed-seed pipeline must reproduce the committed progress tables.

A failure here means a change altered what users' runs compute. If that was
the intent, regenerate with ``make golden`` and say why in the commit; if not,
the change has a bug. See ``tests/golden/golden_run.py``.
"""

import numpy as np
import pandas as pd
import pytest

from tests.golden.golden_run import VARIANTS, golden_path, golden_tables

# Same machine type, same torch build, one thread: differences come only from
# reordered float operations, which Adam can amplify over 15 steps to ~1e-5.
RTOL, ATOL = 1e-4, 1e-6


@pytest.fixture(scope="module")
def fresh_tables(tmp_path_factory):
    return golden_tables(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_progress_equals_the_committed_golden_table(fresh_tables, name):
    expected = pd.read_csv(golden_path(name))
    got = fresh_tables[name]
    assert list(got.columns) == list(expected.columns), "progress.csv columns changed"
    assert len(got) == len(expected)
    for col in expected.columns:
        np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name}: column {col!r} differs from the golden table")


def test_golden_variants_really_differ():
    """The two goldens exercise different code (the BRAC path changes the losses and adds columns)."""
    a, b = pd.read_csv(golden_path("csro")), pd.read_csv(golden_path("csro-brac"))
    assert "Dual Critic Loss" in b.columns and "Dual Critic Loss" not in a.columns
    assert not np.allclose(a["Policy Loss"], b["Policy Loss"])
