from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score, silhouette_samples

from selection_core.cluster import FaissKMeans, knee_point, simplified_silhouette, sweep_k, umap_2d
from selection_core.cluster.sweep import exact_silhouette
from selection_core.spine.config import SweepConfig, UMAPConfig
from selection_core.spine.errors import ConfigError


def blobs(n_per: int = 60, centers: int = 4, dim: int = 16, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=10, size=(centers, dim))
    truth = np.repeat(np.arange(centers), n_per)
    return (means[truth] + rng.normal(size=(len(truth), dim))).astype(np.float32), truth


def test_kmeans_recovers_blobs_and_is_seeded() -> None:
    X, truth = blobs()
    model = FaissKMeans(n_clusters=4, seed=1, niter=50, nredo=2).fit(X)
    assert normalized_mutual_info_score(truth, model.labels_) > 0.99
    assert model.cluster_centers_.shape == (4, 16)
    again = FaissKMeans(n_clusters=4, seed=1, niter=50, nredo=2).fit(X)
    assert np.array_equal(model.labels_, again.labels_)
    # inertia and distances are over all points
    own = np.linalg.norm(X - model.cluster_centers_[model.labels_], axis=1)
    assert np.allclose(model.distances_, own, atol=1e-3)
    assert model.inertia_ == pytest.approx(float((own ** 2).sum()), rel=1e-4)
    assert np.array_equal(model.predict(X), model.labels_)


def test_spherical_kmeans_has_unit_centroids() -> None:
    X, _ = blobs()
    model = FaissKMeans(n_clusters=4, spherical=True, niter=20).fit(X)
    assert np.allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, atol=1e-4)


def test_k_out_of_range_and_bad_values() -> None:
    X, _ = blobs(n_per=2)
    with pytest.raises(ConfigError, match="between 1 and"):
        FaissKMeans(n_clusters=9).fit(X)
    with pytest.raises(ConfigError, match="NaN"):
        FaissKMeans(n_clusters=2).fit(np.full((4, 2), np.nan))


def test_simplified_silhouette_formula() -> None:
    assert simplified_silhouette(np.array([1.0, 0.0, 2.0]), np.array([3.0, 0.0, 2.0])) == \
        pytest.approx((2 / 3 + 0 + 0) / 3)


def test_exact_silhouette_on_all_rows_matches_sklearn() -> None:
    X, truth = blobs(n_per=20)
    assert exact_silhouette(X, truth, sample_size=10_000, seed=0) == pytest.approx(
        float(silhouette_samples(X, truth).mean()))


def test_knee_point() -> None:
    ks = [1, 2, 3, 4, 5, 6, 7, 8]
    inertia = [100, 40, 20, 15, 12, 10, 9, 8]
    assert knee_point(ks, inertia, log_x=False) == 3
    assert knee_point([2, 4], [3, 1]) is None


def test_sweep_finds_true_k_and_keeps_models() -> None:
    X, _ = blobs(centers=4)
    result = sweep_k(X, SweepConfig(ks=(2, 3, 4, 6, 8), niter=30, nredo=2, sample_size=150))
    assert list(result.table.columns[:4]) == ["k", "inertia", "silhouette", "simplified_silhouette"]
    assert result.recommended_k == 4
    assert result.table["inertia"].is_monotonic_decreasing
    assert set(result.models) == {2, 3, 4, 6, 8}
    with pytest.raises(ConfigError, match="between 2"):
        sweep_k(X, SweepConfig(ks=(1, 4)))


def test_umap_is_seeded() -> None:
    X, _ = blobs(n_per=15)
    a = umap_2d(X, UMAPConfig(n_neighbors=10, seed=3))
    b = umap_2d(X, UMAPConfig(n_neighbors=10, seed=3))
    assert a.shape == (60, 2) and np.allclose(a, b)
    with pytest.raises(ConfigError, match="at least 4"):
        umap_2d(X[:3])
