"""`embed --vectors`: precomputed embeddings imported as the run's embeddings (issue 15 §1)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selection_core.select import stages as pipeline
from selection_core.cli import main
from selection_core.spine.store import RunStore

ROWS = 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("vectors") / "demo.jsonl"
    assert main(["demo", "--out", str(data), "--n", str(ROWS), "--seed", "2"]) == 0
    return data


def vectors(rows: int = ROWS, dim: int = 6, dtype: str = "float16", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim)).astype(dtype)


def embed(demo: Path, run: Path, source: Path, *extra: str) -> int:
    return main(["embed", "--data", str(demo), "--run", str(run), "--vectors", str(source), *extra])


def test_npy_and_parquet_vectors_become_the_runs_embeddings(demo: Path, tmp_path: Path) -> None:
    values = vectors()
    np.save(tmp_path / "v.npy", values)
    assert embed(demo, tmp_path / "a", tmp_path / "v.npy") == 0
    imported = np.load(tmp_path / "a" / pipeline.EMBEDDINGS)
    assert imported.dtype == np.float32 and np.array_equal(imported, values.astype(np.float32))

    table = pa.table({"id": np.arange(ROWS), "vec": pa.array(list(values.astype(np.float32)))})
    pq.write_table(table, tmp_path / "v.parquet", row_group_size=50)
    assert embed(demo, tmp_path / "b", tmp_path / "v.parquet", "--vectors-column", "vec") == 0
    assert np.array_equal(np.load(tmp_path / "b" / pipeline.EMBEDDINGS), imported)
    # same values and pool: same key, so downstream stages are shared; other values: another key
    keys = [pipeline.embedding_key(RunStore(tmp_path / name)) for name in ("a", "b")]
    assert keys[0] == keys[1]
    np.save(tmp_path / "w.npy", vectors(seed=1))
    assert embed(demo, tmp_path / "a", tmp_path / "w.npy") == 0
    assert pipeline.embedding_key(RunStore(tmp_path / "a")) != keys[0]
    assert main(["cluster", "--run", str(tmp_path / "a"), "--k", "3"]) == 0


def write_pickled(path: Path) -> None:
    np.save(path, np.array([object()] * ROWS, dtype=object), allow_pickle=True)


BAD = {
    "rows": (lambda p: np.save(p, vectors(rows=ROWS - 1)), "119 vectors for a pool of 120"),
    "nan": (lambda p: np.save(p, np.where(np.arange(ROWS)[:, None] == 7, np.nan, vectors())
                              .astype("float16")), "pool row 7 holds NaN"),
    "inf": (lambda p: np.save(p, np.where(np.arange(ROWS)[:, None] == 9, np.inf, vectors())
                              .astype("float32")), "pool row 9 holds NaN or infinite"),
    "dtype": (lambda p: np.save(p, vectors(dtype="float64")), "float32 or float16, got float64"),
    "pickled": (write_pickled, "never unpickled"),
    "flat": (lambda p: np.save(p, vectors()[:, 0]), "2-D array"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_vectors_get_one_line_naming_the_file_and_write_nothing(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    run = tmp_path / "run"
    np.save(tmp_path / "good.npy", vectors())
    assert embed(demo, run, tmp_path / "good.npy") == 0
    before = (run / pipeline.EMBEDDINGS).read_bytes()
    stage = json.loads((run / "manifest.json").read_text())["stages"]["embed"]
    capsys.readouterr()
    write, message = BAD[case]
    bad = tmp_path / f"{case}.npy"
    write(bad)
    assert embed(demo, run, bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}") and message in err and "\n" not in err, err
    assert (run / pipeline.EMBEDDINGS).read_bytes() == before
    assert json.loads((run / "manifest.json").read_text())["stages"]["embed"] == stage
    assert [p.name for p in run.iterdir() if p.name.startswith(".embeddings")] == []


def test_bad_parquet_columns(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "v.parquet"
    ragged = [list(row) for row in vectors(dtype="float32")]
    ragged[30] = ragged[30][:-1]
    pq.write_table(pa.table({"embedding": ragged, "name": [str(i) for i in range(ROWS)]}), path)
    cases = [((), "a row in 0..119 is empty or of another length"),
             (("--vectors-column", "nope"), "no column 'nope'"),
             (("--vectors-column", "name"), "not a list of floats")]
    for extra, message in cases:
        assert embed(demo, tmp_path / "run", path, *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {path}") and message in err, err
    assert not (tmp_path / "run" / pipeline.EMBEDDINGS).exists()


def test_a_failed_import_with_a_new_pool_changes_nothing(demo: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Issue 29 §4: `embed --data NEW --vectors BAD` on an existing run used to swap the pool in
    (its vectors then failed), leaving `embed done` beside embeddings of the old pool."""
    run = tmp_path / "run"
    np.save(tmp_path / "good.npy", vectors())
    assert embed(demo, run, tmp_path / "good.npy") == 0
    files = {name: (run / name).read_bytes() for name in (pipeline.POOL, pipeline.EMBEDDINGS)}
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"prompt": f"p{i}", "response": f"r{i}"}) + "\n"
                             for i in range(50)))
    capsys.readouterr()
    assert embed(other, run, tmp_path / "good.npy") == 2  # 120 vectors for a pool of 50
    assert "120 vectors for a pool of 50" in capsys.readouterr().err
    assert {name: (run / name).read_bytes() for name in files} == files
    after = json.loads((run / "manifest.json").read_text())["stages"]
    assert after["embed"] == stages["embed"]
    assert {k: v for k, v in after["pool"].items() if k != "last_failure"} == \
        {k: v for k, v in stages["pool"].items() if k != "last_failure"}
    assert "120 vectors" in after["pool"]["last_failure"]["error"]
    assert {p.name for p in run.iterdir() if p.name.startswith(".")} <= {".lock", ".manifest.lock"}
    assert main(["cluster", "--run", str(run), "--k", "3"]) == 0  # the run is as it was
    np.save(tmp_path / "fifty.npy", vectors(rows=50))
    assert embed(other, run, tmp_path / "fifty.npy") == 0  # good vectors: both change
    assert len(pipeline.load_run_pool(RunStore(run))) == 50
    assert pipeline.load_embeddings(RunStore(run)).shape == (50, 6)
