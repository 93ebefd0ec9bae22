"""A run directory never mixes pools: every stage checks the fingerprint of what it reads
against what it was computed from, and a failed load changes nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from selection_core.select import stages as pipeline
from selection_core.spine.config import EmbedConfig, KMeansConfig, ScorerConfig, SelectionConfig
from selection_core.data.loaders import ingest_pool
from selection_core.spine.errors import InputError, StaleStageError
from selection_core.spine.store import RunStore, write_npy


def write_pool(path: Path, n: int, topic: str) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"{topic} question {i}: why {i % 7}?",
                                        "response": f"answer {i}"}) + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(write_pool(root / "a.jsonl", 60, "cooking"))])
    pipeline.embed(store, EmbedConfig())
    write_pool(root / "b.jsonl", 60, "astronomy")
    return root


@pytest.fixture
def store(embedded: Path, tmp_path: Path) -> RunStore:
    shutil.copytree(embedded, tmp_path, dirs_exist_ok=True)
    return RunStore(tmp_path / "run")


def test_a_failed_reload_keeps_the_pool_and_its_record(store: RunStore, tmp_path: Path) -> None:
    before = store.stage_info("pool")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r"}\n{broken\n')
    with pytest.raises(InputError, match="line 2"):
        pipeline.ingest(store, [str(bad)])
    after = store.stage_info("pool")
    assert after["config"] == before["config"] and after["fingerprint"] == before["fingerprint"]
    assert str(bad) in after["last_failure"]["config"]["inputs"]
    assert "malformed JSON" in after["last_failure"]["error"]
    assert len(pipeline.load_run_pool(store)) == 60
    pipeline.cluster(store, KMeansConfig(k=3))  # the run still works end to end


def test_a_pool_replaced_behind_the_record_is_refused(store: RunStore, tmp_path: Path) -> None:
    ingest_pool([str(tmp_path / "b.jsonl")], store.path(pipeline.POOL))
    with pytest.raises(StaleStageError, match="is not the pool this run recorded"):
        pipeline.load_run_pool(store)


def test_embeddings_of_another_pool_are_refused_at_every_stage(store: RunStore,
                                                               tmp_path: Path) -> None:
    pipeline.ingest(store, [str(tmp_path / "b.jsonl")])  # a new pool, not embedded yet
    stages = [lambda: pipeline.cluster(store, KMeansConfig(k=3)),
              lambda: pipeline.projection(store),
              lambda: pipeline.select(store, SelectionConfig(budget=5, k=3), KMeansConfig(k=3),
                                      ScorerConfig())]
    for stage in stages:
        with pytest.raises(StaleStageError, match="computed from another pool"):
            stage()
    pipeline.embed(store, EmbedConfig())
    assert len(pipeline.select(store, SelectionConfig(budget=5, k=3), KMeansConfig(k=3),
                               ScorerConfig())) == 5


def test_an_embeddings_file_of_another_size_is_refused(store: RunStore) -> None:
    write_npy(store.path(pipeline.EMBEDDINGS), np.zeros((10, 384), dtype=np.float32))
    with pytest.raises(StaleStageError, match="holds 10 rows, not the 60"):
        pipeline.load_embeddings(store)
