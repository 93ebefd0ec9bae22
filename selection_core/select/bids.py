"""Selection on an attribution matrix A (N training rows × M validation instances): BIDS and the
baselines of BIDS (Dai et al., 2025).

Every selection is returned in selection (rank) order, so the rows chosen for a smaller budget
are a prefix of those chosen for a larger one: one run serves every budget of a sweep.

BIDS tie rule. A candidate is a pair (row i, column j) with key (Â_ij − c_j, Â_ij, −i); BIDS
selects the row of the largest key. In words: larger utility, then larger Â_ij, then lower row
index — across columns as well as rows. Utilities are computed as float64 `Â_ij − c_j` with
c = (running float64 sum of the selected rows of Â) / |S|, identically in the fast and the naive
form, so both see bit-identical numbers and pick identical rows.

The top-b and random baselines these methods end in are `select.baselines`, shared with kMQ's
family; reading A and its task names from files is `influence.attribution`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..spine.config import HashedConfig, param
from ..spine.errors import ConfigError, InputError
from .baselines import check_budget, random_rows, top_rows

INFLUENCE_METHODS = ("bids", "task-max", "instance-max", "instance-max-norm", "sum", "random")


@dataclass(frozen=True)
class InfluenceSelectConfig(HashedConfig):
    """The influence selection stage: a method on an attribution matrix (BIDS: Dai et al., 2025);
    `influence select`'s flags are made from these declarations."""

    method: str = param(help="selection method", choices=INFLUENCE_METHODS)
    budget: str = param(help="rows (e.g. 1500) or a share of the pool ending in a percent sign")
    seed: int = param(0, help="seed of the random baseline (the other methods are "
                              "deterministic)")

_CHUNK_ROWS = 4096  # rows per block where a full-matrix temporary would double peak memory


def _real_matrix(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A)
    if A.ndim != 2 or A.dtype.kind not in "iuf":
        raise InputError(f"expected a real 2-D matrix, got shape {A.shape} and dtype {A.dtype}")
    return A


def task_index(tasks: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(task names in order of first appearance, each column's position among them).

    First appearance rather than alphabetical, so tables and figures list the tasks as the
    validation set does."""
    tasks = np.asarray(tasks)
    if tasks.shape != (n_columns,):
        raise InputError(f"{tasks.size} task labels for {n_columns} matrix columns")
    codes, names = pd.factorize(tasks)
    return np.asarray(names), codes


# --------------------------------------------------------------------------- BIDS
def normalise_columns(A: np.ndarray) -> np.ndarray:
    """Â: each column z-scored over all rows in float64 (population std).

    Columns with no spread (zero variance) become all 0: they cannot tell rows apart, and a
    z-score would divide by zero. In BIDS such a column keeps c_j = 0, so it offers every row a
    utility of exactly 0 — a floor under max_j (Â_ij − c_j).
    """
    A = _real_matrix(A)
    A_hat = A.astype(np.float64)  # always a copy: the caller's matrix is never modified
    if A_hat.shape[0] == 0:
        return A_hat
    A_hat -= A_hat.mean(axis=0)
    sum_squares = np.zeros(A_hat.shape[1])
    for start in range(0, len(A_hat), _CHUNK_ROWS):  # blocks: no second N × M temporary
        block = A_hat[start:start + _CHUNK_ROWS]
        sum_squares += np.einsum("ij,ij->j", block, block)
    std = np.sqrt(sum_squares / len(A_hat))
    # a constant column can leave rounding residue after centring; compare the values instead
    flat = (std == 0) | (A.max(axis=0) == A.min(axis=0))
    A_hat /= np.where(flat, 1.0, std)
    A_hat[:, flat] = 0.0
    return A_hat


def _bids_input(A: np.ndarray, budget: int, normalised: bool) -> np.ndarray:
    A_hat = np.asarray(_real_matrix(A), dtype=np.float64) if normalised else normalise_columns(A)
    check_budget(budget, len(A_hat))
    if budget and A_hat.shape[1] == 0:
        raise InputError("the attribution matrix has no columns (validation instances)")
    if not np.isfinite(A_hat).all():
        raise InputError("the attribution matrix has non-finite values")
    return A_hat


class ColumnZScores:
    """Â of a raw matrix A read where needed — rows, column blocks, single values — bit for bit
    the float64 values `normalise_columns(A)` holds, without its N × M float64 copy.

    What BIDS needs at a million rows: A may be a float32 memmap; Â's column statistics are
    accumulated over row blocks in the order `normalise_columns` sums them (the mean row after
    row, the squares by the same blocks), and each value is (float64(a) − mean_j) / std_j, or 0
    in a flat column, computed by the same element-wise operations."""

    def __init__(self, A: np.ndarray) -> None:
        self.A = _real_matrix(A)
        n, m = self.A.shape
        self.shape = (n, m)
        total = np.zeros(m)
        for start in range(0, n, _CHUNK_ROWS):  # row after row, as ndarray.mean(axis=0) sums
            total = np.add.reduce(np.concatenate([total[None], self._raw(start)]), axis=0)
        self.mean = total / n if n else total
        sum_squares = np.zeros(m)
        for start in range(0, n, _CHUNK_ROWS):
            block = self._raw(start) - self.mean
            sum_squares += np.einsum("ij,ij->j", block, block)
        std = np.sqrt(sum_squares / n) if n else sum_squares
        low = np.full(m, np.inf)
        high = np.full(m, -np.inf)
        for start in range(0, n, _CHUNK_ROWS):
            block = self.A[start:start + _CHUNK_ROWS]
            np.minimum(low, block.min(axis=0), out=low)
            np.maximum(high, block.max(axis=0), out=high)
        self.flat = (std == 0) | (high == low)
        self.scale = np.where(self.flat, 1.0, std)

    def _raw(self, start: int) -> np.ndarray:
        return self.A[start:start + _CHUNK_ROWS].astype(np.float64)

    def _normalise(self, values: np.ndarray, columns: slice | np.ndarray) -> np.ndarray:
        values -= self.mean[columns]
        values /= self.scale[columns]
        values[..., self.flat[columns]] = 0.0
        return values

    def rows(self, rows: int | np.ndarray) -> np.ndarray:
        return self._normalise(np.asarray(self.A[rows], dtype=np.float64).copy(), slice(None))

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Â[:, start:stop] as a float64 (N, stop − start) block."""
        return self._normalise(self.A[:, start:stop].astype(np.float64), slice(start, stop))

    def values(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        values = self.A[rows, columns].astype(np.float64)
        values -= self.mean[columns]
        values /= self.scale[columns]
        values[self.flat[columns]] = 0.0
        return values

    def all_finite(self) -> bool:
        return all(np.isfinite(self.rows(np.arange(start, min(start + _CHUNK_ROWS, self.shape[0]))
                                        )).all() for start in range(0, self.shape[0], _CHUNK_ROWS))


class _Normalised:
    """An Â the caller normalised: the same reads as `ColumnZScores`, on the matrix itself."""

    def __init__(self, A_hat: np.ndarray) -> None:
        self.A_hat = A_hat
        self.shape = A_hat.shape

    def rows(self, rows: int | np.ndarray) -> np.ndarray:
        return self.A_hat[rows]

    def columns(self, start: int, stop: int) -> np.ndarray:
        return self.A_hat[:, start:stop]

    def values(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return self.A_hat[rows, columns]


class BidsPicks(NamedTuple):
    """What the BIDS greedy decided at each pick, recorded as it picked (issue 16): the row, the
    column j (validation instance) whose Â_ij − c_j gave the maximum utility — the lowest such
    column when several tie on (utility, Â_ij) — and that utility."""

    rows: np.ndarray  # int64, selection order
    columns: np.ndarray  # int64
    utilities: np.ndarray  # float64, Â_ij − c_j at the moment of the pick


def bids_select(A: np.ndarray, budget: int, normalised: bool = False) -> np.ndarray:
    """BIDS (Dai et al., 2025), exact fast greedy: rows in selection order, int64 (`bids_greedy`'s
    rows)."""
    return bids_greedy(A, budget, normalised).rows


def bids_greedy(A: np.ndarray, budget: int, normalised: bool = False) -> BidsPicks:
    """BIDS (Dai et al., 2025), exact fast greedy: the picks in selection order with the column and
    utility that decided each one.

    Why the per-column candidate is enough: let (i*, j*) be the pair with the largest key
    (Â_ij − c_j, Â_ij, −i) over unselected rows. Column j*'s candidate r is its first unselected
    row in the order (Â descending, row ascending), so Â_rj* > Â_i*j*, or equal with r ≤ i*.
    Float subtraction of the same c_j* is monotone, so Â_rj* − c_j* ≥ Â_i*j* − c_j*; hence
    key(r, j*) ≥ key(i*, j*) lexicographically, and as (i*, j*) is the maximum, r = i*. The best
    of the M column candidates is therefore the exact greedy choice. (The Â tie-break is what
    makes this hold under rounding: two values can differ while their differences with c_j*
    round to the same float.)

    Cost O(N·M + M·b·log b) to rank (at most O(N·M·log N), when a column is all ties) plus
    O(b·M) for the greedy; memory one M × b index matrix (int32) beside A itself: Â is read
    through `ColumnZScores` (A may be a float32 memmap of a million rows), never copied whole.
    """
    if normalised:
        A_hat = _Normalised(_bids_input(A, budget, normalised=True))
    else:
        A_hat = ColumnZScores(A)
        check_budget(budget, A_hat.shape[0])
        if budget and A_hat.shape[1] == 0:
            raise InputError("the attribution matrix has no columns (validation instances)")
        if not A_hat.all_finite():
            raise InputError("the attribution matrix has non-finite values")
    n, m = A_hat.shape
    picks = BidsPicks(np.empty(budget, dtype=np.int64), np.empty(budget, dtype=np.int64),
                      np.empty(budget))
    if budget == 0:
        return picks
    order = _column_orders(A_hat, budget)
    pointer = np.zeros(m, dtype=np.int64)
    top_row = order[:, 0].astype(np.int64)
    top_value = A_hat.values(top_row, np.arange(m))
    selected = np.zeros(n, dtype=bool)
    total = np.zeros(m)
    c = np.zeros(m)
    for step in range(budget):
        utility = top_value - c
        tied = np.flatnonzero(utility == utility.max())
        if len(tied) > 1:
            tied = tied[top_value[tied] == top_value[tied].max()]
        row = int(top_row[tied].min())
        picks.rows[step] = row
        picks.columns[step] = tied[top_row[tied] == row].min()
        picks.utilities[step] = utility[picks.columns[step]]
        selected[row] = True
        total += A_hat.rows(row)
        c = total / (step + 1)
        if step + 1 == budget:
            break
        moved = np.flatnonzero(top_row == row)
        stale = moved
        while len(stale):  # skip rows selected earlier; ends because unselected rows remain
            pointer[stale] += 1
            top_row[stale] = order[stale, pointer[stale]]
            stale = stale[selected[top_row[stale]]]
        top_value[moved] = A_hat.values(top_row[moved], moved)
    return picks


def _column_orders(A_hat: ColumnZScores | _Normalised, depth: int) -> np.ndarray:
    """Row `order[j, p]` is the p-th row of column j in the order (Â descending, row ascending),
    for p < depth.

    BIDS never reads deeper than its budget: a column's pointer only moves past selected rows,
    and fewer than `budget` are selected before the last pick. So each column needs only a
    partition plus a sort of its top `depth` rows — all rows tied at the cut are kept, in row
    order, before the stable sort, so the truncated order is exactly the full order's prefix.
    """
    n, m = A_hat.shape
    order = np.empty((m, depth), dtype=np.int32 if n < 2**31 else np.int64)
    block_columns = max(1, 2**22 // n)  # copy columns in blocks: contiguous, bounded memory
    for start in range(0, m, block_columns):
        block = np.negative(A_hat.columns(start, start + block_columns).T, order="C")  # −Â, asc.
        for offset, column in enumerate(block):
            if depth < n:
                cut = np.partition(column, depth - 1)[depth - 1]
                rows = np.flatnonzero(column <= cut)  # ascending rows, ties at the cut included
                ranked = rows[np.argsort(column[rows], kind="stable")[:depth]]
            else:
                ranked = np.argsort(column, kind="stable")
            order[start + offset] = ranked
    return order


def bids_select_naive(A: np.ndarray, budget: int, normalised: bool = False) -> np.ndarray:
    """The straightforward O(b·N·M) greedy, same definition and tie rule as `bids_select`.

    The reference that `bids_select` is tested and benchmarked against. Rows are processed in
    blocks only so the N × M temporary `Â − c` never exists at once.
    """
    A_hat = _bids_input(A, budget, normalised)
    n = len(A_hat)
    selected_rows = np.empty(budget, dtype=np.int64)
    available = np.ones(n, dtype=bool)
    utility = np.empty(n)
    total = np.zeros(A_hat.shape[1])
    c = np.zeros(A_hat.shape[1])
    for step in range(budget):
        for start in range(0, n, _CHUNK_ROWS):
            np.max(A_hat[start:start + _CHUNK_ROWS] - c, axis=1,
                   out=utility[start:start + _CHUNK_ROWS])
        utility[~available] = -np.inf
        best = np.flatnonzero(utility == utility.max())  # larger utility ...
        gaps = A_hat[best] - c
        value = np.where(gaps == utility[best, None], A_hat[best], -np.inf).max(axis=1)
        row = int(best[value == value.max()][0])  # ... then larger Â_ij, then lower row
        selected_rows[step] = row
        available[row] = False
        total += A_hat[row]
        c = total / (step + 1)
    return selected_rows


# --------------------------------------------------------------------------- baselines
def task_max_scores(A: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """LESS: max over tasks of the row's mean influence on that task's instances (float64)."""
    A = _real_matrix(A)
    names, codes = task_index(tasks, A.shape[1])
    scores = np.full(len(A), -np.inf)
    for t in range(len(names)):
        np.maximum(scores, A[:, codes == t].mean(axis=1, dtype=np.float64), out=scores)
    return scores


def instance_max_scores(A: np.ndarray) -> np.ndarray:
    """The row's largest influence on any single validation instance."""
    return _real_matrix(A).max(axis=1).astype(np.float64)


def sum_scores(A: np.ndarray) -> np.ndarray:
    """The row's total influence over all validation instances (float64 accumulation)."""
    return _real_matrix(A).sum(axis=1, dtype=np.float64)


def rds_scores(train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
    """RDS: each training row's highest cosine similarity to any validation instance.

    Zero vectors have no direction; they are scored as cosine 0 rather than NaN. Training rows
    are processed in blocks, so memory stays O(block × M) however large the pool.
    """
    train, val = np.asarray(train_features), np.asarray(val_features)
    if train.ndim != 2 or val.ndim != 2 or train.shape[1] != val.shape[1] or len(val) == 0:
        raise InputError(f"feature shapes do not match: training {train.shape}, "
                         f"validation {val.shape} (need N × d and M × d, M ≥ 1)")
    val_unit = _unit_rows(val.astype(np.float64))
    scores = np.empty(len(train))
    for start in range(0, len(train), _CHUNK_ROWS):
        block = _unit_rows(train[start:start + _CHUNK_ROWS].astype(np.float64))
        scores[start:start + _CHUNK_ROWS] = (block @ val_unit.T).max(axis=1)
    return scores


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def select_on_matrix(A: np.ndarray, tasks: np.ndarray, method: str, budget: int,
                     seed: int = 0) -> np.ndarray:
    """Rows chosen by `method` (one of INFLUENCE_METHODS), in selection order."""
    if method == "bids":
        return bids_select(A, budget)
    if method == "task-max":
        return top_rows(task_max_scores(A, tasks), budget)
    if method == "instance-max":
        return top_rows(instance_max_scores(A), budget)
    if method == "instance-max-norm":  # BIDS's ablation: instance-max on Â
        return top_rows(instance_max_scores(normalise_columns(A)), budget)
    if method == "sum":
        return top_rows(sum_scores(A), budget)
    if method == "random":
        return random_rows(len(A), budget, seed)
    raise ConfigError(f"unknown method '{method}'; use one of {', '.join(INFLUENCE_METHODS)}")


# --------------------------------------------------------------------------- explanations
EXPLAIN_COLUMNS = ["row", "order", "val_index", "task", "utility", "why"]


def explain_on_matrix(A: np.ndarray, tasks: np.ndarray, method: str, budget: int,
                      seed: int = 0) -> pd.DataFrame:
    """The rows `select_on_matrix` chooses, in selection order, each with what chose it
    (issue 16): `row`, `order` (1-based), `val_index`, `task`, `utility` and `why`.

    What the fields mean per method:
    - bids: val_index is the validation instance j whose Â_ij − c_j was the maximum utility when
      the row was picked (recorded inside the greedy, `bids_greedy`), utility that value;
    - task-max: task is the task of the row's highest mean influence and utility that mean (the
      row's score); val_index is empty — the score is a task mean, no single instance;
    - instance-max / instance-max-norm: val_index is the instance of the row's largest A_ij (Â_ij
      for -norm; the lowest column on ties), utility that value (the row's score);
    - sum: utility is Σ_j A_ij (the score), val_index and task are empty: no instance or task
      decides a sum;
    - random: every field but row and order is empty; each row had probability budget/N.
    """
    names, codes = task_index(tasks, _real_matrix(A).shape[1])
    val_index = task = utility = None
    if method == "bids":
        picks = bids_greedy(A, budget)
        rows, val_index, utility = picks.rows, picks.columns, picks.utilities
    elif method in ("task-max", "instance-max", "instance-max-norm", "sum"):
        if method == "task-max":
            means = np.stack([A[:, codes == t].mean(axis=1, dtype=np.float64)
                              for t in range(len(names))], axis=1)
            scores = means.max(axis=1)
        elif method == "sum":
            scores = sum_scores(A)
        else:
            values = _real_matrix(A) if method == "instance-max" else normalise_columns(A)
            scores = instance_max_scores(values)
        rows = top_rows(scores, budget)
        utility = scores[rows]
        if method == "task-max":
            task = names[means[rows].argmax(axis=1)]
        elif method != "sum":
            val_index = values[rows].argmax(axis=1)
    else:
        rows = select_on_matrix(A, tasks, method, budget, seed)
    if val_index is not None:
        task = names[codes[val_index]]
    frame = pd.DataFrame({
        "row": rows, "order": np.arange(1, len(rows) + 1),
        "val_index": pd.array([None] * len(rows) if val_index is None else val_index,
                              dtype="Int64"),
        "task": pd.array([None] * len(rows) if task is None else task, dtype="string"),
        "utility": np.full(len(rows), np.nan) if utility is None else utility})
    frame["why"] = [_influence_why(method, r, budget, len(A)) for r in frame.itertuples()]
    return frame[EXPLAIN_COLUMNS]


def _influence_why(method: str, r: tuple, budget: int, n_rows: int) -> str:
    pick = f"pick {r.order} of {budget}"
    if method == "bids":
        return (f"{pick}: on validation instance {r.val_index} ({r.task}) its normalised "
                f"influence minus the average over the rows picked before it is {r.utility:.4g}, "
                f"the largest utility of any remaining row (a low average marks an instance the "
                f"picks so far serve little)")
    if method == "task-max":
        return (f"{pick}: its mean influence on {r.task} ({r.utility:.4g}) is its best task's "
                f"mean, and it ranks {r.order} of {n_rows} by that score")
    if method in ("instance-max", "instance-max-norm"):
        kind = "normalised influence" if method.endswith("norm") else "influence"
        return (f"{pick}: its largest {kind} ({r.utility:.4g}) is on validation instance "
                f"{r.val_index} ({r.task}); it ranks {r.order} of {n_rows} by that score")
    if method == "sum":
        return (f"{pick}: its influence summed over all validation instances ({r.utility:.4g}) "
                f"ranks {r.order} of {n_rows}")
    return (f"{pick}: drawn uniformly at random (a seeded permutation's prefix), probability "
            f"{budget}/{n_rows} = {budget / n_rows:.3g}")
