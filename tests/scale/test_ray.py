"""The per-row stages on a local Ray cluster with 2 workers give the single process's results,
and resume after a killed worker and an interrupted driver.

One cluster for the module (Ray starts once, ~10 s): every Ray test lives here, so no other test
waits for it. Tiny models: MiniLM for embeddings, the tiny random llama for gradients.
"""
from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.select import stages as pipeline
from selection_core.spine.config import EmbedConfig, LoRAConfig, ScorerConfig
from selection_core.data.demo import write_demo_pool
from selection_core.data.loaders import fingerprint
from selection_core.features.embed import embed_texts, resume_chunk_rows
from selection_core.influence import pipeline as influence
from selection_core.scale import ScaleConfig
from selection_core.influence.ray_features import ray_features
from selection_core.spine.runner import folder_of
from selection_core.select.bids import select_on_matrix
from selection_core.spine.store import RunStore, read_npy

ray = pytest.importorskip("ray", reason="ray[data] is in requirements.txt; install it to run "
                                        "the Ray path's tests")
REPO = Path(__file__).resolve().parents[2]
TWO_WORKERS = ScaleConfig(ray="local", workers=2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local 2-CPU Ray cluster for this module; yields its address."""
    from selection_core.scale.cluster import connect

    connect("local", num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _texts(n: int) -> list[str]:
    return pd.read_json(write_demo_pool(Path(os.environ["SELECTION_CORE_CACHE"]) / f"d{n}.jsonl",
                                        n=n), lines=True)["prompt"].tolist()


def test_embeddings_equal_the_single_process_after_a_killed_worker_and_driver(
        cluster: str, tmp_path: Path) -> None:
    """3 shards (64, 64, 22 rows) on 2 workers. A worker is SIGKILLed after the first shard
    arrives (Ray restarts it, retries its shard, and the run goes on); the driver is interrupted
    after the second. The rerun computes the last shard only, and the embeddings are the single
    process's."""
    texts = _texts(150)
    assert resume_chunk_rows(len(texts)) == 64
    config = EmbedConfig(device="cpu")
    single = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "one")
    arrived: list[int] = []

    class Interrupted(Exception):
        pass

    def disrupt(done: int, total: int) -> None:
        arrived.append(done)
        if len(arrived) == 2:  # the first shard is written (the first call reports 0 done)
            os.kill(_worker_pids()[0], signal.SIGKILL)
        if len(arrived) == 3:  # the second: Ray went on after the kill
            raise Interrupted

    with pytest.raises(Interrupted):
        embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "ray",
                    scale=TWO_WORKERS, progress=disrupt)
    key_dir = next((tmp_path / "ray" / "embeddings").iterdir())
    finished = sorted(key_dir.glob("chunk_*.npy"))
    assert len(finished) == 2  # each finished shard was written at once, atomically
    kept = sum(len(read_npy(path)) for path in finished)

    resumed: list[int] = []
    vectors = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "ray",
                          scale=TWO_WORKERS, progress=lambda d, n: resumed.append(d))
    # Ray's part reports the kept rows, then all of them after the one missing shard (the
    # assembly's own reports follow): nothing finished was computed again
    assert resumed[:2] == [kept, 150]
    np.testing.assert_allclose(vectors, single, atol=1e-5)
    assert vectors.dtype == np.float32 and vectors.shape == (150, 384)


def _worker_pids() -> list[int]:
    """The processes of this run's Ray Data workers (their process title names the class)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ModelWorker" in command:
                found.append(int(entry.name))
    assert found, "no Ray Data worker process found"
    return found


@pytest.fixture(scope="module")
def warmed(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-row pool, a 1-epoch LoRA warmup of the tiny llama and 6 validation instances."""
    root = tmp_path_factory.mktemp("influence_ray")
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(write_demo_pool(root / "pool.jsonl", n=24))])
    influence.warmup(store, "tiny-random-llama", 1.0,
                     LoRAConfig(r=4, alpha=16, epochs=1, batch_size=4, max_length=64,
                                learning_rate=1e-3, device="cpu"))
    pool = pipeline.load_run_pool(store)
    val = pool.iloc[:6].assign(task=["mmlu", "mmlu", "bbh", "bbh", "tydiqa", "tydiqa"])
    folder = folder_of(store, influence.FEATURES, SETTINGS)  # the features' key folder
    folder.mkdir(parents=True)
    val[["task", "prompt", "response"]].to_json(
        influence.validation_path(folder), orient="records", lines=True)
    return store.root


SETTINGS = influence.FeatureSettings(dim=32, max_length=64, batch_size=4)


def test_gradient_features_matrix_and_bids_equal_the_single_process(
        warmed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influence, "FEATURE_CHUNK_ROWS", 8)  # 3 training shards, 1 validation
    runs = {}
    for name, runner in (("one", None), ("ray", ray_features(TWO_WORKERS))):
        shutil.copytree(warmed, tmp_path / name)
        store = RunStore(tmp_path / name, create=False)
        folder = influence.features(store, SETTINGS, device="cpu", feature_runner=runner)
        runs[name] = (store, folder, influence.matrix(store))
    (one, one_folder, A1), (ray_store, ray_folder, A2) = runs["one"], runs["ray"]
    assert ray_folder.name == one_folder.name
    for part in ("epoch1/train.npy", "epoch1/val.npy", "rds/train.npy", "rds/val.npy"):
        np.testing.assert_allclose(read_npy(ray_folder / part), read_npy(one_folder / part),
                                   atol=1e-5, err_msg=part)
    assert (ray_folder / "epoch1" / "info.json").read_text() == \
        (one_folder / "epoch1" / "info.json").read_text()
    assert not list(ray_folder.rglob("*.shards-*"))  # assembled, then removed
    np.testing.assert_allclose(A2, A1, atol=1e-5)
    tasks = (tmp_path / "one" / "val_tasks.txt").read_text().split()
    np.testing.assert_array_equal(select_on_matrix(A2, tasks, "bids", 8),
                                  select_on_matrix(A1, tasks, "bids", 8))
    np.testing.assert_allclose(influence.rds_scores_for_run(ray_store),
                               influence.rds_scores_for_run(one), atol=1e-5)


def test_perplexity_scores_and_the_bench_on_the_running_cluster(
        cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`score --ray ADDRESS` through the CLI joins this cluster (a worker's bad model is one
    line); bench_ray --quick runs."""
    from selection_core.cli import main

    store = RunStore(tmp_path / "run")
    pipeline.ingest(store, [str(write_demo_pool(tmp_path / "pool.jsonl", n=12))])
    config = ScorerConfig(name="perplexity", model="tiny-random-llama", device="cpu")
    single = pipeline.quality(RunStore(tmp_path / "run"), config)
    shutil.rmtree(folder_of(store, pipeline.QUALITY, config))  # the CLI computes it anew
    score = ["score", "--run", str(store.root), "--scorer", "perplexity", "--device", "cpu",
             "--ray", cluster, "--workers", "2", "--scorer-model"]
    assert main([*score, str(tmp_path / "no-such-model")]) == 2  # fails in the worker: one line
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: a Ray worker stopped: {tmp_path / 'no-such-model'}: model file or directory "
        "not found")
    assert main([*score, "tiny-random-llama"]) == 0
    np.testing.assert_allclose(read_npy(folder_of(store, pipeline.QUALITY, config) / "scores.npy"),
                               single, rtol=1e-6)

    bench = _load_bench()  # in this process: it joins the running cluster
    results = bench.main(["--quick", "--ray", cluster, "--workers", "2"])  # 1 worker: as 2
    assert set(results) == {"single process", "2 workers"}
    assert all(figures["rows_per_s"] > 0 for figures in results.values())
    assert "2 workers: " in capsys.readouterr().out


def _load_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ray", REPO / "benchmarks" / "bench_ray.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
