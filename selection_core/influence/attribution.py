"""Reading an attribution matrix A and its validation task names from files, checked once.

I/O apart from the selection math (`select.bids`), as TRAK keeps its stores apart from its math.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..spine.errors import InputError
from ..spine.store import read_npy


def load_attribution(matrix_path: str | os.PathLike,
                     tasks_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A (as stored: float32 or float64) and one task name per column, both checked.

    Checked here, once, so every method downstream can assume a finite real N × M matrix and
    exactly M task names; each error names the file (and the line or cell) to fix.
    """
    matrix_path, tasks_path = str(matrix_path), str(tasks_path)
    for path in (matrix_path, tasks_path):
        if not Path(path).is_file():
            raise InputError("file not found", path=path)
    A = read_npy(matrix_path)
    if not isinstance(A, np.ndarray):
        raise InputError("expected a single .npy array, not an .npz archive", path=matrix_path)
    if A.dtype.kind not in "iuf":
        raise InputError(f"expected a real numeric matrix, got dtype {A.dtype}", path=matrix_path)
    if A.ndim != 2:
        raise InputError(f"expected a 2-D matrix (training rows × validation instances), got "
                         f"shape {A.shape}", path=matrix_path)
    if 0 in A.shape:
        raise InputError(f"the matrix is empty (shape {A.shape})", path=matrix_path)
    if A.dtype.kind == "f":
        bad = ~np.isfinite(A)
        if bad.any():
            row, column = divmod(int(np.argmax(bad)), A.shape[1])  # first in row-major order
            raise InputError(f"non-finite value {A[row, column]} at (row {row}, column {column}) "
                             f"(0-based; {int(bad.sum())} non-finite values in all)",
                             path=matrix_path)
    tasks = _read_task_names(tasks_path)
    if len(tasks) != A.shape[1]:
        raise InputError(f"{len(tasks)} task names, but the matrix {matrix_path} has "
                         f"{A.shape[1]} columns (one name per column is needed)", path=tasks_path)
    return A, tasks


def _read_task_names(path: str) -> np.ndarray:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", path=path) from None
    names = [line.strip() for line in lines]
    for number, name in enumerate(names, start=1):
        if not name:
            raise InputError("empty task name (one name per matrix column, no blank lines)",
                             path=path, line=number)
    return np.asarray(names, dtype=str)
