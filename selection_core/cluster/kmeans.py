"""faiss k-means as a scikit-learn-style estimator (METHODS §1.2).

Why a wrapper: the reference code relied on faiss' default seed and subsampling silently; here the
seed, niter, nredo, spherical mode and `max_points_per_centroid` are explicit parameters, labels
and inertia are computed on *all* points (faiss trains on a subsample of 256·k by default), and the
GPU is used when faiss sees one.
"""
from __future__ import annotations

import numpy as np

from ..config import KMeansConfig
from ..devices import faiss_gpu_count
from ..errors import ConfigError


def as_float32_matrix(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ConfigError(f"expected a 2-D matrix of vectors, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ConfigError("the embedding matrix contains NaN or infinite values")
    return X


def l2_normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(norms, 1e-12)).astype(np.float32)


class FaissKMeans:
    """k-means with faiss; `fit` returns self with `cluster_centers_`, `labels_`, `inertia_`,
    `distances_` (each point to its centroid) and `objective_` (per-iteration training loss)."""

    def __init__(self, n_clusters: int = 8, seed: int = 0, niter: int = 300, nredo: int = 5,
                 spherical: bool = False, max_points_per_centroid: int = 256,
                 use_gpu: bool | None = None) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.niter = niter
        self.nredo = nredo
        self.spherical = spherical
        self.max_points_per_centroid = max_points_per_centroid
        self.use_gpu = use_gpu

    @classmethod
    def from_config(cls, config: KMeansConfig) -> FaissKMeans:
        return cls(n_clusters=config.k, seed=config.seed, niter=config.niter, nredo=config.nredo,
                   spherical=config.spherical,
                   max_points_per_centroid=config.max_points_per_centroid,
                   use_gpu=config.use_gpu)

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = as_float32_matrix(X)
        return l2_normalise(X) if self.spherical else X

    def fit(self, X: np.ndarray) -> FaissKMeans:
        import faiss

        X = self._prepare(X)
        n = len(X)
        if not 1 <= self.n_clusters <= n:
            raise ConfigError(f"k must be between 1 and the number of points ({n}), "
                              f"got {self.n_clusters}")
        gpus = faiss_gpu_count()
        use_gpu = gpus > 0 if self.use_gpu is None else (self.use_gpu and gpus > 0)
        kmeans = faiss.Kmeans(X.shape[1], int(self.n_clusters), niter=int(self.niter),
                              nredo=int(self.nredo), seed=int(self.seed),
                              spherical=bool(self.spherical),
                              max_points_per_centroid=int(self.max_points_per_centroid),
                              min_points_per_centroid=1, verbose=False, gpu=bool(use_gpu))
        kmeans.train(X)
        self.cluster_centers_ = np.asarray(kmeans.centroids, dtype=np.float32)
        self.objective_ = np.asarray(kmeans.obj, dtype=np.float64)
        self.used_gpu_ = bool(use_gpu)
        self.labels_, squared = self._assign(X)
        self.distances_ = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        self.inertia_ = float(np.sum(squared, dtype=np.float64))
        return self

    def _assign(self, X: np.ndarray, n_nearest: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid(s) of each prepared row and squared L2 distance(s) to it."""
        import faiss

        index = faiss.IndexFlatL2(X.shape[1])
        index.add(self.cluster_centers_)
        squared, labels = index.search(X, n_nearest)
        if n_nearest == 1:
            return labels[:, 0].astype(np.int64), squared[:, 0].astype(np.float64)
        return labels.astype(np.int64), squared.astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._assign(self._prepare(X))[0]

    def two_nearest_distances(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (not squared) of each row to its nearest and second-nearest centroid."""
        if self.n_clusters < 2:
            raise ConfigError("the simplified silhouette needs k >= 2")
        _, squared = self._assign(self._prepare(X), n_nearest=2)
        distances = np.sqrt(np.maximum(squared, 0.0))
        return distances[:, 0], distances[:, 1]
