"""The quick map: PCA placement against scikit-learn's PCA, deterministic orientation."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from selection_core.cluster.projection import pca_2d


def test_pca_2d_matches_scikit_learn_up_to_the_sign_of_each_axis() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))  # correlated columns
    ours = pca_2d(X, chunk_rows=64)  # several chunks
    np.testing.assert_allclose(ours, pca_2d(X), rtol=1e-5, atol=1e-5)
    reference = PCA(n_components=2).fit_transform(X)
    assert ours.shape == (500, 2) and ours.dtype == np.float32
    for axis in range(2):
        sign = np.sign(ours[:, axis] @ reference[:, axis])
        np.testing.assert_allclose(ours[:, axis], sign * reference[:, axis], rtol=1e-4, atol=1e-3)


def test_pca_2d_orientation_is_fixed_by_the_data() -> None:
    X = np.random.default_rng(1).normal(size=(200, 8)).astype(np.float32)
    coords = pca_2d(X)
    extremes = coords[np.abs(coords).argmax(axis=0), [0, 1]]
    assert (extremes > 0).all()
    np.testing.assert_array_equal(pca_2d(X.copy()), coords)
    assert pca_2d(X[:, :1]).shape == (200, 2)  # one dimension: a flat map
