"""Million-row pools (issue 15 §2): k-means, the sweep and the map read large inputs (memmaps,
float16) in chunks and samples, without an N × d float32 copy, and give the same results as the
in-memory path."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from selection_core.cluster import FaissKMeans, sweep_k, umap_2d
from selection_core.cluster import kmeans as kmeans_module
from selection_core.spine.config import SweepConfig, UMAPConfig, widget


def blobs(n: int, centers: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(centers, size=n)
    means = rng.normal(scale=6, size=(centers, dim))
    return (means[truth] + rng.normal(size=(n, dim))).astype(np.float32), truth


def memmap(path: Path, X: np.ndarray, dtype: str) -> np.ndarray:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=X.shape)
    array[:] = X
    array.flush()
    return np.load(path, mmap_mode="r", allow_pickle=False)


def test_kmeans_on_a_float16_memmap_never_copies_the_matrix(tmp_path: Path) -> None:
    X, truth = blobs(400_000, 4, 32)
    X16 = memmap(tmp_path / "x.npy", X, "float16")
    # the first fit imports the k-means++ seeding (scikit-learn, threadpoolctl): modules, not
    # a copy of the matrix, so they are loaded before counting
    FaissKMeans(n_clusters=2, niter=1, nredo=1, seed=3).fit(np.asarray(X16[:1000], np.float32))
    tracemalloc.start()
    model = FaissKMeans(n_clusters=4, niter=5, nredo=1, seed=3).fit(X16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MiB for a {X.nbytes / 2**20:.0f} MiB matrix"
    assert normalized_mutual_info_score(truth, model.labels_) > 0.99
    same = FaissKMeans(n_clusters=4, niter=5, nredo=1, seed=3).fit(X16.astype(np.float32))
    assert np.array_equal(model.labels_, same.labels_)
    assert np.array_equal(model.distances_, same.distances_)


@pytest.mark.parametrize("spherical", [False, True])
def test_chunked_assignment_equals_one_block(monkeypatch: pytest.MonkeyPatch,
                                             spherical: bool) -> None:
    X, _ = blobs(5000, 5, 8)
    whole = FaissKMeans(n_clusters=5, niter=10, nredo=1, spherical=spherical).fit(X)
    monkeypatch.setattr(kmeans_module, "CHUNK_ROWS", 700)
    assert len(kmeans_module.row_chunks(len(X))) > 5
    chunked = FaissKMeans(n_clusters=5, niter=10, nredo=1, spherical=spherical).fit(X)
    assert np.array_equal(whole.labels_, chunked.labels_)
    assert np.array_equal(whole.distances_, chunked.distances_)
    assert whole.inertia_ == chunked.inertia_


def test_training_sample_is_the_one_faiss_draws() -> None:
    """Above max_points_per_centroid·k only the sample is read, and it is faiss' own sample
    (with faiss' random start, the centroids are faiss' own too)."""
    import faiss

    X, _ = blobs(3000, 6, 8)
    model = FaissKMeans(n_clusters=6, niter=10, nredo=2, seed=5, max_points_per_centroid=40,
                        init="random").fit(X)
    reference = faiss.Kmeans(8, 6, niter=10, nredo=2, seed=5, max_points_per_centroid=40,
                             min_points_per_centroid=1)
    reference.train(X)
    assert np.array_equal(model.cluster_centers_, reference.centroids)
    assert len(X[model.training_rows(len(X))]) == 240


def test_spherical_sweep_keeps_the_same_model_as_a_direct_fit() -> None:
    """The sweep once normalised rows twice (a last-bit difference from `cluster` at the same k,
    whose model the pipeline reuses): now both normalise once."""
    X, _ = blobs(1500, 4, 12)
    config = SweepConfig(ks=(3, 4), sample_size=500, niter=10, nredo=1, spherical=True,
                         metric="cosine")
    swept = sweep_k(X, config).models[4]
    direct = FaissKMeans.from_config(config.kmeans(4)).fit(X)
    assert np.array_equal(swept.distances_, direct.distances_)
    assert swept.inertia_ == direct.inertia_


def test_umap_fits_a_sample_and_places_the_rest_among_their_cluster() -> None:
    """(`placement="transform"`, UMAP's own, is measured against this one by
    benchmarks/bench_million.py --compare-placement: its numba compile costs ~15 s here.)"""
    X, truth = blobs(3000, 5, 16, seed=1)
    config = UMAPConfig(n_neighbors=15, min_dist=0.1, fit_rows=600)
    fitted_rows = np.sort(np.random.default_rng(config.seed).choice(len(X), 600, replace=False))
    coords = umap_2d(X, config)
    assert coords.shape == (3000, 2) and np.isfinite(coords).all()
    # a placed row's nearest fitted point on the map belongs to the row's own cluster
    placed = np.setdiff1d(np.arange(len(X)), fitted_rows)
    fitted = coords[fitted_rows]
    nearest = ((coords[placed, None, :] - fitted[None]) ** 2).sum(-1).argmin(axis=1)
    assert (truth[fitted_rows][nearest] == truth[placed]).mean() > 0.98


def test_the_map_sample_and_its_placement_neighbours_are_umap_config_fields() -> None:
    """Both change the map, so both are UMAPConfig fields (in its hash, with CLI/widget help)."""
    assert widget(UMAPConfig, "fit_rows").help and widget(UMAPConfig, "placement_neighbors").help
    assert UMAPConfig(fit_rows=300).config_hash() != UMAPConfig().config_hash()
    assert UMAPConfig(placement_neighbors=1).config_hash() != UMAPConfig().config_hash()
    X, _ = blobs(900, 3, 8, seed=2)
    config = UMAPConfig(n_neighbors=10, fit_rows=300, placement_neighbors=1)
    fitted_rows = np.sort(np.random.default_rng(config.seed).choice(len(X), 300, replace=False))
    coords = umap_2d(X, config)
    placed = np.setdiff1d(np.arange(len(X)), fitted_rows)
    # one neighbour: every placed row sits exactly on a fitted row
    gaps = np.abs(coords[placed, None, :] - coords[fitted_rows][None]).sum(-1).min(axis=1)
    assert np.all(gaps < 1e-5)
