"""Bring your own vectors (issue 15 §1): precomputed embeddings imported as the run's embeddings.

Users with a million-row pool often have its embeddings already. They arrive as a `.npy` array
(read with `allow_pickle=False`, memory-mapped) or a parquet column of equal-length float lists,
one row per pool row in pool order, float32 or float16. Everything is checked before anything is
written — shape, row count, dtype, NaN/inf — and a bad file fails with one line naming it. The
accepted vectors are written as float32 chunk by chunk (bounded memory), and their key is a
fingerprint of the values and of the pool, so every downstream stage (clusterings, maps) keys on
them exactly as on computed embeddings.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..spine.errors import InputError
from ..spine.store import atomic_path, read_npy

VECTOR_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
CHUNK_ROWS = 65_536  # rows converted, checked and written at once
DEFAULT_COLUMN = "embedding"


def vector_blocks(path: str | Path, n_rows: int,
                  column: str | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """(dimension, iterator over float32 row blocks) of the vectors in `path`, after checking its
    shape and dtype; each block is checked for NaN/inf as it is read."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such vectors file", path=str(path))
    if path.suffix == ".npy":
        dim, blocks = _npy_blocks(path, n_rows)
    elif path.suffix == ".parquet":
        dim, blocks = _parquet_blocks(path, n_rows, column or DEFAULT_COLUMN)
    else:
        raise InputError("vectors must be a .npy array or a .parquet column", path=str(path))

    def checked() -> Iterator[np.ndarray]:
        done = 0
        for block in blocks:
            bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                raise InputError(f"vector of pool row {done + int(np.argmax(bad))} holds NaN "
                                 "or infinite values", path=str(path))
            done += len(block)
            yield block

    return dim, checked()


def _npy_blocks(path: Path, n_rows: int) -> tuple[int, Iterator[np.ndarray]]:
    array = read_npy(path, mmap=True)  # never unpickles; one line for a bad header
    _check_shape(path, array.shape, array.dtype, n_rows)
    dim = array.shape[1]
    if not array.flags.c_contiguous:  # Fortran order: rows are not contiguous in the file
        return dim, (np.asarray(array[start:start + CHUNK_ROWS], dtype=np.float32)
                     for start in range(0, n_rows, CHUNK_ROWS))

    def blocks() -> Iterator[np.ndarray]:  # plain reads: a memmap would keep every page in RSS
        with open(path, "rb") as handle:
            handle.seek(array.offset)
            for start in range(0, n_rows, CHUNK_ROWS):
                count = min(CHUNK_ROWS, n_rows - start) * dim
                block = np.fromfile(handle, dtype=array.dtype, count=count)
                yield block.astype(np.float32, copy=False).reshape(-1, dim)

    return dim, blocks()


def _parquet_blocks(path: Path, n_rows: int, column: str) -> tuple[int, Iterator[np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable parquet file ({exc})", path=str(path)) from None
    schema = parquet.schema_arrow
    if column not in schema.names:
        raise InputError(f"no column '{column}' (columns: {', '.join(schema.names)})",
                         path=str(path), field=column)
    kind = schema.field(column).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind)):
        raise InputError(f"column '{column}' is {kind}, not a list of floats per row",
                         path=str(path), field=column)
    dtype = np.dtype(kind.value_type.to_pandas_dtype())
    first = parquet.read_row_group(0, columns=[column]).column(0) if parquet.num_row_groups else \
        None
    dim = len(first[0].as_py()) if first is not None and len(first) else 0
    _check_shape(path, (parquet.metadata.num_rows, dim), dtype, n_rows, field=column)

    def blocks() -> Iterator[np.ndarray]:
        done = 0
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=[column]):
            values = batch.column(0)
            lengths = values.value_lengths() if not pa.types.is_fixed_size_list(kind) else None
            if values.null_count or (lengths is not None and
                                     (lengths.null_count or
                                      np.any(lengths.to_numpy(zero_copy_only=False) != dim))):
                raise InputError(f"every row needs a vector of {dim} values; a row in "
                                 f"{done}..{done + len(values) - 1} is empty or of another "
                                 "length", path=str(path), field=column)
            flat = values.flatten().to_numpy(zero_copy_only=False)
            done += len(values)
            yield np.asarray(flat, dtype=np.float32).reshape(len(values), dim)

    return dim, blocks()


def _check_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype, n_rows: int,
                 field: str | None = None) -> None:
    if len(shape) != 2 or shape[1] == 0:
        raise InputError(f"vectors must form a 2-D array (rows × dimensions), got shape {shape}",
                         path=str(path), field=field)
    if shape[0] != n_rows:
        raise InputError(f"{shape[0]} vectors for a pool of {n_rows} rows (one per pool row, "
                         "in pool order)", path=str(path), field=field)
    if dtype not in VECTOR_DTYPES:
        raise InputError(f"vectors must be float32 or float16, got {dtype} (convert with "
                         ".astype('float32'))", path=str(path), field=field)


def import_vectors(path: str | Path, out: str | Path, n_rows: int, pool_fingerprint: str,
                   column: str | None = None) -> tuple[str, int]:
    """Check the vectors in `path` and write them as a float32 `.npy` at `out` (atomically: a bad
    row leaves nothing behind). Returns (key, dimension); the key fingerprints the values, the
    dimension and the pool, so a change to either invalidates what was computed on them."""
    dim, blocks = vector_blocks(path, n_rows, column)
    digest = hashlib.sha256(f"vectors\x1f{n_rows}x{dim}\x1f{pool_fingerprint}\x1f".encode())
    header = np.lib.format.header_data_from_array_1_0(np.empty((0, dim), dtype=np.float32))
    header["shape"] = (n_rows, dim)
    with atomic_path(out, suffix=".npy") as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        for block in blocks:  # plain writes, not a memmap: written pages leave RSS
            data = np.ascontiguousarray(block).tobytes()
            digest.update(data)
            handle.write(data)
    return digest.hexdigest()[:20], dim
