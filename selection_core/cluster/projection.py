"""2-D UMAP projection of the embeddings, for the cluster map (seeded, so maps are comparable)."""
from __future__ import annotations

import numpy as np

from ..config import UMAPConfig
from ..errors import ConfigError
from .kmeans import as_float32_matrix


def umap_2d(X: np.ndarray, config: UMAPConfig = UMAPConfig()) -> np.ndarray:
    """(n, 2) float32 coordinates. Tiny inputs (< 4 rows) cannot be projected by UMAP."""
    X = as_float32_matrix(X)
    n = len(X)
    if n < 4:
        raise ConfigError(f"UMAP needs at least 4 rows, got {n}")
    import umap  # slow import (numba): only when a projection is actually computed

    reducer = umap.UMAP(n_components=2, n_neighbors=min(config.n_neighbors, n - 1),
                        min_dist=config.min_dist, metric=config.metric,
                        random_state=config.seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(X), dtype=np.float32)
