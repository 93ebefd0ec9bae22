"""Static selection on one clustering: kMQ, kM-random, kM-closest (Yu et al., 2024); the random
and quality-top baselines are `select.baselines`, and `select.registry` names them all.

All functions are pure (arrays in, row indices out) and seeded. The budget is met exactly: the
reference code's equal quota int(b/k) under-filled it; here clusters get shares proportional to
their size (or to weight × size, for the iterative method), rounded by largest remainder, capped at
what a cluster holds, with any leftover handed to clusters that still have room.
"""
from __future__ import annotations

import numpy as np

from ..spine.apportion import allocate_budget
from ..spine.config import SelectionConfig
from ..spine.errors import ConfigError
from .registry import get_method


def gumbel_top_k(logits: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sample n indices without replacement with probability ∝ exp(logits) (Plackett–Luce).

    Adding Gumbel noise and taking the top n is exactly successive sampling from softmax(logits).
    """
    keys = logits + rng.gumbel(size=len(logits))
    return np.argsort(-keys, kind="stable")[:n]


def _check(labels: np.ndarray, budget: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ConfigError("cluster labels must be a non-empty 1-D array")
    if not 0 <= budget <= len(labels):
        raise ConfigError(f"budget {budget} must be between 0 and the pool size {len(labels)}")
    return labels.astype(np.int64)


def _per_cluster(labels: np.ndarray, budget: int, pick, weights: np.ndarray | None = None,
                 available: np.ndarray | None = None) -> np.ndarray:
    """Allocate the budget over clusters, then let `pick(members, b_j)` choose inside each."""
    k = int(labels.max()) + 1
    mask = np.ones(len(labels), dtype=bool) if available is None else available
    capacity = np.bincount(labels[mask], minlength=k)
    allocation = allocate_budget(capacity, budget, weights)
    chosen = [pick(np.flatnonzero(mask & (labels == j)), int(b_j))
              for j, b_j in enumerate(allocation) if b_j > 0]
    return np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)


def kmq_select(labels: np.ndarray, quality: np.ndarray, budget: int, tau: float = 1.0,
               seed: int = 0, top: bool = False, weights: np.ndarray | None = None,
               available: np.ndarray | None = None) -> np.ndarray:
    """kMQ: proportional budgets, softmax(q/τ) sampling without replacement in each cluster.

    `top=True` takes the b_j best instead; `weights`/`available` serve the iterative method
    (per-cluster weights, and a mask of rows not yet selected).
    """
    labels = _check(labels, budget)
    quality = np.asarray(quality, dtype=np.float64)
    if quality.shape != labels.shape or not np.isfinite(quality).all():
        raise ConfigError("quality must be one finite score per row")
    if tau <= 0:
        raise ConfigError(f"temperature tau must be > 0, got {tau}")
    rng = np.random.default_rng(seed)

    def pick(members: np.ndarray, n: int) -> np.ndarray:
        q = quality[members]
        if top:
            order = np.lexsort((members, -q))
            return members[order[:n]]
        return members[gumbel_top_k((q - q.max()) / tau, n, rng)]

    return _per_cluster(labels, budget, pick, weights, available)


def kmeans_random_select(labels: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """kM-random: proportional budgets, uniform sampling inside each cluster."""
    labels = _check(labels, budget)
    rng = np.random.default_rng(seed)
    return _per_cluster(labels, budget, lambda members, n: rng.choice(members, n, replace=False))


def kmeans_closest_select(labels: np.ndarray, distances: np.ndarray, budget: int) -> np.ndarray:
    """kM-closest: proportional budgets, the rows nearest their centroid (ties → lower index)."""
    labels = _check(labels, budget)
    distances = np.asarray(distances, dtype=np.float64)
    if distances.shape != labels.shape:
        raise ConfigError("distances must hold one value per row")
    return _per_cluster(labels, budget,
                        lambda members, n: members[np.lexsort((members, distances[members]))[:n]])


def select_static(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                  distances: np.ndarray) -> np.ndarray:
    """The selected row indices (sorted) of the config's static method (`select.registry`)."""
    return np.sort(get_method(config.method).select(config, labels, quality, distances))
