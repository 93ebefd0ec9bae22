"""The per-round math of iterative kMQ: budgets, draws, samples, cluster scores and the weight
update — each against a naive reference or a property the method must have."""
from __future__ import annotations

import numpy as np
import pytest

from selection_core.spine.errors import ConfigError
from selection_core.iterative.rounds import IterativeConfig, cluster_means, draw_round, \
    evaluation_sample, low_quality_share, round_sizes, score_clusters, update_weights, \
    weight_entropy


@pytest.mark.parametrize(("budget", "rounds", "expected"),
                         [(9, 3, [3, 3, 3]), (10, 3, [4, 3, 3]), (11, 3, [4, 4, 3]),
                          (5, 5, [1] * 5), (7, 1, [7])])
def test_round_sizes_split_the_budget_exactly(budget, rounds, expected) -> None:
    assert round_sizes(budget, rounds) == expected


def test_weight_update_is_multiplicative_and_keeps_the_previous_weight() -> None:
    weights = np.array([0.5, 0.3, 0.2])
    scores = np.array([1.0, 0.0, -1.0])
    expected = weights * np.exp(scores / 2.0)
    np.testing.assert_allclose(update_weights(weights, scores, tau=2.0),
                               expected / expected.sum())
    # not softmax(s): the reference code dropped w; equal scores leave the weights unchanged
    np.testing.assert_allclose(update_weights(weights, np.full(3, 0.7), tau=1.0), weights)


def test_clusters_without_scores_keep_their_weight_before_renormalising() -> None:
    weights = np.array([0.25, 0.25, 0.5])
    new = update_weights(weights, np.array([np.log(3.0), np.nan, np.nan]), tau=1.0)
    raw = np.array([0.75, 0.25, 0.5])
    np.testing.assert_allclose(new, raw / raw.sum())


def test_weight_update_survives_huge_scores_and_keeps_zero_weights_zero() -> None:
    new = update_weights(np.array([0.0, 0.5, 0.5]), np.array([5000.0, 3000.0, 1000.0]), tau=1.0)
    assert np.isfinite(new).all() and new[0] == 0.0
    np.testing.assert_allclose(new, [0.0, 1.0, 0.0])
    with pytest.raises(ConfigError):
        update_weights(np.zeros(2), np.zeros(2), tau=1.0)
    with pytest.raises(ConfigError):
        update_weights(np.ones(2), np.zeros(2), tau=0.0)


def test_rounds_meet_the_budget_exactly_without_repeats_and_follow_the_weights() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    quality = rng.normal(size=len(labels))
    weights = np.array([0.1, 0.1, 0.1, 0.7])
    selected = np.zeros(0, dtype=np.int64)
    for number, size in enumerate(round_sizes(40, 3), start=1):
        added = draw_round(labels, quality, weights, selected, size, 1.0, seed=3,
                           round_number=number)
        assert len(added) == size and not np.isin(added, selected).any()
        selected = np.concatenate([selected, added])
    assert len(selected) == 40 == len(np.unique(selected))
    # the heavily weighted small cluster is drained first (∝ w_j · |remaining X_j|)
    assert np.isin(np.flatnonzero(labels == 3), selected).all()


def test_per_cluster_budget_is_weight_times_remaining_size() -> None:
    labels = np.repeat(np.arange(3), [60, 30, 10])
    weights = np.array([0.2, 0.2, 0.6])
    # remaining 50, 30, 10 → shares 10 : 6 : 6 of 24 → 10.9, 6.55, 6.55 → 11, then the last item
    # to cluster 1 or 2 (a tie, broken at random rather than toward the lower number)
    seen = set()
    for seed in range(12):
        added = draw_round(labels, np.zeros(100), weights, np.arange(10), 24, 1.0, seed=seed,
                           round_number=1)
        seen.add(tuple(np.bincount(labels[added], minlength=3).tolist()))
    assert seen == {(11, 7, 6), (11, 6, 7)}


def test_draw_samples_in_proportion_to_the_quality_softmax() -> None:
    """One item from a cluster of three with quality log 1, log 2, log 5: drawn 10%, 20%, 50%…
    of the time (τ = 1) — the law of static kMQ's softmax sampling."""
    labels = np.zeros(3, dtype=np.int64)
    quality = np.log([1.0, 2.0, 5.0])
    draws = [draw_round(labels, quality, np.ones(1), np.zeros(0, dtype=np.int64), 1, 1.0,
                        seed=seed, round_number=1)[0] for seed in range(4000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.125, 0.25, 0.625],
                               atol=0.025)


def test_draws_are_seeded_per_round() -> None:
    labels = np.repeat(np.arange(3), 20)
    args = (labels, np.zeros(60), np.full(3, 1 / 3), np.zeros(0, dtype=np.int64), 9, 1.0)
    assert draw_round(*args, seed=1, round_number=2).tolist() == \
        draw_round(*args, seed=1, round_number=2).tolist()
    assert draw_round(*args, seed=1, round_number=2).tolist() != \
        draw_round(*args, seed=1, round_number=3).tolist()


def test_a_round_larger_than_what_remains_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="only 2 remain"):
        draw_round(np.zeros(5, dtype=int), np.zeros(5), np.ones(1), np.arange(3), 4, 1.0, 0, 1)


def test_evaluation_sample_is_balanced_over_clusters_and_seeded() -> None:
    labels = np.repeat(np.arange(4), [40, 40, 3, 17])
    selected = np.arange(len(labels))[::2]  # 20, 20, 2 and 8 selected per cluster
    sample = evaluation_sample(labels, selected, 12, seed=0, round_number=1)
    assert np.isin(sample, selected).all() and len(np.unique(sample)) == 12
    # 3 each where possible (cluster 2 holds 2); the spare one goes to a random cluster
    counts = np.bincount(labels[sample], minlength=4).tolist()
    assert counts in ([4, 3, 2, 3], [3, 4, 2, 3], [3, 3, 2, 4])
    assert evaluation_sample(labels, selected, 12, 0, 1).tolist() == sample.tolist()
    assert len(evaluation_sample(labels, selected, 1000, 0, 1)) == len(selected)
    spares = {tuple(np.bincount(labels[evaluation_sample(labels, selected, 12, 0, r)],
                                minlength=4)) for r in range(1, 30)}
    assert len(spares) == 3  # not always the lowest-numbered cluster


def test_evaluation_sample_covers_every_cluster_when_k_exceeds_the_budget() -> None:
    """k = 50 clusters, 8 prompts asked for: every cluster with selected items is still scored,
    two each by default (one where it holds one), and each round takes other rows."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(50), 10))
    selected = np.flatnonzero(np.isin(np.arange(500), rng.choice(500, 150, replace=False)))
    counts = np.bincount(labels[selected], minlength=50)
    samples = [evaluation_sample(labels, selected, 8, seed=0, round_number=r) for r in (1, 2)]
    for sample in samples:
        scored = np.bincount(labels[sample], minlength=50)
        np.testing.assert_array_equal(scored, np.minimum(counts, 2))
    assert samples[0].tolist() != samples[1].tolist()
    three = evaluation_sample(labels, selected, 8, seed=0, round_number=1, min_per_cluster=3)
    np.testing.assert_array_equal(np.bincount(labels[three], minlength=50), np.minimum(counts, 3))


def test_cluster_means_mark_unscored_clusters_nan() -> None:
    means, counts = cluster_means(np.array([0, 0, 2]), np.array([1.0, 3.0, -1.0]), 4)
    assert counts.tolist() == [2, 0, 1, 0]
    np.testing.assert_allclose(means, [2.0, np.nan, -1.0, np.nan])



def _naive_cluster_scores(clusters: np.ndarray, gaps: np.ndarray, k: int) -> np.ndarray:
    """One-way random-effects shrinkage written out cluster by cluster."""
    members = [gaps[clusters == j] for j in range(k)]
    scored = [m for m in members if len(m)]
    n_total, groups, grand = len(gaps), len(scored), float(np.mean(gaps))
    msw = sum(float(((m - m.mean()) ** 2).sum()) for m in scored) / (n_total - groups)
    msb = sum(len(m) * (m.mean() - grand) ** 2 for m in scored) / (groups - 1)
    n0 = (n_total - sum(len(m) ** 2 for m in scored) / n_total) / (groups - 1)
    between = max(0.0, (msb - msw) / n0)
    return np.array([between / (between + msw / len(m)) * (m.mean() - grand)
                     / np.sqrt(between + msw) if len(m) else 0.0 for m in members])


def test_cluster_scores_match_the_naive_random_effects_estimate() -> None:
    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 6, 80)
    clusters[clusters == 4] = 5  # cluster 4 unscored
    gaps = rng.normal(size=80) + np.array([0.0, 1.5, -1.0, 0.5, 0.0, 2.0])[clusters]
    scores = score_clusters(clusters, gaps, 6)
    np.testing.assert_allclose(scores.update, _naive_cluster_scores(clusters, gaps, 6),
                               rtol=1e-10, atol=1e-12)
    assert scores.update[4] == 0.0 and np.isnan(scores.mean[4]) and scores.count[4] == 0
    assert scores.update[5] > scores.update[1] > scores.update[3] > scores.update[0] \
        > scores.update[2]
    assert 0 < scores.reliability < 1


def test_cluster_scores_do_not_depend_on_the_scorer_scale() -> None:
    """τ means the same for every scorer: S in another unit (heuristic S ≈ 8 vs perplexity
    S ≈ 1) or shifted gives exactly the same updates."""
    rng = np.random.default_rng(4)
    clusters = rng.integers(0, 5, 60)
    gaps = rng.normal(size=60) + 0.8 * clusters
    base = score_clusters(clusters, gaps, 5)
    rescaled = score_clusters(clusters, 8.0 * gaps + 5.0, 5)
    np.testing.assert_allclose(rescaled.update, base.update, atol=1e-12)
    assert rescaled.scale == pytest.approx(8.0 * base.scale)


def test_cluster_scores_are_zero_without_a_measurable_difference() -> None:
    """Identical clusters (only noise), one item per cluster (no within-cluster spread) or one
    scored cluster: nothing to tell apart, so no weight moves."""
    assert np.all(score_clusters(np.arange(6), np.arange(6.0), 6).update == 0)
    assert np.all(score_clusters(np.zeros(5, dtype=int), np.arange(5.0), 3).update == 0)
    clusters = np.repeat(np.arange(4), 3)
    assert np.all(score_clusters(clusters, np.tile([1.0, 2.0, 3.0], 4), 4).update == 0)
    rng = np.random.default_rng(5)
    noise = [np.abs(score_clusters(np.repeat(np.arange(40), 2), rng.normal(1, 0.5, 80),
                                   40).update).max() for _ in range(200)]
    assert np.median(noise) < 0.05 and max(noise) < 1.0


def test_weight_entropy_is_log_k_when_uniform_and_zero_when_collapsed() -> None:
    assert weight_entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8))
    assert weight_entropy(np.array([0.0, 1.0, 0.0])) == 0.0
    assert weight_entropy(np.array([0.5, 0.5, 0.0])) == pytest.approx(np.log(2))


def test_low_quality_share_counts_only_scored_clusters() -> None:
    assert low_quality_share(np.array([0.1, 0.5, np.nan, 0.2]), 0.3) == pytest.approx(2 / 3)
    assert np.isnan(low_quality_share(np.array([np.nan]), 0.3))


def test_config_validates_and_hashes_what_changes_results() -> None:
    base = IterativeConfig(k=4, budget=30)
    assert base.config_hash() == IterativeConfig(k=4, budget=30, device="cuda").config_hash()
    assert base.config_hash() != IterativeConfig(k=4, budget=30, tau=0.5).config_hash()
    with pytest.raises(ConfigError, match="reward model"):
        IterativeConfig(k=4, budget=30, scorer="reward")
    with pytest.raises(ConfigError, match="rounds"):
        IterativeConfig(k=4, budget=2, rounds=3)
    with pytest.raises(ConfigError, match="unknown scorer"):
        IterativeConfig(k=4, budget=30, scorer="gpt4")  # type: ignore[arg-type]
