"""The context-shift projection does not draw a flat principal axis as if it carried structure."""

from __future__ import annotations

import numpy as np

from rlkit import context_shift as cs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _line(noise: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.linspace(-1.0, 1.0, 60)
    return t[:, None] * rng.normal(size=6) + noise * rng.normal(size=(60, 6))


def _variance_share(z, k):
    x = z - z.mean(0)
    ev = np.sort(np.linalg.eigvalsh(x.T @ x))[::-1]  # slow and obvious: the covariance's eigenvalues
    return ev[k] / ev.sum()


def test_embeddings_on_a_line_give_a_flagged_1d_projection():
    z = _line(1e-9)
    xy, used, labels, flat = cs.project(z)
    assert used == "pca" and flat
    assert np.all(xy[:, 1] == 0.0)  # the noise is not kept as a second coordinate
    assert labels[0] == "PC1 (100.0% of variance)" and labels[1] == "PC2 (0.0% of variance)"


def test_a_plane_keeps_both_axes_with_their_explained_variance():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 4)) * np.array([3.0, 1.0, 0.05, 0.05])
    xy, _, labels, flat = cs.project(z)
    assert not flat and np.std(xy[:, 1]) > 0.5
    for k in (0, 1):
        assert labels[k] == f"PC{k + 1} ({100 * _variance_share(z, k):.1f}% of variance)"


def test_threshold_is_one_percent_of_the_variance():
    z = _line(0.0)
    z2 = z + np.outer(np.sign(np.arange(60) % 2 - 0.5), np.eye(6)[0])  # a second direction of known size
    share = _variance_share(z2, 1)
    assert cs.project(z2)[3] == (share < cs.MIN_AXIS_VARIANCE)
    assert not cs.project(z + 0.3 * np.outer(np.sign(np.arange(60) % 2 - 0.5), np.eye(6)[1]))[3]


def test_coincident_embeddings_say_so():
    _, _, labels, flat = cs.project(np.ones((10, 3)))
    assert flat and "coincide" in labels[0]


def test_flat_figure_is_a_strip_plot(tmp_path):
    z = _line(1e-9)
    task = np.repeat(np.arange(3), 20)
    source = np.where(np.arange(60) % 20 < 10, "offline_fit", "offline")
    emb = {"z": z, "task": task, "source": source}
    path = tmp_path / "cs.png"
    assert cs.plot_embeddings(emb, cs.analyse(emb), path, "line") == "pca"
    assert path.read_bytes()[:8] == PNG_MAGIC
