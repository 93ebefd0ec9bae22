"""Run directories and caches: every file the project writes goes through here.

Why one module: atomic writes (temp file + rename, so a crash never leaves half a file), open
formats only (parquet / npy / json / csv; never pickle), the manifest that records what each stage
ran with, and chunked caches that let an interrupted long computation resume.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, MissingStageError, ReadOnlyRunError, RunInUseError
from .progress import Progress

MANIFEST = "manifest.json"
LOCK = ".lock"
STAGES = "stages"  # stages/<stage>/<key>/: every keyed result (runner.py)
# what a write into a read-only place fails with (a read-only mount, no permission)
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_HELD_LOCKS = threading.local()  # run directories this thread holds, with nesting counts
_TRACKED_PACKAGES = ("numpy", "pandas", "torch", "faiss-cpu", "faiss-gpu", "sentence-transformers",
                     "transformers", "peft", "umap-learn", "scikit-learn")


# --------------------------------------------------------------------------- atomic writes
# A temp file or folder is named `.<name>.tmp-<pid>-<random>`: the writer's pid in the name lets a
# later write into the same folder remove what a killed writer left (issue 29).
_TEMP = re.compile(r"^\..*\.tmp-(\d+)-")
_SWEPT: set[Path] = set()  # folders this process has cleaned (once each: chunk loops write often)


def temp_prefix(path: Path) -> str:
    """The prefix of this process's temp files and folders for `path` (see `_TEMP`)."""
    return f".{path.name}.tmp-{os.getpid()}-"


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def remove_abandoned_temps(folder: Path) -> None:
    """Remove the temp files and folders in `folder` whose writer no longer runs (kill -9);
    once per folder and process."""
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    with contextlib.suppress(OSError):
        for leftover in folder.iterdir():
            found = _TEMP.match(leftover.name)
            if found and not process_alive(int(found.group(1))):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=suffix or path.suffix or ".tmp",
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
    """Standard JSON: NaN and infinities (which json.dumps writes bare) are written as null."""
    return write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False,
                                       default=_json_default) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    return obj


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)
    return Path(path)


def read_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Load an array without ever unpickling (object arrays are refused), after checking that
    the header's shape fits the file (a header can claim terabytes)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            data_bytes = os.fstat(handle.fileno()).st_size - handle.tell()
    except ValueError as exc:
        raise InputError(f"not a plain numeric .npy array ({_npy_reason(path, exc)})",
                         path=str(path)) from None
    if dtype.hasobject:
        raise InputError("not a plain numeric .npy array (it holds Python objects, which are "
                         "never unpickled)", path=str(path))
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > data_bytes:
        raise InputError(f"the .npy header claims {claimed:,} bytes of data but the file holds "
                         f"{data_bytes:,} (truncated or corrupt)", path=str(path))
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def _npy_reason(path: str | os.PathLike, exc: ValueError) -> str:
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            return "the file is not in .npy format"
    return str(exc)


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


# --------------------------------------------------------------------------- cache keys
def stage_key(payload: dict[str, Any]) -> str:
    """The key of a stage's output: a hash of its config (result-changing fields) and its
    inputs' fingerprints. Outputs live under their key, so a finished key is reused, a changed
    input or config is a new key, and no key overwrites another's artefacts."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; rename it to `path` only if the block succeeds
    (a crash leaves no half-written folder under the final name). An existing `path` is
    replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temps(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# --------------------------------------------------------------------------- output paths
def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, in one line, an output path that would destroy what the command reads: one of
    its inputs (or a file in an input folder), or any file inside a run directory (a run's
    files are the pipeline's own). Also refuses a directory and a place that cannot be written,
    a missing folder included: the check creates nothing (a mistyped path leaves no folders).
    """
    path = Path(out).expanduser()
    target = path.resolve()
    if target.is_dir():
        raise InputError("is a directory; give a file name for the output", path=str(out))
    for item in inputs:
        source = Path(item).expanduser().resolve()
        same = target == source or (target.exists() and source.exists()
                                    and os.path.samefile(target, source))
        if same or source in target.parents:
            raise InputError(f"is an input of this command ({item}); writing there would "
                             "destroy it, so choose another output path", path=str(out))
    run = next((folder for folder in target.parents if (folder / MANIFEST).is_file()), None)
    if run is not None:
        raise InputError(f"is inside the run directory {run}, whose files only the pipeline "
                         "writes; choose an output path outside it", path=str(out))
    if not target.parent.is_dir():
        raise InputError(f"cannot be written (the folder {target.parent} does not exist)",
                         path=str(out))
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise InputError(f"cannot be written ({exc.strerror or exc})", path=str(out)) from None
    return path


# --------------------------------------------------------------------------- chunked caches
def chunked_compute(cache_dir: str | os.PathLike, n_rows: int, chunk_rows: int,
                    compute: Callable[[int, int], np.ndarray],
                    progress: Progress | None = None) -> np.ndarray:
    """Compute rows [0, n_rows) chunk by chunk, saving each chunk so a rerun resumes.

    `compute(start, stop)` returns the rows of one chunk. Finished chunks are files
    `chunk_<start>.npy`; once all exist they are concatenated into `all.npy` and removed.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / "all.npy"
    array = _cached_rows(final, n_rows)
    if array is not None:
        if progress:
            progress(n_rows, n_rows)
        return array
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    done = 0
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        part_file = chunk_file(cache_dir, start, stop)
        part = _cached_rows(part_file, stop - start)
        if part is None:
            part = np.asarray(compute(start, stop))
            if len(part) != stop - start:
                raise RuntimeError(f"chunk {start}:{stop} returned {len(part)} rows")
            write_npy(part_file, part)
        parts.append(part)
        done = stop
        if progress:
            progress(done, n_rows)
    array = np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)
    write_npy(final, array)
    for part_file in cache_dir.glob("chunk_*.npy"):
        part_file.unlink()
    return array


def chunk_file(cache_dir: str | os.PathLike, start: int, stop: int) -> Path:
    """Where `chunked_compute` keeps rows [start, stop) (the Ray path writes its shards there)."""
    return Path(cache_dir) / f"chunk_{start:09d}_{stop:09d}.npy"


def _cached_rows(path: Path, n_rows: int) -> np.ndarray | None:
    """A cache entry with `n_rows` rows, or None; an unreadable entry is removed (it is derived
    data: recomputing it is the fix), so it never blocks the computation."""
    if not path.exists():
        return None
    try:
        array = read_npy(path)
    except (InputError, OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable cache entry ({exc}); recomputing it", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return array if len(array) == n_rows else None


def memmap_compute(path: str | os.PathLike, n_rows: int, dim: int, chunk_rows: int,
                   compute: Callable[[int, int], np.ndarray],
                   progress: Progress | None = None,
                   dtype: str = "float32") -> np.ndarray:
    """Fill an (n_rows, dim) `.npy` memmap chunk by chunk; a rerun resumes after the last chunk.

    For arrays too large to hold twice in memory (gradient features of a whole pool): rows are
    written in place and `<path>.progress.json` (written atomically after each chunk) records
    how many leading rows are final. Returns the finished array, memory-mapped read-only.
    """
    path = Path(path)
    marker = path.with_name(path.name + ".progress.json")
    done = memmap_rows_done(path, n_rows, dim, dtype)
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


def memmap_rows_done(path: str | os.PathLike, n_rows: int, dim: int,
                     dtype: str = "float32") -> int:
    """How many leading rows of `memmap_compute`'s array at `path` are final (0: none)."""
    path = Path(path)
    marker = path.with_name(path.name + ".progress.json")
    if path.exists() and marker.exists():
        state = read_json(marker)
        if state.get("shape") == [n_rows, dim] and state.get("dtype") == dtype:
            return int(state["rows_done"])
    return 0


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

    def stage_dir(self, name: str, key: str) -> Path:
        """The folder of one stage's result under its key (`runner` owns what goes in it)."""
        return self.path(STAGES, name, key)

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
        if not path.exists():
            return {"format": 1, "created": now_text(), "versions": package_versions(),
                    "stages": {}}
        try:
            manifest = read_json(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON ({exc}); this is the run's record of what it "
                             "computed: restore it or start a new run directory",
                             path=str(path)) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
            raise InputError("not a run manifest (no 'stages' record); restore it or start a "
                             "new run directory", path=str(path))
        return manifest

    # one writer at a time ---------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the run directory for one writing command; a second writer stops with one
        line naming the first. Re-entrant within a thread (a command calling stages)."""
        key = str(self.root.resolve())
        held: dict[str, int] = _HELD_LOCKS.__dict__.setdefault("counts", {})
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
            raise ReadOnlyRunError(f"{self.root} cannot be written ({exc.strerror}): `{command}` "
                                   "stores its results in the run directory; run it on a "
                                   "writable copy of the run") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInUseError(self._holder_message(fd)) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"command": command, "pid": os.getpid(),
                                      "since": now_text()}).encode(), 0)
            held[key] = 1
            try:
                yield
            finally:
                del held[key]
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing releases the lock

    def writable(self) -> bool:
        """Whether files can be created in the run directory (a reader skips the lock if not:
        on a read-only run there is no writer to wait for)."""
        try:
            with tempfile.TemporaryFile(dir=self.root):
                return True
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
            return False

    def _holder_message(self, fd: int) -> str:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except json.JSONDecodeError:
            holder = {}
        who = (f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')}, since "
               f"{holder.get('since', '?')})") if holder else "another process"
        return (f"{self.root} is in use by {who}; wait for it to finish, or use another --run "
                "directory")

    def update_manifest(self, **fields: Any) -> None:
        with self._locked_manifest() as manifest:
            manifest.update(fields)

    def stage_info(self, name: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(name)

    def latest(self, name: str) -> dict[str, Any] | None:
        """The runner's record of a stage's latest key (`runner.latest` checks it is current)."""
        return self.manifest().get("latest", {}).get(name) if self.exists(MANIFEST) else None

    def set_latest(self, name: str, **fields: Any) -> None:
        with self._locked_manifest() as manifest:
            manifest.setdefault("latest", {})[name] = fields

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
                       started=now_text(), finished=None, error=None, versions=package_versions(),
                       pid=os.getpid())
        try:
            yield extra
        except BaseException as exc:
            self.set_stage(name, status="failed", finished=now_text(),
                           seconds=round(time.time() - started, 3),
                           error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=8))
            raise
        self.set_stage(name, status="done", finished=now_text(),
                       seconds=round(time.time() - started, 3), **extra)

    # progress (polled by the app) ----------------------------------------------
    def progress_callback(self, name: str, min_interval_s: float = 0.25) -> Progress:
        """The progress-file sink: writes `progress/<name>.json`, at most once per
        `min_interval_s` (0: every call, for slow steps whose every message matters)."""
        last = [0.0]

        def report(done: int, total: int, message: str = "") -> None:
            now = time.time()
            if done < total and now - last[0] < min_interval_s:
                return
            last[0] = now
            self.write_progress(name, done, total, message)

        return report

    def write_progress(self, name: str, done: int, total: int, message: str = "") -> None:
        write_json(self.path("progress", f"{name}.json"),
                   {"stage": name, "done": int(done), "total": int(total), "message": message,
                    "time": time.time()})

    def stages(self) -> dict[str, Any]:
        """What the manifest records per stage; empty before the first stage ran."""
        return self.manifest()["stages"] if self.exists(MANIFEST) else {}

    def progress(self, name: str) -> dict[str, Any] | None:
        path = self.path("progress", f"{name}.json")
        return read_json(path) if path.exists() else None


def shown_status(record: dict[str, Any]) -> str:
    """A stage's recorded status, except that `running` reads `interrupted` once the process
    that recorded it no longer runs (it was killed: nothing else ends a stage unrecorded)."""
    status = str(record.get("status", "?"))
    pid = record.get("pid")
    if status == "running" and isinstance(pid, int) and not process_alive(pid):
        return "interrupted"
    return status


def now_text(seconds: float | None = None) -> str:
    """A timestamp as the manifest records them (local time with its offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
