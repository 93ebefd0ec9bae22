"""Comparing selections: overlap, composition and a one-row-per-selection summary."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def jaccard_matrix(selections: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """|A ∩ B| / |A ∪ B| for every pair of named selections (row positions)."""
    names = list(selections)
    sets = [set(np.asarray(selections[n]).tolist()) for n in names]
    values = np.ones((len(names), len(names)))
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            union = len(a | sets[j])
            values[i, j] = values[j, i] = len(a & sets[j]) / union if union else 1.0
    return pd.DataFrame(values, index=names, columns=names)


def _entropy_share(counts: np.ndarray) -> float:
    """Normalised entropy of a distribution over groups (1 = perfectly even)."""
    counts = counts[counts > 0]
    if len(counts) < 2:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(p)))


def selection_summary(pool: pd.DataFrame, selections: Mapping[str, np.ndarray],
                      labels: np.ndarray, quality: np.ndarray) -> pd.DataFrame:
    """One row per selection: size, quality, cluster coverage and evenness, sources, and — when
    the pool carries a ground-truth `is_noise` column (the demo pool) — the share of noise."""
    k = int(np.max(labels)) + 1
    rows = []
    for name, positions in selections.items():
        positions = np.asarray(positions, dtype=np.int64)
        per_cluster = np.bincount(labels[positions], minlength=k)
        row = {"selection": name, "rows": len(positions),
               "mean quality": float(quality[positions].mean()) if len(positions) else np.nan,
               "clusters covered": int((per_cluster > 0).sum()),
               "cluster evenness": _entropy_share(per_cluster),
               "sources": int(pool["source"].iloc[positions].nunique())}
        if "is_noise" in pool.columns:
            row["noise share"] = float(pool["is_noise"].iloc[positions].astype(bool).mean())
        rows.append(row)
    pool_row = {"selection": "(whole pool)", "rows": len(pool),
                "mean quality": float(np.mean(quality)), "clusters covered": k,
                "cluster evenness": _entropy_share(np.bincount(labels, minlength=k)),
                "sources": int(pool["source"].nunique())}
    if "is_noise" in pool.columns:
        pool_row["noise share"] = float(pool["is_noise"].astype(bool).mean())
    return pd.DataFrame([*rows, pool_row])
