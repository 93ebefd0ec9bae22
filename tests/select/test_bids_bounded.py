"""BIDS at a million rows (issue 15 §2): Â is read through `ColumnZScores` — the same float64
values as `normalise_columns`, bit for bit — so a float32 memmap is never copied as an N × M
float64 matrix, and the selection is the one the in-memory matrix gives."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from selection_core.select import bids
from selection_core.select.bids import ColumnZScores, bids_select, bids_select_naive, \
    normalise_columns


def test_column_z_scores_are_normalise_columns_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    A = (rng.normal(size=(9000, 7)) * 10.0 ** rng.uniform(-3, 3, size=7)).astype(np.float32)
    A[:, 3] = 2.5  # a flat column
    A_hat = normalise_columns(A)
    lazy = ColumnZScores(A)
    np.testing.assert_array_equal(lazy.rows(np.arange(len(A))), A_hat)
    np.testing.assert_array_equal(lazy.columns(2, 5), A_hat[:, 2:5])
    rows, columns = rng.integers(0, len(A), 50), rng.integers(0, 7, 50)
    np.testing.assert_array_equal(lazy.values(rows, columns), A_hat[rows, columns])
    np.testing.assert_array_equal(bids_select(A, 400), bids_select_naive(A, 400))


def test_bids_on_a_float32_memmap_never_copies_the_matrix_as_float64(tmp_path: Path) -> None:
    n, m = 200_000, 100
    A = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.float32, shape=(n, m))
    rng = np.random.default_rng(0)
    for start in range(0, n, 50_000):
        A[start:start + 50_000] = rng.normal(size=(50_000, m))
    A.flush()
    A = np.load(tmp_path / "a.npy", mmap_mode="r", allow_pickle=False)
    tracemalloc.start()
    chosen = bids_select(A, 40)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < n * m * 8, f"peak {peak / 2**20:.0f} MiB; Â would be {n * m * 8 / 2**20:.0f}"
    assert len(set(chosen.tolist())) == 40
    small = np.asarray(A[:3000])
    np.testing.assert_array_equal(bids_select(small, 40), bids.bids_select_naive(small, 40))
