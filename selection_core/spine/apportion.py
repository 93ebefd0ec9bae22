"""Largest-remainder apportioning: the one copy, shared by kMQ's per-cluster budgets, the iterative
method's weighted budgets, stratified benchmark subsamples and the demo pool's source sizes and
noise counts.

A neutral leaf (imports only `errors`): selection, evaluation and the demo data all use it, so it
belongs to none of them.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError


def allocate_budget(capacity: np.ndarray, budget: int,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Integer per-cluster budgets b_j ∝ weight_j · capacity_j with Σ b_j = budget, b_j ≤ capacity_j.

    Largest-remainder rounding; ties go to the lower cluster index. Clusters whose share exceeds
    their capacity are filled and the rest is re-shared among the others, so the total is exact
    whenever budget ≤ Σ capacity. Zero-weight clusters get items only when nothing else has room.
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    if capacity.ndim != 1 or (capacity < 0).any():
        raise ConfigError("cluster capacities must be a 1-D array of non-negative counts")
    budget = int(budget)
    if budget < 0 or budget > capacity.sum():
        raise ConfigError(f"budget {budget} must be between 0 and the {capacity.sum()} "
                          "available items")
    weights = np.ones(len(capacity)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != capacity.shape or (weights < 0).any() or not np.isfinite(weights).all():
        raise ConfigError("cluster weights must be finite, non-negative, one per cluster")
    allocation = np.zeros(len(capacity), dtype=np.int64)
    while (remaining := budget - int(allocation.sum())) > 0:
        room = capacity - allocation
        share = np.where(room > 0, weights * capacity, 0.0)
        if share.sum() <= 0:  # only zero-weight clusters have room left: share by their room
            share = room.astype(np.float64)
        quota = share / share.sum() * remaining
        full = (quota >= room) & (room > 0)
        if full.any():  # these clusters cannot hold their share: fill them, re-share the rest
            allocation[full] = capacity[full]
            continue
        take = np.floor(quota).astype(np.int64)
        fraction = np.where(share > 0, quota - take, -1.0)
        order = np.lexsort((np.arange(len(fraction)), -fraction))  # largest remainder, low index
        take[order[: remaining - int(take.sum())]] += 1
        allocation += take
    return allocation
