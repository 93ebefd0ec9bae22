"""Iterative kMQ refinement: each round's math (Yu et al., 2024, Algorithm 1), pure and seeded.

The loop that trains, generates and persists rounds lives in `selection_core.iterative.loop`;
here are only the decisions it makes, so each can be tested on its own:
- how the budget splits over rounds (exact, the first rounds take the remainder);
- which new rows a round draws (per-cluster budget ∝ w_j · |remaining X_j|, quality-weighted);
- which selected prompts are generated for: every cluster that has selected items is scored, at
  least `min_scored_per_cluster` items each, so no cluster gains or loses weight for having been
  scored (the round's evaluation grows past `eval_per_round` when k demands it);
- how the per-item gaps S become one score per cluster: centred on the round's mean, in standard
  deviations of S (so τ means the same for every scorer), and shrunk toward 0 by how much of the
  spread between clusters is more than noise (one-way random-effects estimate);
- how those scores move the weights (w_j ← w_j · exp(s_j / τ), renormalised).

Every random choice comes from per-row keys (one uniform number per pool row and round), never
from the cluster numbers, so relabelling the clusters permutes the weights and changes nothing else.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..spine.apportion import allocate_budget
from ..spine.config import GAP_SCORERS, MAX_NEW_TOKENS, GapScorer, IterativeConfig  # noqa: F401
from ..spine.errors import ConfigError

def round_sizes(budget: int, rounds: int) -> list[int]:
    """b/R items a round, exactly b in all; the first b mod R rounds take one more."""
    base, extra = divmod(int(budget), int(rounds))
    return [base + (t < extra) for t in range(rounds)]


def round_seed(seed: int, round_number: int, purpose: int) -> np.random.SeedSequence:
    """Independent seeded streams per round and purpose, so a resumed run draws what an
    uninterrupted one would have drawn."""
    return np.random.SeedSequence([seed, round_number, purpose])


def row_keys(n_rows: int, seed: int, round_number: int, purpose: int) -> np.ndarray:
    """One seeded uniform number per pool row: the only source of randomness of a round's draws
    and samples, so they depend on rows, never on how the clusters are numbered."""
    return np.random.default_rng(round_seed(seed, round_number, purpose)).random(n_rows)


def _label_free_order(labels: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """The clusters in the order of the key of each one's first pool row (a cluster without rows
    last): a random order that relabelling the clusters does not change."""
    first = np.full(k, len(labels), dtype=np.int64)
    np.minimum.at(first, labels, np.arange(len(labels)))
    cluster_key = np.where(first < len(labels), keys[np.minimum(first, len(labels) - 1)], 2.0)
    return np.argsort(cluster_key, kind="stable")


def draw_round(labels: np.ndarray, quality: np.ndarray, weights: np.ndarray,
               selected: np.ndarray, n_items: int, sample_tau: float, seed: int,
               round_number: int) -> np.ndarray:
    """The n_items new rows of one round: per-cluster budget ∝ w_j · |remaining X_j| (exact total,
    largest remainder with ties in a random order), then softmax(q/τ) sampling without
    replacement inside each cluster (Gumbel top-b_j: the successive-sampling law of static kMQ)."""
    labels = np.asarray(labels, dtype=np.int64)
    quality = np.asarray(quality, dtype=np.float64)
    available = np.ones(len(labels), dtype=bool)
    available[selected] = False
    if n_items > available.sum():
        raise ConfigError(f"round {round_number} needs {n_items} new items but only "
                          f"{int(available.sum())} remain unselected")
    k = len(weights)
    keys = row_keys(len(labels), seed, round_number, 0)
    order = _label_free_order(labels, row_keys(len(labels), seed, round_number, 2), k)
    capacity = np.bincount(labels[available], minlength=k)
    allocation = np.zeros(k, dtype=np.int64)
    allocation[order] = allocate_budget(capacity[order], n_items,
                                        np.asarray(weights, dtype=np.float64)[order])
    gumbel = -np.log(-np.log(np.clip(keys, 1e-300, None)))
    rows = np.flatnonzero(available)
    priority = quality[rows] / sample_tau + gumbel[rows]
    rows = rows[np.lexsort((-priority, labels[rows]))]  # by cluster, best key first
    rank = _rank_within(labels[rows])
    return rows[rank < allocation[labels[rows]]]


def _rank_within(sorted_labels: np.ndarray) -> np.ndarray:
    """0, 1, 2, … within each run of equal labels of an array sorted by label."""
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_labels)])
    return np.arange(len(sorted_labels)) - np.repeat(starts, lengths)


def evaluation_sample(labels: np.ndarray, selected: np.ndarray, n_items: int, seed: int,
                      round_number: int, min_per_cluster: int = 2) -> np.ndarray:
    """The selected rows to generate for: as even over clusters as their counts allow, at least
    `min_per_cluster` from every cluster that has them (more than n_items when k demands it),
    in a seeded random order that is drawn afresh each round."""
    labels = np.asarray(labels, dtype=np.int64)
    selected = np.asarray(selected, dtype=np.int64)
    if len(selected) == 0:
        return selected
    keys = row_keys(len(labels), seed, round_number, 1)[selected]
    by_cluster = np.lexsort((keys, labels[selected]))
    rank = np.empty(len(selected), dtype=np.int64)
    rank[by_cluster] = _rank_within(labels[selected][by_cluster])
    counts = np.bincount(labels[selected])
    floor = int(np.minimum(counts, min_per_cluster).sum())
    n = min(len(selected), max(int(n_items), floor))
    return np.sort(selected[np.lexsort((keys, rank))[:n]])


def cluster_means(clusters: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster mean of `values` (NaN where a cluster has none) and the counts."""
    clusters = np.asarray(clusters, dtype=np.int64)
    counts = np.bincount(clusters, minlength=k)
    sums = np.bincount(clusters, weights=np.asarray(values, dtype=np.float64), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


class ClusterScores(NamedTuple):
    """A round's per-cluster summary of the gaps S and the score that moves each weight."""

    mean: np.ndarray  # mean S per cluster, NaN where none was scored
    count: np.ndarray  # scored items per cluster
    update: np.ndarray  # s_j: shrunk, centred, in standard deviations of S; 0 where unscored
    reliability: float  # share of the spread of S that lies between clusters (0: all noise)
    scale: float  # the standard deviation of S the updates are measured in


def score_clusters(clusters: np.ndarray, gaps: np.ndarray, k: int) -> ClusterScores:
    """s_j = R_j · (m_j − m̄) / σ, the one-way random-effects (empirical Bayes) estimate of how
    far cluster j's gap lies above the round's mean, in standard deviations of S.

    With MSW the pooled within-cluster variance and MSB the between-cluster mean square of the
    one-way ANOVA, the between-cluster variance is σ_b² = max(0, (MSB − MSW) / n₀); R_j =
    σ_b² / (σ_b² + MSW / n_j) shrinks a cluster's mean by how much of it is noise, and
    σ² = σ_b² + MSW. Why: a raw mean S has the scorer's units (heuristic S ≈ 8, perplexity S ≈ 1),
    is almost always positive (so being scored meant gaining weight), and with a few items a
    cluster its noise alone would move the weights as much as a real difference. Here identical
    clusters get s ≈ 0 and an unscored cluster exactly 0: neither gains nor loses.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    gaps = np.asarray(gaps, dtype=np.float64)
    mean, count = cluster_means(clusters, gaps, k)
    none = ClusterScores(mean, count, np.zeros(k), 0.0, float(gaps.std(ddof=1))
                         if len(gaps) > 1 else 0.0)
    groups = int((count > 0).sum())
    if groups < 2 or len(gaps) <= groups:  # no spread within or between clusters to compare
        return none
    grand = float(gaps.mean())
    within = float(((gaps - mean[clusters]) ** 2).sum()) / (len(gaps) - groups)
    between = float((count * np.nan_to_num(mean - grand) ** 2).sum()) / (groups - 1)
    n0 = (len(gaps) - float((count.astype(np.float64) ** 2).sum()) / len(gaps)) / (groups - 1)
    variance_between = max(0.0, (between - within) / n0)
    total = variance_between + within
    if variance_between <= 0 or total <= 0:
        return none._replace(scale=float(np.sqrt(total)))
    shrink = np.where(count > 0, variance_between / (variance_between + within
                                                     / np.maximum(count, 1)), 0.0)
    update = shrink * np.nan_to_num(mean - grand) / np.sqrt(total)
    return ClusterScores(mean, count, update, variance_between / total, float(np.sqrt(total)))


def update_weights(weights: np.ndarray, cluster_scores: np.ndarray, tau: float) -> np.ndarray:
    """w_j ← w_j · exp(s_j / τ), renormalised; NaN scores (no scored items) leave w_j as it was.

    Computed in log space so large s/τ cannot overflow; zero weights stay zero.
    """
    weights = np.asarray(weights, dtype=np.float64)
    scores = np.asarray(cluster_scores, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ConfigError("one score per cluster weight is needed")
    if tau <= 0:
        raise ConfigError(f"temperature tau must be > 0, got {tau}")
    with np.errstate(divide="ignore"):
        log_w = np.log(weights) + np.where(np.isnan(scores), 0.0, scores / tau)
    finite = np.isfinite(log_w)
    if not finite.any():
        raise ConfigError("every cluster weight is zero")
    new = np.where(finite, np.exp(log_w - log_w[finite].max()), 0.0)
    return new / new.sum()


def weight_entropy(weights: np.ndarray) -> float:
    """Shannon entropy of the cluster weights in nats: log k when uniform, 0 when one cluster
    holds everything — the number that makes a collapse visible."""
    w = np.asarray(weights, dtype=np.float64)
    w = w[w > 0] / w.sum()
    return float(-(w * np.log(w)).sum())


def low_quality_share(cluster_quality: np.ndarray, threshold: float) -> float:
    """The share of scored clusters whose mean normalised quality is below `threshold`."""
    scored = cluster_quality[~np.isnan(cluster_quality)]
    return float((scored < threshold).mean()) if len(scored) else float("nan")
