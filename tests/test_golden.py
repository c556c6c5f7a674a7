"""Golden regression: a tiny fixed-seed pipeline must reproduce the committed progress tables.

A failure here means a change altered what users' runs compute. If that was
the intent, regenerate with ``make golden`` and say why in the commit; if not,
the change has a bug. See ``tests/golden/golden_run.py``.
"""

import numpy as np
import pandas as pd
import pytest

from tests.golden.golden_run import VARIANTS, golden_path, golden_tables

# The pipeline computes in float64 with one thread, so what is left between hosts is
# the rounding of reordered float64 operations (vector width, MKL's kernel choice).
# Measured against these tables (max relative difference over every column):
# ATEN_CPU_CAPABILITY=avx2 and MKL_ENABLE_INSTRUCTIONS=SSE4_2 0 (same bits),
# ATEN_CPU_CAPABILITY=default 1.3e-10, MKL_CBWR=AVX2 6.2e-11, MKL_CBWR=COMPATIBLE
# 1.8e-10 -- the worst are small z means. rtol 1e-7 leaves a factor ~500 for other
# hosts and still catches small changes of the computation: z_loss_weight 10 -> 10.001
# moves 12-16 columns of each variant with FOCAL's loss by up to 1e-4..1.4e-3. (In
# float32 the kernel choice alone moved the z means by 9%.) ATOL only spares exact zeros.
RTOL, ATOL = 1e-7, 1e-12


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


def test_golden_variants_really_differ(fresh_tables):
    """The variants exercise different code, in what this code computes now (not only in the committed
    CSVs): BRAC adds the dual critic, only CSRO has the CLUB statistics, only offline PEARL the KL, CORRO
    its InfoNCE without FOCAL's metric, UNICORN-SS the metric with its decoder's reconstruction, and
    every pair of variants trains to different losses (by more than the tolerance the tables are
    compared with: in 3 iterations CLUB moves the policy loss by ~1e-6 relative)."""
    t = fresh_tables
    assert "Dual Critic Loss" in t["csro-brac"].columns and "Dual Critic Loss" not in t["csro"].columns
    assert "Club Loss" in t["csro"].columns and "Club Loss" not in t["focal"].columns
    assert "KL Divergence" in t["offline-pearl"].columns and "KL Divergence" not in t["csro"].columns
    assert "CORRO InfoNCE Loss" in t["corro"].columns and "Z Loss" not in t["corro"].columns
    assert {"Reconstruction Loss", "Z Loss"} <= set(t["unicorn-ss"].columns) and "Club Loss" not in t["unicorn-ss"]
    assert {"Classifier Loss", "Classifier Accuracy"} <= set(t["unicorn-sup"].columns)
    assert "Z Loss" not in t["unicorn-sup"].columns and "Reconstruction Loss" not in t["unicorn-sup"].columns
    assert {"VAE Loss", "QF Loss"} <= set(t["borel"].columns) and "Z Loss" not in t["borel"].columns
    assert "Action Loss" in t["prompt-dt"].columns and "QF Loss" not in t["prompt-dt"].columns  # no critic at all
    names = sorted(n for n in t if "Policy Loss" in t[n].columns)
    assert set(t) - set(names) == {"prompt-dt"}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.allclose(t[a]["Policy Loss"], t[b]["Policy Loss"], rtol=RTOL, atol=ATOL), (a, b)
