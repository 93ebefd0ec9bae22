"""BIDS (fast == naive, tie rule, prefix), the baselines, and reading A from files."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selection_core.spine.errors import ConfigError, InputError
from selection_core.influence.attribution import load_attribution
from selection_core.select import bids
from selection_core.select.baselines import random_rows, top_rows
from selection_core.select.bids import (
    INFLUENCE_METHODS,
    bids_select,
    bids_select_naive,
    instance_max_scores,
    normalise_columns,
    rds_scores,
    select_on_matrix,
    sum_scores,
    task_max_scores,
)


# --------------------------------------------------------------------------- strategies
@st.composite
def tie_heavy_matrices(draw: st.DrawFn, values: st.SearchStrategy[float]) -> np.ndarray:
    """Up to 40 × 12, rows drawn from a smaller base (duplicate rows), some columns constant."""
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 12))
    base = draw(arrays(np.float64, (draw(st.integers(1, n)), m), elements=values,
                       fill=st.nothing()))  # every entry drawn, not mostly one fill value
    A = base[draw(arrays(np.int64, n, elements=st.integers(0, len(base) - 1)))]
    A[:, draw(arrays(np.bool_, m, elements=st.sampled_from([False, False, False, True])))] = \
        draw(values)
    return A


SMALL_INTEGERS = st.integers(-2, 2).map(float)
FLOATS = st.floats(-100, 100, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def matrix_and_budget(draw: st.DrawFn) -> tuple[np.ndarray, int, bool]:
    A = draw(tie_heavy_matrices(draw(st.sampled_from([SMALL_INTEGERS, FLOATS]))))
    return A, draw(st.integers(0, len(A))), draw(st.booleans())


# --------------------------------------------------------------------------- BIDS: fast == naive
@settings(max_examples=500, deadline=None)
@given(matrix_and_budget())
def test_fast_bids_equals_naive_on_tie_heavy_matrices(case: tuple[np.ndarray, int, bool]) -> None:
    A, budget, normalised = case
    fast = bids_select(A, budget, normalised=normalised)
    assert fast.dtype == np.int64
    np.testing.assert_array_equal(fast, bids_select_naive(A, budget, normalised=normalised))


@settings(max_examples=100, deadline=None)
@given(matrix_and_budget())
def test_a_smaller_budget_selects_a_prefix(case: tuple[np.ndarray, int, bool]) -> None:
    A, budget, normalised = case
    everything = bids_select(A, len(A), normalised=normalised)
    np.testing.assert_array_equal(bids_select(A, budget, normalised=normalised),
                                  everything[:budget])
    assert sorted(everything) == list(range(len(A)))  # each row once


@pytest.mark.parametrize("seed", range(4))
def test_fast_bids_equals_naive_on_random_float_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(300, 21)) + np.repeat(rng.normal(size=3), 7)  # 3 tasks, offsets
    np.testing.assert_array_equal(bids_select(A, 300), bids_select_naive(A, 300))


def test_all_equal_matrix_selects_rows_in_index_order() -> None:
    A = np.full((6, 3), 2.5)  # Â is all 0: every pair ties on utility and on Â
    np.testing.assert_array_equal(bids_select(A, 6), np.arange(6))
    np.testing.assert_array_equal(bids_select_naive(A, 6), np.arange(6))


# --------------------------------------------------------------------------- BIDS: hand-computed
@pytest.mark.parametrize("select_fn", [bids_select, bids_select_naive])
def test_utility_then_value_then_row_decides(select_fn) -> None:
    # step 1: row 0 (utility 20). c = [4, 0, 20].
    # step 2: row 1 has utility 1 from column 1 (Â 1), row 2 utility 1 from column 0 (Â 5):
    #         equal utilities, so the larger Â wins — row 2, despite its higher index.
    # step 3: row 1.
    A_hat = np.array([[4.0, 0.0, 20.0], [0.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
    np.testing.assert_array_equal(select_fn(A_hat, 3, normalised=True), [0, 2, 1])


@pytest.mark.parametrize("select_fn", [bids_select, bids_select_naive])
def test_equal_utility_and_value_goes_to_the_lower_row(select_fn) -> None:
    # rows 1 and 2 are duplicates: both reach utility 5 (Â 5) at step 1; row 1 wins.
    # step 2: c = [1, 5]; row 0 has gaps (2, −4) → 2, row 2 has (0, 0) → 0.
    A_hat = np.array([[3.0, 1.0], [1.0, 5.0], [1.0, 5.0]])
    np.testing.assert_array_equal(select_fn(A_hat, 3, normalised=True), [1, 0, 2])


@pytest.mark.parametrize("select_fn", [bids_select, bids_select_naive])
def test_utilities_that_round_equal_fall_back_to_the_larger_value(select_fn) -> None:
    # after row 0, c_0 = −1000: 1 − c_0 and (1 + 2⁻⁵²) − c_0 both round to 1001.0, so rows 1
    # and 2 tie on utility; row 2 has the larger Â and wins, in both forms.
    A_hat = np.array([[-1000.0, 50.0], [1.0, 0.0], [1.0 + 2.0**-52, 0.0]])
    assert (A_hat[1, 0] + 1000.0) == (A_hat[2, 0] + 1000.0)
    np.testing.assert_array_equal(select_fn(A_hat, 3, normalised=True), [0, 2, 1])


def test_bids_normalises_in_float64_even_for_float32_input() -> None:
    rng = np.random.default_rng(5)
    A32 = rng.normal(size=(200, 9)).astype(np.float32)
    assert normalise_columns(A32).dtype == np.float64
    np.testing.assert_array_equal(bids_select(A32, 200), bids_select(A32.astype(np.float64), 200))
    np.testing.assert_array_equal(bids_select(A32, 200), bids_select_naive(A32, 200))
    before = A32.copy()
    bids_select(A32, 50)
    np.testing.assert_array_equal(A32, before)  # the caller's matrix is untouched


def test_budget_bounds() -> None:
    A = np.arange(12.0).reshape(4, 3)
    for fn in (bids_select, bids_select_naive):
        empty = fn(A, 0)
        assert empty.dtype == np.int64 and len(empty) == 0
        with pytest.raises(ConfigError, match="budget 5"):
            fn(A, 5)
        with pytest.raises(ConfigError):
            fn(A, -1)


# --------------------------------------------------------------------------- normalisation
def test_normalise_columns_population_z_scores_and_flat_columns() -> None:
    A = np.array([[0.0, 0.1, 7.0], [2.0, 0.1, 7.0], [4.0, 0.1, 7.0]], dtype=np.float32)
    A_hat = normalise_columns(A)
    np.testing.assert_allclose(A_hat[:, 0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])  # ddof=0
    # 0.1 is a column whose float mean is not exactly 0.1; it must still become exactly 0
    np.testing.assert_array_equal(A_hat[:, 1:], 0.0)
    rng = np.random.default_rng(1)
    B = normalise_columns(rng.normal(3.0, 2.0, size=(500, 4)))
    np.testing.assert_allclose(B.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(B.std(axis=0), 1.0)


# --------------------------------------------------------------------------- baselines
A_SMALL = np.array([[1.0, 0.0, 3.0, 0.0],
                    [2.0, 6.0, 2.0, 0.0],
                    [0.0, 1.0, 0.0, 1.0]])
TASKS_SMALL = np.array(["x", "y", "x", "y"])  # interleaved: grouping is by label, not position


def test_task_max_instance_max_and_sum_on_a_hand_computed_case() -> None:
    # task means: row 0 (x 2, y 0), row 1 (x 2, y 3), row 2 (x 0, y 1)
    np.testing.assert_array_equal(task_max_scores(A_SMALL, TASKS_SMALL), [2.0, 3.0, 1.0])
    np.testing.assert_array_equal(instance_max_scores(A_SMALL), [3.0, 6.0, 1.0])
    np.testing.assert_array_equal(sum_scores(A_SMALL), [4.0, 10.0, 2.0])
    assert task_max_scores(A_SMALL.astype(np.float32), TASKS_SMALL).dtype == np.float64
    with pytest.raises(InputError, match="3 task labels for 4"):
        task_max_scores(A_SMALL, TASKS_SMALL[:3])


def test_rds_is_the_best_cosine_with_zero_vectors_scoring_zero(monkeypatch) -> None:
    monkeypatch.setattr(bids, "_CHUNK_ROWS", 2)  # the blocks must not change the result
    train = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0], [-1.0, 0.0]])
    val = np.array([[2.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(rds_scores(train, val), [1.0, 0.0, np.sqrt(0.5), 0.0, 0.0])
    with pytest.raises(InputError, match="do not match"):
        rds_scores(train, np.ones((2, 3)))


def test_top_rows_breaks_ties_by_lower_row_so_budgets_are_prefixes() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(top_rows(scores, 5), [1, 2, 4, 3, 0])
    for budget in range(6):
        np.testing.assert_array_equal(top_rows(scores, budget), top_rows(scores, 5)[:budget])
    with pytest.raises(ConfigError):
        top_rows(scores, 6)


def test_random_rows_are_seeded_distinct_and_prefixes() -> None:
    full = random_rows(50, 50, seed=3)
    assert sorted(full) == list(range(50)) and full.dtype == np.int64
    np.testing.assert_array_equal(random_rows(50, 10, seed=3), full[:10])
    assert not np.array_equal(random_rows(50, 50, seed=4), full)


def test_select_on_matrix_dispatches_and_rejects_unknown_methods() -> None:
    rng = np.random.default_rng(2)
    A = rng.normal(size=(60, 6))
    tasks = np.array(["a", "a", "b", "b", "c", "c"])
    expected = {"bids": bids_select(A, 20),
                "task-max": top_rows(task_max_scores(A, tasks), 20),
                "instance-max": top_rows(instance_max_scores(A), 20),
                "instance-max-norm": top_rows(instance_max_scores(normalise_columns(A)), 20),
                "sum": top_rows(sum_scores(A), 20),
                "random": random_rows(60, 20, seed=7)}
    assert set(expected) == set(INFLUENCE_METHODS)
    for method, rows in expected.items():
        np.testing.assert_array_equal(select_on_matrix(A, tasks, method, 20, seed=7), rows)
    with pytest.raises(ConfigError, match="bids, task-max, instance-max"):
        select_on_matrix(A, tasks, "less", 20)


# --------------------------------------------------------------------------- load_attribution
def _write(tmp_path, matrix, names="a\nb\nc\n") -> tuple[str, str]:
    matrix_path, tasks_path = tmp_path / "A.npy", tmp_path / "tasks.txt"
    np.save(matrix_path, matrix)
    tasks_path.write_text(names, encoding="utf-8")
    return str(matrix_path), str(tasks_path)


def test_load_attribution_reads_the_matrix_and_stripped_task_names(tmp_path) -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    A, tasks = load_attribution(*_write(tmp_path, matrix, "  mmlu\nbbh \r\nmmlu\n"))
    np.testing.assert_array_equal(A, matrix)
    assert A.dtype == np.float32
    assert list(tasks) == ["mmlu", "bbh", "mmlu"]


def test_load_attribution_locates_the_first_non_finite_value(tmp_path) -> None:
    matrix = np.zeros((4, 3))
    matrix[3, 0] = np.inf
    matrix[2, 1] = np.nan
    with pytest.raises(InputError, match=r"row 2, column 1.*2 non-finite") as info:
        load_attribution(*_write(tmp_path, matrix))
    assert info.value.path.endswith("A.npy")


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3)])
def test_load_attribution_needs_a_2d_matrix(tmp_path, shape) -> None:
    with pytest.raises(InputError, match="2-D"):
        load_attribution(*_write(tmp_path, np.zeros(shape)))


def test_load_attribution_names_both_files_and_counts_on_a_mismatch(tmp_path) -> None:
    matrix_path, tasks_path = _write(tmp_path, np.zeros((2, 4)))
    with pytest.raises(InputError) as info:
        load_attribution(matrix_path, tasks_path)
    message = str(info.value)
    assert tasks_path in message and matrix_path in message
    assert "3 task names" in message and "4 columns" in message


def test_load_attribution_names_the_empty_task_line(tmp_path) -> None:
    with pytest.raises(InputError, match="empty task name") as info:
        load_attribution(*_write(tmp_path, np.zeros((2, 3)), "a\n  \nc\n"))
    assert info.value.line == 2 and info.value.path.endswith("tasks.txt")


def test_load_attribution_never_unpickles(tmp_path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    matrix_path, tasks_path = _write(tmp_path, np.zeros((2, 3)))
    with open(matrix_path, "wb") as fh:
        pickle.dump(Payload(), fh)
    with pytest.raises(InputError, match="not a plain numeric"):
        load_attribution(matrix_path, tasks_path)
    assert not marker.exists()
    np.save(matrix_path, np.array([[1, "x", None]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a plain numeric"):
        load_attribution(matrix_path, tasks_path)


@pytest.mark.parametrize("matrix", [np.ones((2, 3), dtype=bool), np.ones((2, 3), complex)])
def test_load_attribution_refuses_non_real_dtypes(tmp_path, matrix) -> None:
    with pytest.raises(InputError, match="real numeric"):
        load_attribution(*_write(tmp_path, matrix))


def test_load_attribution_refuses_archives_and_missing_files(tmp_path) -> None:
    _, tasks_path = _write(tmp_path, np.zeros((2, 3)))
    archive = tmp_path / "A.npz"
    np.savez(archive, a=np.zeros((2, 3)))
    with pytest.raises(InputError, match="npz"):
        load_attribution(archive, tasks_path)
    with pytest.raises(InputError, match="not found"):
        load_attribution(tmp_path / "missing.npy", tasks_path)
