"""Choosing k: inertia (elbow), exact silhouette on a seeded sample, simplified silhouette on all.

Why three measures: the exact silhouette is O(n²) so it runs on a sample; the simplified
(centroid) silhouette is O(n·k) and covers every point — what the reference notebook used; the
elbow (Kneedle knee of inertia) is the classic heuristic users expect to see beside them. The paper
recommends the silhouette optimum as a cheap proxy for downstream quality, so that is our
recommended k.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..spine.config import SweepConfig
from ..spine.errors import ConfigError
from .kmeans import FaissKMeans, checked_vectors, float32_rows


def exact_silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int, seed: int,
                     metric: str = "euclidean", spherical: bool = False) -> float:
    """Mean silhouette on a seeded sample of rows (NaN when fewer than 2 clusters are sampled);
    only the sample's rows are read (and L2-normalised when `spherical`)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    n = len(X)
    rows = np.sort(rng.choice(n, size=sample_size, replace=False)) if sample_size < n else \
        np.arange(n)
    sample_labels = labels[rows]
    n_labels = len(np.unique(sample_labels))
    if not 2 <= n_labels <= len(rows) - 1:
        return float("nan")
    return float(silhouette_score(float32_rows(X, rows, spherical), sample_labels, metric=metric))


def simplified_silhouette(d_nearest: np.ndarray, d_second: np.ndarray) -> float:
    """Mean of (d2 − d1) / max(d1, d2) over all points (0 where both distances are 0)."""
    denominator = np.maximum(d_nearest, d_second)
    values = np.divide(d_second - d_nearest, denominator, out=np.zeros_like(denominator),
                       where=denominator > 0)
    return float(values.mean())


def knee_point(ks: Sequence[int], inertia: Sequence[float], log_x: bool | None = None) -> int | None:
    """Kneedle knee of a decreasing, roughly convex curve: the k farthest below the chord.

    When the k grid spans a factor of 10 or more, x is taken on a log scale, where such a curve
    is read by eye (and drawn); `log_x` forces either scale. None with fewer than 3 points.
    """
    ks_arr = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertia, dtype=np.float64)
    if len(ks_arr) < 3 or np.ptp(y) == 0:
        return None
    order = np.argsort(ks_arr)
    ks_arr, y = ks_arr[order], y[order]
    if log_x is None:
        log_x = wide_k_range(ks_arr)
    x = np.log(ks_arr) if log_x else ks_arr
    x_n = (x - x.min()) / np.ptp(x)
    y_n = (y - y.min()) / np.ptp(y)
    gap = (1.0 - x_n) - y_n  # how far the curve lies below the chord from (0,1) to (1,0)
    best = int(np.argmax(gap))
    if gap[best] <= 0:
        return None
    return int(ks_arr[best])


def wide_k_range(ks: Sequence[int] | np.ndarray) -> bool:
    """k grids spanning a factor of 10 or more are read (and drawn) on a log scale."""
    ks = np.asarray(ks, dtype=np.float64)
    return len(ks) > 2 and ks.max() / ks.min() >= 10


@dataclass
class SweepResult:
    """Table of per-k measures, the recommended k and the knee, plus each k's fitted model."""

    table: pd.DataFrame  # k, inertia, silhouette, simplified_silhouette, seconds
    recommended_k: int
    knee_k: int | None
    models: dict[int, FaissKMeans]


def recommend_k(table: pd.DataFrame) -> int:
    """The silhouette optimum (the simplified one where the exact one is undefined); ties → smaller k."""
    scores = table["silhouette"].where(table["silhouette"].notna(), table["simplified_silhouette"])
    best = scores.max()
    return int(table.loc[scores == best, "k"].min())


def sweep_k(X: np.ndarray, config: SweepConfig,
            progress: Callable[[int, int], None] | None = None,
            fitted: Callable[[int, FaissKMeans], None] | None = None) -> SweepResult:
    """Fit k-means for every k in `config.ks` and measure each clustering; `fitted(k, model)`
    is called as each k is fitted (the pipeline stores it then: a stopped sweep keeps its
    finished k)."""
    X = checked_vectors(X)
    ks = sorted(set(int(k) for k in config.ks))
    if not ks or ks[0] < 2 or ks[-1] > len(X) - 1:
        raise ConfigError(f"k values must lie between 2 and n−1 = {len(X) - 1} for a sweep, "
                          f"got {ks}")
    rows, models = [], {}
    for done, k in enumerate(ks, start=1):
        started = time.perf_counter()
        model = FaissKMeans.from_config(config.kmeans(k)).fit(X)
        if fitted:
            fitted(k, model)
        d1, d2 = model.two_nearest_distances(X)
        rows.append({
            "k": k,
            "inertia": model.inertia_,
            "silhouette": exact_silhouette(X, model.labels_, config.sample_size, config.seed,
                                           config.metric, config.spherical),
            "simplified_silhouette": simplified_silhouette(d1, d2),
            "seconds": time.perf_counter() - started,
        })
        models[k] = model
        if progress:
            progress(done, len(ks))
    table = pd.DataFrame(rows)
    return SweepResult(table=table, recommended_k=recommend_k(table),
                       knee_k=knee_point(table["k"], table["inertia"]), models=models)
