from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selection_core.spine.config import SelectionConfig
from selection_core.spine.errors import ConfigError
from selection_core.spine.apportion import allocate_budget
from selection_core.select.baselines import random_select, top_rows
from selection_core.select.kmq import gumbel_top_k, kmeans_closest_select, \
    kmeans_random_select, kmq_select, select_static


# --------------------------------------------------------------------------- allocation
def test_proportional_largest_remainder() -> None:
    # quotas 10*[5,3,2]/10*... : sizes 50,30,20 of 100, budget 7 → 3.5, 2.1, 1.4 → 4,2,1
    assert allocate_budget(np.array([50, 30, 20]), 7).tolist() == [4, 2, 1]


def test_ties_go_to_the_lower_index() -> None:
    assert allocate_budget(np.array([10, 10, 10]), 2).tolist() == [1, 1, 0]


def test_caps_at_capacity_and_hands_leftover_to_clusters_with_room() -> None:
    # weights push everything to cluster 0, which holds only 2
    allocation = allocate_budget(np.array([2, 10, 10]), 10, weights=np.array([100.0, 1.0, 1.0]))
    assert allocation.tolist() == [2, 4, 4]


def test_zero_weight_clusters_only_when_nothing_else_has_room() -> None:
    assert allocate_budget(np.array([3, 5]), 3, weights=np.array([0.0, 1.0])).tolist() == [0, 3]
    assert allocate_budget(np.array([3, 5]), 7, weights=np.array([0.0, 1.0])).tolist() == [2, 5]


def test_reference_equal_quota_underfill_is_not_copied() -> None:
    sizes = np.array([1000, 5, 5, 5, 5, 5, 5, 5])  # int(b/k) per cluster would give 40 of 100
    allocation = allocate_budget(sizes, 100)
    assert allocation.sum() == 100
    assert (allocation <= sizes).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=25), st.data())
def test_budget_is_exact_and_capped(capacity: list[int], data: st.DataObject) -> None:
    capacity_arr = np.array(capacity)
    budget = data.draw(st.integers(0, int(capacity_arr.sum())))
    weights = np.array(data.draw(st.lists(st.floats(0, 10), min_size=len(capacity),
                                          max_size=len(capacity))))
    for w in (None, weights):
        allocation = allocate_budget(capacity_arr, budget, w)
        assert allocation.sum() == budget
        assert (allocation >= 0).all() and (allocation <= capacity_arr).all()


def test_budget_larger_than_pool_is_an_error() -> None:
    with pytest.raises(ConfigError, match="budget 11"):
        allocate_budget(np.array([5, 5]), 11)


# --------------------------------------------------------------------------- sampling
def test_gumbel_top_k_matches_softmax_probabilities() -> None:
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    first = np.array([gumbel_top_k(logits, 1, rng)[0] for _ in range(20_000)])
    shares = np.bincount(first, minlength=3) / len(first)
    assert np.allclose(shares, [0.6, 0.3, 0.1], atol=0.015)


@pytest.fixture()
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, size=500)
    quality = rng.normal(size=500)
    distances = rng.random(500)
    return labels, quality, distances


def test_kmq_is_exact_proportional_and_reproducible(clustered) -> None:
    labels, quality, _ = clustered
    rows = kmq_select(labels, quality, budget=101, seed=3)
    assert len(rows) == 101 == len(set(rows.tolist()))
    expected = allocate_budget(np.bincount(labels), 101)
    assert np.bincount(labels[rows], minlength=6).tolist() == expected.tolist()
    assert np.array_equal(rows, kmq_select(labels, quality, budget=101, seed=3))
    assert not np.array_equal(np.sort(rows), np.sort(kmq_select(labels, quality, 101, seed=4)))


def test_kmq_prefers_quality_and_low_tau_approaches_top(clustered) -> None:
    labels, quality, _ = clustered
    sampled = kmq_select(labels, quality, budget=100, tau=1.0, seed=0)
    assert quality[sampled].mean() > quality.mean() + 0.3
    cold = kmq_select(labels, quality, budget=100, tau=1e-6, seed=0)
    top = kmq_select(labels, quality, budget=100, top=True)
    assert set(cold.tolist()) == set(top.tolist())
    for j in range(6):  # top option: the best b_j of each cluster
        members = np.flatnonzero(labels == j)
        chosen = np.intersect1d(top, members)
        rest = np.setdiff1d(members, chosen)
        if len(chosen) and len(rest):
            assert quality[chosen].min() >= quality[rest].max()


def test_kmq_respects_availability_mask_and_weights(clustered) -> None:
    labels, quality, _ = clustered
    available = np.ones(len(labels), dtype=bool)
    available[:250] = False
    weights = np.array([5.0, 1, 1, 1, 1, 0])
    rows = kmq_select(labels, quality, budget=60, weights=weights, available=available, seed=0)
    assert (rows >= 250).all() and len(rows) == 60
    assert (labels[rows] == 5).sum() == 0


def test_baselines(clustered) -> None:
    labels, quality, distances = clustered
    km_random = kmeans_random_select(labels, 50, seed=0)
    assert np.bincount(labels[km_random], minlength=6).sum() == 50
    closest = kmeans_closest_select(labels, distances, 50)
    for j in range(6):
        members = np.flatnonzero(labels == j)
        chosen = np.intersect1d(closest, members)
        if len(chosen):
            assert distances[chosen].max() <= np.setdiff1d(
                distances[members], distances[chosen]).min()
    assert len(set(random_select(500, 50, seed=0).tolist())) == 50
    top = top_rows(quality, 10)
    assert set(top.tolist()) == set(np.argsort(-quality)[:10].tolist())


def test_quality_top_ties_lower_index_first() -> None:
    assert top_rows(np.array([1.0, 2.0, 2.0, 2.0]), 2).tolist() == [1, 2]


def test_select_static_dispatch_and_errors(clustered) -> None:
    labels, quality, distances = clustered
    for method in ("kmq", "kmeans-random", "kmeans-closest", "random", "quality-top"):
        rows = select_static(SelectionConfig(method=method, budget=40, k=6), labels, quality,
                             distances)
        assert len(rows) == 40 and np.all(np.diff(rows) > 0)
    with pytest.raises(ConfigError, match="unknown method"):
        select_static(SelectionConfig(method="nope", budget=4), labels, quality, distances)
    with pytest.raises(ConfigError, match="budget 501"):
        kmq_select(labels, quality, budget=501)
    with pytest.raises(ConfigError, match="tau"):
        kmq_select(labels, quality, budget=5, tau=0)
