from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selection_core.errors import InputError, MissingStageError
from selection_core.store import RunStore, atomic_path, chunked_compute, read_npy, write_json, \
    write_npy


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_npy_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a plain numeric"):
        read_npy(path)


def test_chunked_compute_resumes_after_interruption(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    interrupt_at = {20}

    def compute(start: int, stop: int) -> np.ndarray:
        calls.append((start, stop))
        if start in interrupt_at:
            interrupt_at.clear()  # only the first run is interrupted
            raise KeyboardInterrupt
        return np.arange(start, stop, dtype=np.float32)[:, None]

    with pytest.raises(KeyboardInterrupt):
        chunked_compute(tmp_path / "c", 25, 10, compute)
    assert calls == [(0, 10), (10, 20), (20, 25)]
    calls.clear()
    result = chunked_compute(tmp_path / "c", 25, 10, compute)
    assert calls == [(20, 25)]  # the finished chunks were not recomputed
    assert np.array_equal(result[:, 0], np.arange(25))
    calls.clear()
    assert np.array_equal(chunked_compute(tmp_path / "c", 25, 10, compute), result)
    assert calls == []
    assert not list((tmp_path / "c").glob("chunk_*"))


def test_stage_records_success_failure_and_timing(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    with store.stage("ok", {"a": 1}, "h1") as info:
        info["rows"] = 3
    stage = store.stage_info("ok")
    assert stage["status"] == "done" and stage["rows"] == 3 and stage["config_hash"] == "h1"
    assert stage["seconds"] >= 0 and "numpy" in stage["versions"]
    with pytest.raises(ValueError):
        with store.stage("bad"):
            raise ValueError("boom")
    assert store.stage_info("bad")["status"] == "failed"
    assert "boom" in store.stage_info("bad")["error"]


def test_progress_file_and_missing_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.progress_callback("embed")(5, 5)
    assert store.progress("embed")["done"] == 5
    with pytest.raises(MissingStageError, match="does not exist"):
        RunStore(tmp_path / "absent", create=False)
    write_npy(store.path("x.npy"), np.ones(3))
    with pytest.raises(MissingStageError, match="hint text"):
        store.require("nope.npy", hint="hint text")
