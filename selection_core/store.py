"""Run directories and caches: every file the project writes goes through here.

Why one module: atomic writes (temp file + rename, so a crash never leaves half a file), open
formats only (parquet / npy / json / csv; never pickle), the manifest that records what each stage
ran with, and chunked caches that let an interrupted long computation resume.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, MissingStageError

MANIFEST = "manifest.json"
_TRACKED_PACKAGES = ("numpy", "pandas", "torch", "faiss-cpu", "faiss-gpu", "sentence-transformers",
                     "transformers", "peft", "umap-learn", "scikit-learn")


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)
    return Path(path)


def read_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Load an array without ever unpickling (object arrays are refused)."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        # numpy's own text suggests unpickling, which is never the fix here
        reason = "it holds Python objects, which are never unpickled" if "pickle" in str(exc) \
            else str(exc)
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                reason = "the file is not in .npy format"
        raise InputError(f"not a plain numeric .npy array ({reason})", path=str(path)) from exc


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    with atomic_path(path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def write_jsonl(path: str | os.PathLike, records: list[dict[str, Any]]) -> Path:
    with atomic_path(path, suffix=".jsonl") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# --------------------------------------------------------------------------- chunked caches
def chunked_compute(cache_dir: str | os.PathLike, n_rows: int, chunk_rows: int,
                    compute: Callable[[int, int], np.ndarray],
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Compute rows [0, n_rows) chunk by chunk, saving each chunk so a rerun resumes.

    `compute(start, stop)` returns the rows of one chunk. Finished chunks are files
    `chunk_<start>.npy`; once all exist they are concatenated into `all.npy` and removed.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / "all.npy"
    if final.exists():
        array = read_npy(final)
        if len(array) == n_rows:
            if progress:
                progress(n_rows, n_rows)
            return array
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    done = 0
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        chunk_file = cache_dir / f"chunk_{start:09d}_{stop:09d}.npy"
        if chunk_file.exists():
            part = read_npy(chunk_file)
        else:
            part = np.asarray(compute(start, stop))
            if len(part) != stop - start:
                raise RuntimeError(f"chunk {start}:{stop} returned {len(part)} rows")
            write_npy(chunk_file, part)
        parts.append(part)
        done = stop
        if progress:
            progress(done, n_rows)
    array = np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)
    write_npy(final, array)
    for chunk_file in cache_dir.glob("chunk_*.npy"):
        chunk_file.unlink()
    return array


def memmap_compute(path: str | os.PathLike, n_rows: int, dim: int, chunk_rows: int,
                   compute: Callable[[int, int], np.ndarray],
                   progress: Callable[[int, int], None] | None = None,
                   dtype: str = "float32") -> np.ndarray:
    """Fill an (n_rows, dim) `.npy` memmap chunk by chunk; a rerun resumes after the last chunk.

    For arrays too large to hold twice in memory (gradient features of a whole pool): rows are
    written in place and `<path>.progress.json` (written atomically after each chunk) records
    how many leading rows are final. Returns the finished array, memory-mapped read-only.
    """
    path = Path(path)
    marker = path.with_name(path.name + ".progress.json")
    done = 0
    if path.exists() and marker.exists():
        state = read_json(marker)
        if state.get("shape") == [n_rows, dim] and state.get("dtype") == dtype:
            done = int(state["rows_done"])
    if done == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_rows, dim)).flush()
    array = np.load(path, mmap_mode="r+", allow_pickle=False)
    for start in range(done, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        array[start:stop] = compute(start, stop)
        array.flush()
        write_json(marker, {"shape": [n_rows, dim], "dtype": dtype, "rows_done": stop})
        if progress:
            progress(stop, n_rows)
    if n_rows == 0:  # no chunk ran, so no chunk wrote the marker
        write_json(marker, {"shape": [n_rows, dim], "dtype": dtype, "rows_done": 0})
    del array
    return read_npy(path, mmap=True)


def default_cache_dir() -> Path:
    """Shared cache for expensive, content-keyed results (embeddings): $SELECTION_CORE_CACHE."""
    env = os.environ.get("SELECTION_CORE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selection_core"


# --------------------------------------------------------------------------- run directory
def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


class RunStore:
    """One experiment's directory: `manifest.json` plus named artefacts in open formats.

    The manifest records, per stage, its config and hash, status, timings and error, so the CLI
    and the app can tell what is computed, what failed and what is still running.
    """

    def __init__(self, root: str | os.PathLike, create: bool = True) -> None:
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise MissingStageError(f"run directory {self.root} does not exist; "
                                    f"start with `python -m selection_core embed --run {self.root}`")

    # paths -----------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def require(self, *parts: str, hint: str) -> Path:
        """Path of an artefact an earlier stage must have written; a clear error if missing."""
        path = self.path(*parts)
        if not path.exists():
            raise MissingStageError(f"{path} not found: {hint}")
        return path

    # manifest ----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked_manifest(self) -> Iterator[dict[str, Any]]:
        lock_path = self.path(".manifest.lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = self.manifest()
                yield manifest
                write_json(self.path(MANIFEST), manifest)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def manifest(self) -> dict[str, Any]:
        path = self.path(MANIFEST)
        if path.exists():
            return read_json(path)
        return {"format": 1, "created": _now(), "versions": package_versions(), "stages": {}}

    def update_manifest(self, **fields: Any) -> None:
        with self._locked_manifest() as manifest:
            manifest.update(fields)

    def stage_info(self, name: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(name)

    def set_stage(self, name: str, **fields: Any) -> None:
        with self._locked_manifest() as manifest:
            manifest["stages"].setdefault(name, {}).update(fields)

    @contextlib.contextmanager
    def stage(self, name: str, config: dict[str, Any] | None = None,
              config_hash: str | None = None) -> Iterator[dict[str, Any]]:
        """Record a stage's run: running → done (with seconds) or failed (with the error).

        The yielded dict collects extra results (metrics, output names) saved with the stage.
        """
        extra: dict[str, Any] = {}
        started = time.time()
        self.set_stage(name, status="running", config=config, config_hash=config_hash,
                       started=_now(), finished=None, error=None, versions=package_versions())
        try:
            yield extra
        except BaseException as exc:
            self.set_stage(name, status="failed", finished=_now(),
                           seconds=round(time.time() - started, 3),
                           error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=8))
            raise
        self.set_stage(name, status="done", finished=_now(),
                       seconds=round(time.time() - started, 3), **extra)

    # progress (polled by the app) ----------------------------------------------
    def progress_callback(self, name: str) -> Callable[[int, int], None]:
        """A callback(done, total) that writes `progress/<name>.json`, at most ~4 times a second."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = time.time()
            if done < total and now - last[0] < 0.25:
                return
            last[0] = now
            self.write_progress(name, done, total)

        return report

    def write_progress(self, name: str, done: int, total: int, message: str = "") -> None:
        write_json(self.path("progress", f"{name}.json"),
                   {"stage": name, "done": int(done), "total": int(total), "message": message,
                    "time": time.time()})

    def progress(self, name: str) -> dict[str, Any] | None:
        path = self.path("progress", f"{name}.json")
        return read_json(path) if path.exists() else None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
