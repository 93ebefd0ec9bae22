"""Issue 25 §5: k-means starts from k-means++ seeds (scikit-learn's, on faiss' training sample),
each restart from its own seeds; faiss' random start stays reachable as `init="random"`, under
another cache key."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from selection_core.select import stages as pipeline
from selection_core.spine import runner
from selection_core.cli import _kmeans_config, build_parser
from selection_core.cluster import FaissKMeans
from selection_core.spine.config import KMeansConfig, SweepConfig
from selection_core.spine.errors import ConfigError
from selection_core.spine.store import RunStore


def five_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """5 × 150 points around centres 4 σ apart in each of 64 coordinates: no two blobs touch,
    so the right partition is unambiguous."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(5, 64))
    X = np.concatenate([c + rng.normal(size=(150, 64)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(5), 150)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 11])
def test_kmeans_plusplus_finds_five_separate_blobs_for_every_seed(seed: int) -> None:
    X, truth = five_blobs()
    model = FaissKMeans(n_clusters=5, seed=seed).fit(X)
    assert normalized_mutual_info_score(truth, model.labels_) == pytest.approx(1.0)
    assert sorted(np.bincount(model.labels_).tolist()) == [150] * 5


@pytest.mark.parametrize("seed", [4, 11])
def test_faiss_random_start_merges_two_blobs_at_these_seeds(seed: int) -> None:
    """Why the change: faiss' random rows put two centroids in one blob, even with 5 restarts."""
    X, truth = five_blobs()
    model = FaissKMeans(n_clusters=5, seed=seed, init="random").fit(X)
    assert normalized_mutual_info_score(truth, model.labels_) < 0.9
    assert 300 in np.bincount(model.labels_)


def test_kmeans_plusplus_is_seeded_and_keeps_its_best_restart() -> None:
    X, _ = five_blobs()
    X = X + np.random.default_rng(1).normal(scale=6.0, size=X.shape).astype(np.float32)  # overlap
    fit = FaissKMeans(n_clusters=8, seed=3, niter=20, nredo=3).fit(X)
    again = FaissKMeans(n_clusters=8, seed=3, niter=20, nredo=3).fit(X)
    assert np.array_equal(fit.cluster_centers_, again.cluster_centers_)
    assert np.array_equal(fit.labels_, again.labels_)
    other = FaissKMeans(n_clusters=8, seed=4, niter=20, nredo=3).fit(X)
    assert not np.array_equal(fit.cluster_centers_, other.cluster_centers_)
    # the first restart of nredo=3 is the only one of nredo=1: more restarts are never worse
    one = FaissKMeans(n_clusters=8, seed=3, niter=20, nredo=1).fit(X)
    assert fit.inertia_ <= one.inertia_
    assert fit.init_seconds_ > 0


def test_unknown_init_is_one_clear_error() -> None:
    X, _ = five_blobs()
    with pytest.raises(ConfigError, match="unknown k-means init 'kmeans'"):
        FaissKMeans(n_clusters=5, init="kmeans").fit(X)


def test_init_reaches_the_config_from_the_flags_and_the_sweep() -> None:
    args = build_parser().parse_args(["cluster", "--run", "r", "--k", "4"])
    assert _kmeans_config(args, 4).init == "k-means++"
    args = build_parser().parse_args(["cluster", "--run", "r", "--k", "4",
                                      "--kmeans-init", "random"])
    assert _kmeans_config(args, 4).init == "random"
    assert SweepConfig(ks=(4,), init="random").kmeans(4) == KMeansConfig(k=4, init="random")


def test_clusters_of_the_random_start_are_not_reused_for_kmeans_plusplus(tmp_path: Path) -> None:
    """`init` is in the cluster stage's key: a run clustered before k-means++ (faiss' random
    start) is computed afresh, not read back."""
    X, _ = five_blobs()
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p{i}", "response": "r"}) + "\n"
                            for i in range(len(X))))
    np.save(tmp_path / "x.npy", X, allow_pickle=False)
    store = RunStore(tmp_path / "run")
    pipeline.ingest(store, [str(data)])
    pipeline.embed_vectors(store, tmp_path / "x.npy")
    old, new = KMeansConfig(k=5, seed=4, init="random"), KMeansConfig(k=5, seed=4)
    merged = pipeline.cluster(store, old, write_table=False)
    assert runner.finished(store, pipeline.CLUSTER, new) is None
    assert runner.folder_of(store, pipeline.CLUSTER, old) != \
        runner.folder_of(store, pipeline.CLUSTER, new)
    separated = pipeline.cluster(store, new, write_table=False)
    assert separated.inertia < merged.inertia
