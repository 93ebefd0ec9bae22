"""faiss k-means as a scikit-learn-style estimator (kMQ: Yu et al., 2024).

Why a wrapper: the reference code relied on faiss' default seed and subsampling silently; here the
seed, niter, nredo, spherical mode and `max_points_per_centroid` are explicit parameters, labels
and inertia are computed on *all* points (training uses at most `max_points_per_centroid`·k of
them), and the GPU is used when faiss sees one.

Why k-means++: faiss starts from k random rows, which on well-separated data often puts two
centroids in one cluster and none in another, and Lloyd's iterations cannot move them apart (5
blobs of 150 points: 150/300/150/… with nredo=5). Each restart here starts instead from
scikit-learn's `kmeans_plusplus` seeds drawn on faiss' training sample (its own seed from
`seed`), as scikit-learn and cuML do; the restart of lowest inertia on that sample is kept.
`init="random"` keeps faiss' own start and restarts (the clusters of earlier versions).

Bounded memory for million-row pools: the input may be a float32/float16 memmap; it is checked,
converted and (spherical) normalised `CHUNK_ROWS` rows at a time, training reads only its seeded
sample, and every row is assigned chunk by chunk, so nothing of size N × d is copied.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..spine.config import KMEANS_INITS, KMeansConfig
from ..spine.devices import faiss_gpu_count
from ..spine.errors import ConfigError


CHUNK_ROWS = 65_536  # rows converted / normalised / assigned at once: 96 MB at d = 384


def row_chunks(n: int, chunk_rows: int | None = None) -> list[tuple[int, int]]:
    """[start, stop) spans covering n rows (`CHUNK_ROWS` each by default); a short tail joins
    the chunk before it, so every faiss search sees a block large enough for its BLAS path (the
    one a single call takes)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    starts = list(range(0, n, chunk_rows)) or [0]
    if len(starts) > 1 and n - starts[-1] < chunk_rows // 4:
        starts.pop()
    return [(start, stop) for start, stop in zip(starts, starts[1:] + [n])]


def checked_vectors(X: np.ndarray) -> np.ndarray:
    """X itself (an array or memmap, never copied) once it is a 2-D real matrix of finite values;
    the check reads it chunk by chunk."""
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2 or X.dtype.kind not in "iuf":
        raise ConfigError(f"expected a 2-D matrix of vectors, got shape {X.shape}, dtype {X.dtype}")
    for start, stop in row_chunks(len(X)):
        if not np.isfinite(X[start:stop]).all():
            raise ConfigError("the embedding matrix contains NaN or infinite values")
    return X


def as_float32_matrix(X: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy only where X is not one already (the whole matrix in memory:
    for the small inputs of exact computations — use `float32_rows` on large pools)."""
    return np.ascontiguousarray(checked_vectors(X), dtype=np.float32)


def float32_rows(X: np.ndarray, rows: slice | np.ndarray, spherical: bool = False) -> np.ndarray:
    """The given rows as a contiguous float32 block, L2-normalised when `spherical`."""
    block = np.ascontiguousarray(X[rows], dtype=np.float32)
    return l2_normalise(block) if spherical else block


def l2_normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(norms, 1e-12)).astype(np.float32)


def _all_identical(X: np.ndarray) -> bool:
    """Whether every row equals the first (read chunk by chunk, stopping at the first other)."""
    return all(bool((X[start:stop] == X[0]).all()) for start, stop in row_chunks(len(X)))


class FaissKMeans:
    """k-means with faiss; `fit` returns self with `cluster_centers_`, `labels_`, `inertia_`,
    `distances_` (each point to its centroid), `objective_` (per-iteration training loss of the
    kept restart) and `init_seconds_` (the time spent drawing k-means++ seeds)."""

    def __init__(self, n_clusters: int = 8, seed: int = 0, niter: int = 300, nredo: int = 5,
                 spherical: bool = False, max_points_per_centroid: int = 256,
                 init: str = "k-means++", use_gpu: bool | None = None) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.niter = niter
        self.nredo = nredo
        self.spherical = spherical
        self.max_points_per_centroid = max_points_per_centroid
        self.init = init
        self.use_gpu = use_gpu

    @classmethod
    def from_config(cls, config: KMeansConfig) -> FaissKMeans:
        return cls(n_clusters=config.k, seed=config.seed, niter=config.niter, nredo=config.nredo,
                   spherical=config.spherical,
                   max_points_per_centroid=config.max_points_per_centroid,
                   init=config.init, use_gpu=config.use_gpu)

    def training_rows(self, n: int) -> np.ndarray | slice:
        """The rows k-means trains on: all of them up to `max_points_per_centroid`·k, else the
        sample faiss itself would draw (its seeded `rand_perm`, in its order), taken here so
        that only the sample is read, converted and normalised — same centroids as handing
        faiss every row."""
        import faiss

        limit = int(self.max_points_per_centroid) * int(self.n_clusters)
        if n <= limit:
            return slice(0, n)
        perm = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
        faiss.rand_perm(faiss.swig_ptr(perm), n, int(self.seed))
        return perm[:limit]

    def fit(self, X: np.ndarray) -> FaissKMeans:
        import faiss

        X = checked_vectors(X)
        n = len(X)
        if not 1 <= self.n_clusters <= n:
            raise ConfigError(f"k must be between 1 and the number of points ({n}), "
                              f"got {self.n_clusters}")
        if n > 1 and _all_identical(X):
            kind = "zero" if not np.any(X[0]) else "identical"
            warnings.warn(f"all {n} vectors are {kind}: they tell the rows apart by nothing, so "
                          "the clusters are arbitrary; check the embeddings (or the --vectors "
                          "file)", stacklevel=2)
        if self.init not in KMEANS_INITS:
            raise ConfigError(f"unknown k-means init '{self.init}'; use "
                              f"{' or '.join(KMEANS_INITS)}")
        gpus = faiss_gpu_count()
        use_gpu = gpus > 0 if self.use_gpu is None else (self.use_gpu and gpus > 0)
        sample = float32_rows(X, self.training_rows(n), self.spherical)
        self.init_seconds_ = 0.0
        if self.init == "random":
            kmeans = self._faiss_kmeans(X.shape[1], int(self.nredo), int(self.seed), use_gpu)
            kmeans.train(sample)
        else:
            kmeans = self._best_of_seeded_restarts(sample, use_gpu)
        self.cluster_centers_ = np.asarray(kmeans.centroids, dtype=np.float32)
        self.objective_ = np.asarray(kmeans.obj, dtype=np.float64)
        self.used_gpu_ = bool(use_gpu)
        self.labels_, squared = self._assign(X)
        self.distances_ = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        self.inertia_ = float(np.sum(squared, dtype=np.float64))
        return self

    def _faiss_kmeans(self, d: int, nredo: int, seed: int, use_gpu: bool) -> Any:
        """A `faiss.Kmeans` with this estimator's settings."""
        import faiss

        return faiss.Kmeans(d, int(self.n_clusters), niter=int(self.niter), nredo=nredo,
                            seed=seed, spherical=bool(self.spherical),
                            max_points_per_centroid=int(self.max_points_per_centroid),
                            min_points_per_centroid=1, verbose=False, gpu=bool(use_gpu))

    def _best_of_seeded_restarts(self, sample: np.ndarray, use_gpu: bool) -> Any:
        """`nredo` faiss trainings, each from its own k-means++ seeds (seeded from `seed` and
        the restart's number); the one of lowest inertia on the training sample (ties: the
        first), as faiss itself keeps its best restart."""
        import faiss
        from sklearn.cluster import kmeans_plusplus
        from threadpoolctl import threadpool_limits

        norms = np.einsum("ij,ij->i", sample, sample)
        best, best_inertia = None, np.inf
        for restart_seed in np.random.SeedSequence(int(self.seed)).generate_state(
                int(self.nredo)):
            started = time.perf_counter()
            # one BLAS thread: each seed's distances are a few rows × the sample, too small to
            # share out (2 busy cores, 8,192 × 384, k = 32: 0.38 s against 2.5 s with 2 threads)
            with threadpool_limits(limits=1, user_api="blas"):
                seeds, _ = kmeans_plusplus(sample, int(self.n_clusters), x_squared_norms=norms,
                                           random_state=int(restart_seed))
            self.init_seconds_ += time.perf_counter() - started
            kmeans = self._faiss_kmeans(sample.shape[1], 1, int(restart_seed) % 2**31, use_gpu)
            kmeans.train(sample, init_centroids=np.ascontiguousarray(seeds, dtype=np.float32))
            index = faiss.IndexFlatL2(sample.shape[1])
            index.add(np.asarray(kmeans.centroids, dtype=np.float32))
            inertia = float(np.sum(index.search(sample, 1)[0], dtype=np.float64))
            if inertia < best_inertia:
                best, best_inertia = kmeans, inertia
        return best

    def _assign(self, X: np.ndarray, n_nearest: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid(s) of each checked row and squared L2 distance(s) to it, in chunks
        (the rows are normalised chunk by chunk in spherical mode)."""
        import faiss

        index = faiss.IndexFlatL2(X.shape[1])
        index.add(self.cluster_centers_)
        labels = np.empty((len(X), n_nearest), dtype=np.int64)
        squared = np.empty((len(X), n_nearest), dtype=np.float64)
        for start, stop in row_chunks(len(X)):
            part_squared, part_labels = index.search(
                float32_rows(X, slice(start, stop), self.spherical), n_nearest)
            labels[start:stop], squared[start:stop] = part_labels, part_squared
        if n_nearest == 1:
            return labels[:, 0], squared[:, 0]
        return labels, squared

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._assign(checked_vectors(X))[0]

    def two_nearest_distances(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (not squared) of each row to its nearest and second-nearest centroid."""
        if self.n_clusters < 2:
            raise ConfigError("the simplified silhouette needs k >= 2")
        _, squared = self._assign(checked_vectors(X), n_nearest=2)
        distances = np.sqrt(np.maximum(squared, 0.0))
        return distances[:, 0], distances[:, 1]
