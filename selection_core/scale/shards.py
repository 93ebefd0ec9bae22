"""The driver side: split arrays into row-range shards, run the missing ones on Ray Data, write
each result atomically as soon as it arrives.

Shards are the stage's own resume chunks (`store.chunk_file` names them), so whatever finished —
under Ray or in one process — is never computed again: a killed driver resumes from the shards on
disk, and a killed worker is restarted by Ray Data (actors restart, their task is retried).
Results travel back to the driver, which alone writes: workers need no shared filesystem.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..spine.errors import ConfigError, SelectionError
from ..spine.progress import Progress
from ..spine.store import chunk_file, read_npy, write_npy
from .cluster import connect
from .config import ScaleConfig


@dataclass(frozen=True)
class ShardedArray:
    """One output array computed in shards of `chunk_rows` rows into `folder`.

    `columns` are the per-row inputs its worker reads (all of one length). A folder holding
    `all.npy` (`store.chunked_compute`'s finished array) needs no shard."""

    folder: Path
    columns: Mapping[str, Sequence[str]]
    chunk_rows: int

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values())))

    def shards(self) -> list[tuple[int, int]]:
        return [(start, min(start + self.chunk_rows, self.n_rows))
                for start in range(0, self.n_rows, self.chunk_rows)]

    def missing(self) -> list[tuple[int, int]]:
        if (self.folder / "all.npy").exists():
            return []
        return [(a, b) for a, b in self.shards() if not chunk_file(self.folder, a, b).exists()]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a finished shard."""
        return read_npy(chunk_file(self.folder, start, stop))


def encode_array(array: np.ndarray) -> bytes:
    """A shard on its way back to the driver: .npy bytes (exact dtype and shape, no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def worker_count(scale: ScaleConfig, resources: Mapping[str, float], shards: int) -> int:
    """--workers, else as many as the cluster's GPUs (or CPU cores) hold; never more than there
    are shards to compute."""
    if scale.workers is not None:
        wanted = scale.workers
    elif scale.gpus_per_worker > 0:
        wanted = math.floor(resources.get("GPU", 0) / scale.gpus_per_worker)
    else:
        wanted = math.floor(resources.get("CPU", 1) / scale.cpus_per_worker)
    return max(1, min(wanted, shards))


def run_shards(parts: Mapping[str, ShardedArray], load: Callable[..., Any],
               load_args: Sequence[Any], compute: Callable[..., np.ndarray],
               scale: ScaleConfig, progress: Progress | None = None) -> int:
    """Compute every missing shard of `parts` on Ray: each worker runs `load(*load_args)` once,
    then `compute(loaded, part_name, *columns)` per shard (module-level functions: Ray ships
    them by reference). Returns how many shards were computed (0 when all were on disk: Ray is
    not even started)."""
    todo = [(name, a, b) for name, part in parts.items() for a, b in part.missing()]
    total = sum(part.n_rows for part in parts.values())
    done = total - sum(b - a for _, a, b in todo)
    if progress:
        progress(done, total)
    if not todo:
        return 0
    ray = connect(scale.ray)
    columns = tuple(next(iter(parts.values())).columns)
    items = [{"part": name, "start": a, "stop": b,
              **{column: [str(v) for v in parts[name].columns[column][a:b]]
                 for column in columns}}
             for name, a, b in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ModelWorker, batch_size=1,
        fn_constructor_kwargs={"load": load, "load_args": tuple(load_args), "compute": compute,
                               "columns": columns,
                               "threads": max(1, int(scale.cpus_per_worker))},
        compute=ray.data.ActorPoolStrategy(
            size=worker_count(scale, ray.cluster_resources(), len(todo))),
        num_gpus=scale.gpus_per_worker or None, num_cpus=scale.cpus_per_worker)
    for row in dataset.iter_rows():
        if row["error"]:  # the worker's one line (a bad model name or file), not a traceback
            raise ConfigError(f"a Ray worker stopped: {row['error']}")
        part, start, stop = parts[row["part"]], int(row["start"]), int(row["stop"])
        write_npy(chunk_file(part.folder, start, stop), decode_array(row["data"]))
        done += stop - start
        if progress:
            progress(done, total)
    return len(todo)


class ModelWorker:
    """A Ray Data callable class (an actor): loads the stage's model once, here, then computes
    one shard per call with the same function the single-process path calls."""

    def __init__(self, load: Callable[..., Any], load_args: tuple[Any, ...],
                 compute: Callable[..., np.ndarray], columns: tuple[str, ...],
                 threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.compute = compute
        self.columns = columns
        self.failed = ""
        try:
            self.loaded = load(*load_args)
        except SelectionError as exc:  # reported with each shard: Ray would only keep its text
            self.failed = str(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        data, errors = [], []
        for i in range(len(batch["part"])):
            error, array = self.failed, b""
            if not error:
                try:
                    array = encode_array(self.compute(
                        self.loaded, str(batch["part"][i]),
                        *([str(v) for v in batch[column][i]] for column in self.columns)))
                except SelectionError as exc:
                    error = str(exc)
            data.append(array)
            errors.append(error)
        return {"part": batch["part"], "start": batch["start"], "stop": batch["stop"],
                "data": np.array(data, dtype=object), "error": np.array(errors, dtype=object)}
