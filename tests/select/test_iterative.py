"""The per-round math of iterative kMQ: budgets, draws, samples and the weight update."""
from __future__ import annotations

import numpy as np
import pytest

from selection_core.errors import ConfigError
from selection_core.select.iterative import IterativeConfig, cluster_means, draw_round, \
    evaluation_sample, low_quality_share, round_sizes, update_weights


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
    added = draw_round(labels, np.zeros(100), weights, np.arange(10), 24, 1.0, seed=0,
                       round_number=1)
    # remaining 50, 30, 10 → shares 10 : 6 : 6 of 24 → 10.9, 6.5, 6.5 → 11, 7, 6 (largest remainder)
    assert np.bincount(labels[added], minlength=3).tolist() == [11, 7, 6]


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
    # 3 each; cluster 2 holds only 2, so the spare one goes to the lowest-index cluster
    assert np.bincount(labels[sample], minlength=4).tolist() == [4, 3, 2, 3]
    assert evaluation_sample(labels, selected, 12, 0, 1).tolist() == sample.tolist()
    assert len(evaluation_sample(labels, selected, 1000, 0, 1)) == len(selected)


def test_cluster_means_mark_unscored_clusters_nan() -> None:
    means, counts = cluster_means(np.array([0, 0, 2]), np.array([1.0, 3.0, -1.0]), 4)
    assert counts.tolist() == [2, 0, 1, 0]
    np.testing.assert_allclose(means, [2.0, np.nan, -1.0, np.nan])


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
