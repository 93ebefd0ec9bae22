"""2-D maps of the embeddings: UMAP for the cluster map (seeded, so maps are comparable), and an
instant PCA placement shown while UMAP is still computing.

Million-row pools: UMAP's cost grows with n (its neighbour graph and layout epochs), so beyond
`UMAPConfig.fit_rows` it is fitted on a seeded sample and every other row is placed where its
nearest `UMAPConfig.placement_neighbors` sampled neighbours (in the embedding space) lie — `neighbour_placement`, an inverse-distance
weighted mean of their 2-D positions. `placement="transform"` uses UMAP's own `transform`
instead; benchmarks/bench_million.py measures both (speed, and whether a placed point lands among
the fitted points of its own cluster) and the faster faithful one is the default.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..spine.config import UMAPConfig
from ..spine.errors import ConfigError
from .kmeans import as_float32_matrix, checked_vectors, float32_rows, row_chunks

_EXACT_NEIGHBOURS_BELOW = 4096  # umap-learn's own threshold for exact nearest neighbours
Placement = Literal["neighbours", "transform"]


def umap_2d(X: np.ndarray, config: UMAPConfig = UMAPConfig(),
            placement: Placement = "neighbours") -> np.ndarray:
    """(n, 2) float32 coordinates. Tiny inputs (< 4 rows) cannot be projected by UMAP.

    Up to `config.fit_rows` rows UMAP fits them all; beyond, it fits a seeded sample of that
    many and the other rows are placed by `placement`. X may be a memmap: only the sample and one chunk
    of rows at a time are held as float32."""
    X = checked_vectors(X)
    if len(X) < 4:
        raise ConfigError(f"UMAP needs at least 4 rows, got {len(X)}")
    if placement not in ("neighbours", "transform"):
        raise ConfigError(f"unknown placement '{placement}'; use neighbours or transform")
    fitted = fit_map_sample(X, config, transformable=placement == "transform")
    if len(fitted.rows) == len(X):
        return fitted.coords
    coords = np.empty((len(X), 2), dtype=np.float32)
    coords[fitted.rows] = fitted.coords
    rest = fitted.rest_rows(len(X))
    coords[rest] = fitted.place(X, rest, placement)
    return coords


@dataclass
class MapSample:
    """UMAP fitted on `rows` of a pool: their float32 vectors (unit where the metric is cosine),
    their 2-D `coords`, and the fitted `reducer`, which places any other row."""

    rows: np.ndarray
    sample: np.ndarray
    coords: np.ndarray
    reducer: Any
    unit: bool
    placement_neighbors: int

    def rest_rows(self, n: int) -> np.ndarray:
        rest = np.ones(n, dtype=bool)
        rest[self.rows] = False
        return np.flatnonzero(rest)

    def place(self, X: np.ndarray, rows: np.ndarray, placement: Placement) -> np.ndarray:
        """(len(rows), 2): rows of X placed on the fitted map, chunk by chunk."""
        if placement == "neighbours":
            return neighbour_placement(self.sample, self.coords, X, rows, self.unit,
                                       self.placement_neighbors)
        placed = np.empty((len(rows), 2), dtype=np.float32)
        for start, stop in row_chunks(len(rows)):
            placed[start:stop] = self.reducer.transform(float32_rows(X, rows[start:stop],
                                                                     self.unit))
        return placed


def fit_map_sample(X: np.ndarray, config: UMAPConfig = UMAPConfig(),
                   transformable: bool = False) -> MapSample:
    """UMAP fitted on every row of X up to `config.fit_rows`, else on a seeded sample of that
    many."""
    n, fit_rows = len(X), config.fit_rows
    unit = config.metric == "cosine"  # same neighbours as cosine on unit vectors, and far faster
    rows = np.arange(n) if n <= fit_rows else \
        np.sort(np.random.default_rng(config.seed).choice(n, size=fit_rows, replace=False))
    sample = float32_rows(X, slice(0, n) if n <= fit_rows else rows, unit)
    reducer, coords = _fit_umap(sample, config, precompute=not transformable)
    return MapSample(rows, sample, coords, reducer, unit, config.placement_neighbors)


def _fit_umap(X: np.ndarray, config: UMAPConfig,
              precompute: bool):  # -> (umap.UMAP, (n, 2) float32)
    """UMAP on float32 rows already normalised where the metric is cosine; `precompute` allows
    a distance matrix for small inputs (a reducer fitted on one cannot `transform` rows)."""
    import umap  # slow import (numba): only when a projection is actually computed

    n = len(X)
    metric = "euclidean" if config.metric == "cosine" else config.metric
    data = X
    if precompute and n < _EXACT_NEIGHBOURS_BELOW and metric == "euclidean":
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
    return reducer, np.asarray(coords, dtype=np.float32)


def neighbour_placement(sample: np.ndarray, sample_coords: np.ndarray, X: np.ndarray,
                        rows: np.ndarray, unit: bool = False,
                        n_neighbors: int = UMAPConfig.placement_neighbors) -> np.ndarray:
    """(len(rows), 2): each row of X at the inverse-distance weighted mean of the 2-D positions
    of its `n_neighbors` nearest sample rows (float32 `sample`, normalised where `unit`).

    The neighbours come from a faiss inverted-file index over the sample (√-sized lists, 1/16
    of them probed): exact enough on clustered data, and ~50× fewer distances than a flat
    search at a million rows."""
    import faiss

    dim = sample.shape[1]
    n_lists = max(1, min(int(np.sqrt(len(sample))), len(sample) // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, n_lists)
    index.train(sample)
    index.add(sample)
    index.nprobe = max(1, n_lists // 16)
    k = min(n_neighbors, len(sample))
    exhaustive = faiss.IndexFlatL2(dim)  # for the rare row whose probed lists are all empty
    exhaustive.add(sample)
    placed = np.empty((len(rows), 2), dtype=np.float32)
    for start, stop in row_chunks(len(rows)):
        block = float32_rows(X, rows[start:stop], unit)
        squared, nearest = index.search(block, k)
        lost = nearest[:, 0] < 0
        if lost.any():
            squared[lost], nearest[lost] = exhaustive.search(block[lost], k)
        found = nearest >= 0  # an under-filled probe returns -1 for missing neighbours
        weights = np.where(found, 1.0 / (np.sqrt(np.maximum(squared, 0.0)) + 1e-6), 0.0)
        positions = sample_coords[np.where(found, nearest, 0)]
        placed[start:stop] = (np.einsum("rk,rkc->rc", weights, positions)
                              / weights.sum(axis=1, keepdims=True))
    return placed


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
