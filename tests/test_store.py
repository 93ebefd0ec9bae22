from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from selection_core.spine.errors import InputError, MissingStageError, RunInUseError
from selection_core.spine.store import RunStore, atomic_path, check_output_path, chunked_compute, \
    read_json, read_npy, write_json, write_npy



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


# --------------------------------------------------------------------------- hostile files
def test_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (5 * 2 ** 40 // 8,)})
        handle.write(b"\0" * 64)
    for mmap in (False, True):
        with pytest.raises(InputError, match="header claims 5,497,558,138,880 bytes"):
            read_npy(path, mmap=mmap)


def test_json_is_always_standard(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.set_stage("quality:x", mean=float("nan"), scores=np.array([1.0, np.inf]))
    text = (tmp_path / "run" / "manifest.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name))  # strict parse
    assert store.stage_info("quality:x")["mean"] is None
    assert read_json(tmp_path / "run" / "manifest.json")["stages"]["quality:x"]["scores"] == \
        [1.0, None]


def test_a_broken_manifest_is_named_in_one_line(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.path("manifest.json").write_text('{"stages": {"pool": ')
    with pytest.raises(InputError, match="manifest.json: not valid JSON .*start a new run"):
        store.manifest()


def test_a_corrupt_cache_entry_is_recomputed_not_blocking(tmp_path: Path) -> None:
    def compute(start: int, stop: int) -> np.ndarray:
        return np.arange(start, stop, dtype=np.float32)[:, None]

    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "chunk_000000000_000000010.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        result = chunked_compute(cache, 25, 10, compute)
    assert np.array_equal(result[:, 0], np.arange(25))
    (cache / "all.npy").write_bytes(b"not an array at all")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        assert np.array_equal(chunked_compute(cache, 25, 10, compute), result)


# --------------------------------------------------------------------------- one writer
def test_a_second_writer_stops_with_one_line(tmp_path: Path, hold_run_lock) -> None:
    run = tmp_path / "run"
    holder = hold_run_lock(run)
    with pytest.raises(RunInUseError) as info:
        with RunStore(run).lock("select"):
            pass
    message = str(info.value)
    assert "\n" not in message and f"{run} is in use by `embed` (pid {holder.pid}" in message
    holder.kill()
    holder.wait()
    with RunStore(run).lock("select"):  # the holder is gone: the lock went with it
        with RunStore(run).lock("select"):  # re-entrant within a thread
            pass


# --------------------------------------------------------------------------- output paths
def test_output_paths_that_would_destroy_inputs_are_refused(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(pool)
    store = RunStore(tmp_path / "run")
    store.set_stage("pool", status="done")
    cases = {
        str(pool): "is an input of this command",
        str(tmp_path / "link.jsonl"): "is an input of this command",
        str(tmp_path / "run" / "manifest.json"): "is inside the run directory",
        str(tmp_path / "run" / "pool.parquet"): "is inside the run directory",
        str(tmp_path / "run" / "sub" / "x.jsonl"): "is inside the run directory",
        str(tmp_path): "is a directory",
        "/proc/selection-core/x.jsonl": "cannot be written",
    }
    for out, reason in cases.items():
        with pytest.raises(InputError, match=reason):
            check_output_path(out, [pool])
    assert pool.read_text() == "{}\n"
    # a missing folder is refused and not created (issue 29: a mistyped path left folders)
    with pytest.raises(InputError, match=f"the folder {tmp_path / 'new'} does not exist"):
        check_output_path(tmp_path / "new" / "out.jsonl", [pool])
    assert not (tmp_path / "new").exists()
    assert check_output_path(tmp_path / "out.jsonl", [pool]) == tmp_path / "out.jsonl"
