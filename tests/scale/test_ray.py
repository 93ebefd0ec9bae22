"""The per-row stages on a local Ray cluster with 2 workers give the single process's results,
and resume after a killed worker and an interrupted driver.

One cluster for the module (Ray starts once, ~10 s): every Ray test lives here, so no other test
waits for it. Tiny models: MiniLM for embeddings, the tiny random llama for gradients.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core import pipeline
from selection_core.config import EmbedConfig, LoRAConfig, ScorerConfig
from selection_core.data.demo import write_demo_pool
from selection_core.data.loaders import fingerprint
from selection_core.features.embed import embed_texts, resume_chunk_rows
from selection_core.influence import pipeline as influence
from selection_core.scale import ScaleConfig
from selection_core.select.bids import select_on_matrix
from selection_core.store import RunStore, read_npy

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


def test_embeddings_equal_the_single_process_ones(cluster: str, tmp_path: Path) -> None:
    texts = _texts(150)  # 3 shards of 64, 64, 22 rows
    assert resume_chunk_rows(len(texts)) == 64
    config = EmbedConfig(device="cpu")
    single = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "one")
    seen: list[tuple[int, int]] = []
    sharded = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "ray",
                          scale=TWO_WORKERS, progress=lambda d, n: seen.append((d, n)))
    np.testing.assert_allclose(sharded, single, atol=1e-5)
    assert sharded.dtype == np.float32 and sharded.shape == (150, 384)
    assert sorted(seen)[0] == (0, 150) and seen[-1][0] == 150


def test_killed_worker_then_interrupted_driver_resumes_from_finished_shards(
        cluster: str, tmp_path: Path) -> None:
    """A worker is SIGKILLed after the first shard arrives (Ray restarts it and the run goes
    on); the driver is interrupted after the second. The rerun computes the third shard only
    and gives the single process's embeddings."""
    texts = _texts(150)
    config = EmbedConfig(device="cpu")
    single = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "one")
    arrived: list[int] = []

    class Interrupted(Exception):
        pass

    def disrupt(done: int, total: int) -> None:
        arrived.append(done)
        if len(arrived) == 2:  # after the first shard (the first call reports 0 done)
            victim = _worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
        if len(arrived) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "ray",
                    scale=TWO_WORKERS, progress=disrupt)
    key_dir = next((tmp_path / "ray" / "embeddings").iterdir())
    assert len(list(key_dir.glob("chunk_*.npy"))) == 2  # both finished shards kept

    resumed: list[int] = []
    vectors = embed_texts(texts, config, fingerprint(texts), cache_dir=tmp_path / "ray",
                          scale=TWO_WORKERS, progress=lambda d, n: resumed.append(d))
    assert resumed[0] == 150 - 22 or resumed[0] == 150 - 64  # only one shard left to compute
    assert len(resumed) == 2  # one report before, one after that shard: nothing recomputed
    np.testing.assert_allclose(vectors, single, atol=1e-5)


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
    val[["task", "prompt", "response"]].to_json(
        influence._validation_path(store, SETTINGS.key()), orient="records", lines=True)
    return store.root


SETTINGS = influence.FeatureSettings(dim=32, max_length=64, batch_size=4)


def test_gradient_features_matrix_and_bids_equal_the_single_process(
        warmed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influence, "FEATURE_CHUNK_ROWS", 8)  # 3 training shards, 1 validation
    runs = {}
    for name, scale in (("one", None), ("ray", TWO_WORKERS)):
        shutil.copytree(warmed, tmp_path / name)
        store = RunStore(tmp_path / name, create=False)
        folder = influence.features(store, SETTINGS, device="cpu", scale=scale)
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
        cluster: str, tmp_path: Path) -> None:
    """`score --ray ADDRESS` through the CLI joins this cluster; bench_ray --quick runs."""
    from selection_core.cli import main

    store = RunStore(tmp_path / "run")
    pipeline.ingest(store, [str(write_demo_pool(tmp_path / "pool.jsonl", n=12))])
    config = ScorerConfig(name="perplexity", model="tiny-random-llama", device="cpu")
    single = pipeline.quality(RunStore(tmp_path / "run"), config)
    shutil.rmtree(store.path("quality"))
    assert main(["score", "--run", str(store.root), "--scorer", "perplexity", "--scorer-model",
                 "tiny-random-llama", "--device", "cpu", "--ray", cluster, "--workers", "2"]) == 0
    np.testing.assert_allclose(read_npy(next(store.path("quality").glob("*.npy"))), single,
                               rtol=1e-6)

    out = subprocess.run([sys.executable, "benchmarks/bench_ray.py", "--quick", "--ray",
                          cluster], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows/s" in out.stdout and "2 workers" in out.stdout
