"""The diversity pipeline on the demo pool and on real data: the methods do what they claim."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from selection_core.select import stages as pipeline
from selection_core.spine.config import EmbedConfig, KMeansConfig, ScorerConfig, SelectionConfig, \
    SweepConfig, UMAPConfig
from selection_core.spine.store import RunStore


def test_kmq_selects_far_less_noise_than_random_on_the_demo_pool(demo_run: RunStore) -> None:
    pool = pipeline.load_run_pool(demo_run)
    kmeans = KMeansConfig(k=8)
    shares = {}
    for method in ("kmq", "random"):
        per_seed = [pipeline.select(demo_run, SelectionConfig(method=method, budget=300, k=8,
                                                              seed=seed), kmeans, ScorerConfig()
                                    )["is_noise"].mean() for seed in range(3)]
        shares[method] = float(np.mean(per_seed))
    print(f"\nnoise share at budget 300 (pool {pool['is_noise'].mean():.3f}): {shares}")
    assert shares["random"] == pytest.approx(pool["is_noise"].mean(), abs=0.04)
    assert shares["kmq"] < 0.65 * shares["random"]


def test_clusters_recover_demo_skills(demo_run: RunStore) -> None:
    pool = pipeline.load_run_pool(demo_run)
    clustering = pipeline.cluster(demo_run, KMeansConfig(k=6))
    score = normalized_mutual_info_score(pool["skill"], clustering.labels)
    print(f"\nNMI(skill, k-means k=6) on the demo pool: {score:.3f}")
    assert score > 0.7


def test_embeddings_load_as_a_read_only_memmap(demo_run: RunStore) -> None:
    """A million-row pool's embeddings are read page by page, never copied whole; read-only, so
    no caller can write into the stored file."""
    vectors = pipeline.load_embeddings(demo_run)
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        vectors[0, 0] = 0.0

def test_sweep_caches_every_k_and_umap_is_cached(demo_run: RunStore) -> None:
    result = pipeline.sweep(demo_run, SweepConfig(ks=(4, 8), niter=20, nredo=1,
                                                  sample_size=1000))
    cached = pipeline.cached_clustering(demo_run, SweepConfig(ks=(4, 8), niter=20,
                                                              nredo=1).kmeans(8))
    assert cached is not None and np.array_equal(cached.labels, result.models[8].labels_)
    table, recommended, _ = pipeline.load_sweep(demo_run)
    assert list(table["k"]) == [4, 8] and recommended in (4, 8)
    coords = pipeline.projection(demo_run, UMAPConfig(n_neighbors=10))
    assert coords.shape == (3000, 2)
    assert np.array_equal(pipeline.projection(demo_run, UMAPConfig(n_neighbors=10)), coords)


@pytest.mark.shared_data
def test_real_mix_clusters_recover_their_sources(shared_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "real")
    pipeline.ingest(store, [str(shared_data / "dolly" / "dolly_filtered_3k.jsonl.gz"),
                            str(shared_data / "code_alpaca" / "code_alpaca_2k.jsonl.gz"),
                            str(shared_data / "gsm8k" / "train.jsonl.gz")], limit=400)
    pipeline.embed(store, EmbedConfig())
    pool = pipeline.load_run_pool(store)
    clustering = pipeline.cluster(store, KMeansConfig(k=3, seed=0))
    score = normalized_mutual_info_score(pool["source"], clustering.labels)
    print(f"\nNMI(source, k-means k=3) on Dolly+Code Alpaca+GSM8K (3×400): {score:.3f}")
    # chance level for 3 balanced sources is ~0.001 at this size
    assert score > 0.6
