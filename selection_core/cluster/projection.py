"""2-D maps of the embeddings: UMAP for the cluster map (seeded, so maps are comparable), and an
instant PCA placement shown while UMAP is still computing."""
from __future__ import annotations

import warnings

import numpy as np

from ..config import UMAPConfig
from ..errors import ConfigError
from .kmeans import as_float32_matrix, l2_normalise

_EXACT_NEIGHBOURS_BELOW = 4096  # umap-learn's own threshold for exact nearest neighbours


def umap_2d(X: np.ndarray, config: UMAPConfig = UMAPConfig()) -> np.ndarray:
    """(n, 2) float32 coordinates. Tiny inputs (< 4 rows) cannot be projected by UMAP."""
    X = as_float32_matrix(X)
    n = len(X)
    if n < 4:
        raise ConfigError(f"UMAP needs at least 4 rows, got {n}")
    import umap  # slow import (numba): only when a projection is actually computed

    metric = config.metric
    if metric == "cosine":  # same neighbours as cosine on unit vectors, and far faster below
        X, metric = l2_normalise(X), "euclidean"
    data = X
    if n < _EXACT_NEIGHBOURS_BELOW and metric == "euclidean":
        # UMAP finds exact neighbours for small inputs by calling a Python distance function n²
        # times; a BLAS distance matrix gives the same neighbours ~10× faster.
        from sklearn.metrics import euclidean_distances

        data, metric = euclidean_distances(X).astype(np.float32), "precomputed"
    reducer = umap.UMAP(n_components=2, n_neighbors=min(config.n_neighbors, n - 1),
                        min_dist=config.min_dist, metric=metric, random_state=config.seed,
                        n_jobs=1)
    with warnings.catch_warnings():  # "inverse_transform unavailable" with precomputed: unused
        warnings.filterwarnings("ignore", message=".*precomputed metric.*")
        coords = reducer.fit_transform(data)
    return np.asarray(coords, dtype=np.float32)


def pca_2d(X: np.ndarray, chunk_rows: int = 16_384) -> np.ndarray:
    """(n, 2) float32: the rows on their two principal axes — a linear map that costs one pass
    over the data, shown until the UMAP map is ready. Each axis is oriented so that its largest
    coordinate is positive: the same embeddings always give the same picture. Works in chunks,
    so memory beyond the input stays O(chunk_rows · d + d²) for million-row pools."""
    X = as_float32_matrix(X)
    mean = X.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((X.shape[1], X.shape[1]))
    for start in range(0, len(X), chunk_rows):  # eigenvectors of the d×d scatter matrix
        part = X[start:start + chunk_rows] - mean
        scatter += part.T @ part
    axes = np.linalg.eigh(scatter)[1][:, ::-1][:, :2]
    coords = np.concatenate([(X[start:start + chunk_rows] - mean) @ axes
                             for start in range(0, len(X), chunk_rows)])
    if coords.shape[1] < 2:  # one-dimensional input: a flat map
        coords = np.column_stack([coords, np.zeros(len(coords))])
    extremes = coords[np.abs(coords).argmax(axis=0), np.arange(2)]
    return (coords * np.where(extremes < 0, -1.0, 1.0)).astype(np.float32)
