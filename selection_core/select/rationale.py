"""Why each row was selected (issue 16): checkable per-row fields for the kMQ family, computed
from the method's own numbers — its per-cluster budgets, its quality order, its sampler.

Fields (`RATIONALE_COLUMNS`): `cluster`, `cluster_size` (the cluster's rows in the pool),
`cluster_budget` (the rows the cluster contributes; they sum to the budget), `quality`,
`quality_rank` (1 = best in its cluster in the pool; ties to the lower row), `p_select` (the row's
inclusion probability under the method), `p_select_kind` ("exact" for a closed form, "estimated"
for repeated seeded draws), `p_select_draws` (how many; 0 when exact) and `why` (one sentence
from those fields). Iterative kMQ adds `round`, `round_weight` (the cluster's weight when that
round drew) and `round_budget` (the rows the cluster gave that round).

Exact forms: random b/N; kmeans-random b_j/n_j; kmeans-closest, quality-top and kMQ-top are
deterministic (1 for a chosen row, 0 otherwise); b_j = n_j gives 1 and b_j = 1 gives the
softmax itself. kMQ's softmax sampling without replacement has no closed form for 1 < b_j < n_j:
there the same sampler (`gumbel_top_k` on the same logits) is run `draws` times on its own seed
stream (a child of the selection's seed, never the selection's own draws) and p is the share of
draws that include the row (standard error ≤ 0.5/√draws; 1000 draws up to 100k pool rows, fewer
above, `default_draws`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..spine.apportion import allocate_budget
from ..spine.config import SelectionConfig
from .registry import Method, get_method

RATIONALE_COLUMNS = ["cluster", "cluster_size", "cluster_budget", "quality", "quality_rank",
                     "p_select", "p_select_kind", "p_select_draws", "why"]
DEFAULT_DRAWS = 1000
DRAW_ROWS = 10**8  # pool rows × draws the estimate spends at most, above MIN_DRAWS
MIN_DRAWS = 100
ESTIMATE_CELLS = 2**16  # Gumbel keys drawn at once by `estimate_inclusion`


def default_draws(n_rows: int) -> int:
    """DEFAULT_DRAWS up to 100k rows, then fewer (never under MIN_DRAWS) so the estimate's cost,
    about draws × N·log N, stays bounded on a million-row pool (`p_select_draws` says how many
    were made: the standard error is at most 0.5/√draws)."""
    return max(MIN_DRAWS, min(DEFAULT_DRAWS, DRAW_ROWS // max(n_rows, 1)))


def quality_ranks(labels: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Each row's rank by quality inside its cluster: 1 = best; equal quality → lower row first
    (kMQ-top's own order)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.lexsort((np.arange(len(labels)), -np.asarray(quality, dtype=np.float64), labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    within = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = within + 1
    return ranks


def estimate_inclusion(logits: np.ndarray, n: int, draws: int,
                       rng: np.random.Generator) -> np.ndarray:
    """P(row in the sample) for n draws without replacement ∝ exp(logits), estimated from
    `draws` runs of `gumbel_top_k` — the sampler kMQ selects with.

    The runs are made in blocks of ≈ESTIMATE_CELLS keys: one `rng.gumbel((block, len))` fills
    the block row by row as `block` successive calls would, and a stable row-wise argsort takes
    each row's top n, so the draws are exactly those of `gumbel_top_k` called `draws` times on
    `rng` (tested) — without a Python call per draw, which kept the app's script thread (and
    the GIL) busy for seconds at k = 64."""
    counts = np.zeros(len(logits))
    block = max(1, min(draws, ESTIMATE_CELLS // max(len(logits), 1)))
    for start in range(0, draws, block):
        keys = logits + rng.gumbel(size=(min(block, draws - start), len(logits)))
        top = np.argsort(-keys, axis=1, kind="stable")[:, :n]
        counts += np.bincount(top.ravel(), minlength=len(logits))
    return counts / draws


def explanation_rng(seed: int) -> np.random.Generator:
    """The estimate's own stream: the first child of the selection's seed sequence, so it never
    replays the draws that made the selection."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def _softmax_inclusion(quality: np.ndarray, members: np.ndarray, n: int, tau: float,
                       draws: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(p per member, exact?) for kMQ's softmax sampling of n of `members`."""
    if n >= len(members):
        return np.ones(len(members)), True
    logits = (quality[members] - quality[members].max()) / tau
    if n == 1:
        weights = np.exp(logits)
        return weights / weights.sum(), True
    return estimate_inclusion(logits, n, draws, rng), False


def static_inclusion(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                     selected: np.ndarray, draws: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pool row's (p_select, exact?, per-cluster budget b_j) under the static method
    (`draws`: default `default_draws(N)`)."""
    labels = np.asarray(labels, dtype=np.int64)
    n, k = len(labels), int(labels.max()) + 1
    draws = default_draws(n) if draws is None else draws
    sizes = np.bincount(labels, minlength=k)
    method = get_method(config.method)
    if method.clustered:
        budgets = allocate_budget(sizes, config.budget)
    else:  # global methods: what each cluster ended up contributing
        budgets = np.bincount(labels[selected], minlength=k)
    chosen = np.zeros(n, dtype=bool)
    chosen[selected] = True
    if method.inclusion is None:  # deterministic: kmeans-closest, quality-top
        return chosen.astype(np.float64), np.ones(n, dtype=bool), budgets
    p, exact = method.inclusion(config, labels, np.asarray(quality, dtype=np.float64), budgets,
                                chosen, draws)
    return p, exact, budgets


def uniform_inclusion(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                      budgets: np.ndarray, chosen: np.ndarray, draws: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """random: b/N for every row."""
    return np.full(len(labels), config.budget / len(labels)), np.ones(len(labels), dtype=bool)


def within_cluster_inclusion(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                             budgets: np.ndarray, chosen: np.ndarray, draws: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """kmeans-random: b_j/n_j."""
    sizes = np.bincount(labels, minlength=len(budgets))
    return budgets[labels] / sizes[labels], np.ones(len(labels), dtype=bool)


def kmq_inclusion(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                  budgets: np.ndarray, chosen: np.ndarray, draws: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """kMQ: deterministic with `top`, else the softmax sampler's inclusion per cluster."""
    exact = np.ones(len(labels), dtype=bool)
    if config.top:
        return chosen.astype(np.float64), exact
    p = np.zeros(len(labels))
    rng = explanation_rng(config.sample_seed)
    for j in np.flatnonzero(budgets):
        members = np.flatnonzero(labels == j)
        p[members], exact[members] = _softmax_inclusion(
            quality, members, int(budgets[j]), config.sample_tau, draws, rng)
    return p, exact


def distance_ranks(labels: np.ndarray, quality: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """kmeans-closest: each row's rank by distance to its centroid (1 = nearest)."""
    return quality_ranks(labels, -np.asarray(distances, dtype=np.float64))


def pool_ranks(labels: np.ndarray, quality: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """quality-top: each row's rank by quality in the whole pool."""
    return quality_ranks(np.zeros(len(labels), dtype=np.int64), quality)


def kmq_how(config: SelectionConfig, r: Any, n_rows: int, probability: str,
            rank: int | None) -> str:
    if config.top:
        return f"the cluster's {r.cluster_budget} best are taken, {probability}"
    return f"drawn ∝ exp(quality/{config.sample_tau:g}) without replacement, {probability}"


def kmeans_random_how(config: SelectionConfig, r: Any, n_rows: int, probability: str,
                      rank: int | None) -> str:
    return (f"drawn uniformly within the cluster, {probability} "
            f"({r.cluster_budget}/{r.cluster_size})")


def closest_how(config: SelectionConfig, r: Any, n_rows: int, probability: str,
                rank: int | None) -> str:
    return (f"it is the {_ordinal(rank or 0)} nearest its centroid and the {r.cluster_budget} "
            f"nearest are taken, {probability}")


def random_how(config: SelectionConfig, r: Any, n_rows: int, probability: str,
               rank: int | None) -> str:
    return f"drawn uniformly from the whole pool, {probability} ({config.budget}/{n_rows})"


def quality_top_how(config: SelectionConfig, r: Any, n_rows: int, probability: str,
                    rank: int | None) -> str:
    return (f"it ranks {_ordinal(rank or 0)} of {n_rows} in the pool by quality and the "
            f"{config.budget} best are taken, {probability}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _probability_text(p: float, exact: bool, draws: int) -> str:
    return f"probability {p:.3g}" if exact else \
        f"probability ≈{p:.3g} (estimated from {draws} seeded draws)"


def static_rationale(config: SelectionConfig, labels: np.ndarray, quality: np.ndarray,
                     distances: np.ndarray, selected: np.ndarray, rows: np.ndarray | None = None,
                     draws: int | None = None) -> pd.DataFrame:
    """The rationale of `rows` (default: the selected rows, in that order) under the static
    selection `selected` made by `config`; rows not selected get the same fields and a `why`
    that says what the method's computation gave them instead."""
    labels = np.asarray(labels, dtype=np.int64)
    quality = np.asarray(quality, dtype=np.float64)
    selected = np.asarray(selected, dtype=np.int64)
    rows = selected if rows is None else np.asarray(rows, dtype=np.int64)
    draws = default_draws(len(labels)) if draws is None else draws
    p, exact, budgets = static_inclusion(config, labels, quality, selected, draws)
    sizes = np.bincount(labels, minlength=len(budgets))
    ranks = quality_ranks(labels, quality)
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[selected] = True
    frame = pd.DataFrame({
        "cluster": labels[rows], "cluster_size": sizes[labels[rows]],
        "cluster_budget": budgets[labels[rows]], "quality": quality[rows],
        "quality_rank": ranks[rows], "p_select": p[rows],
        "p_select_kind": np.where(exact[rows], "exact", "estimated"),
        "p_select_draws": np.where(exact[rows], 0, draws)})
    method = get_method(config.method)
    method_ranks = None if method.ranks is None else method.ranks(labels, quality, distances)
    frame["why"] = [
        _static_why(config, method, r, len(labels), bool(chosen[row]),
                    None if method_ranks is None else int(method_ranks[row]))
        for row, r in zip(rows, frame.itertuples(), strict=True)]
    return frame[RATIONALE_COLUMNS]


def _cluster_text(r: Any, n_rows: int, budget: int, clustered: bool) -> str:
    share = f"cluster {r.cluster} ({r.cluster_size / n_rows:.1%} of the pool, {r.cluster_size} rows)"
    if clustered:
        return f"{share} gets {r.cluster_budget} of {budget} rows"
    return f"{share} ended with {r.cluster_budget} of the {budget} rows"


def _static_why(config: SelectionConfig, method: Method, r: Any, n_rows: int, chosen: bool,
                method_rank: int | None) -> str:
    rank = f"this row ranks {_ordinal(r.quality_rank)} of {r.cluster_size} by quality ({r.quality:.3g})"
    probability = _probability_text(r.p_select, r.p_select_kind == "exact", r.p_select_draws)
    verb = "" if chosen else "not selected: "
    how = method.how(config, r, n_rows, probability, method_rank) if method.how else \
        f"{method.name} ({method.description}), {probability}"
    return f"{verb}{_cluster_text(r, n_rows, config.budget, method.clustered)}; {rank}; {how}"


def iterative_rationale(labels: np.ndarray, quality: np.ndarray,
                        added: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                        sample_tau: float, seed: int, draws: int | None = None) -> pd.DataFrame:
    """The rationale of an iterative kMQ selection, one row per selected row in the order the
    rounds added them: the static fields plus `round`, `round_weight` and `round_budget`.

    `cluster_budget` is the cluster's total over the rounds. `p_select` is the probability that
    the row's round drew it, given the rows selected before that round and the cluster's budget
    in it: the round samples b_j of the cluster's remaining rows ∝ exp(quality/τ) without
    replacement (Algorithm 1 of Yu et al., 2024: `draw_round`), exact when b_j is 1 or all remaining
    rows, else estimated with `gumbel_top_k` on the explanation's own seed stream."""
    labels = np.asarray(labels, dtype=np.int64)
    quality = np.asarray(quality, dtype=np.float64)
    draws = default_draws(len(labels)) if draws is None else draws
    k = len(weights[0]) if len(weights) else int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    ranks = quality_ranks(labels, quality)
    rng = explanation_rng(seed)
    available = np.ones(len(labels), dtype=bool)
    parts = []
    for number, (rows, w) in enumerate(zip(added, weights, strict=True), start=1):
        rows = np.asarray(rows, dtype=np.int64)
        round_budget = np.bincount(labels[rows], minlength=k)
        p = np.zeros(len(labels))
        exact = np.ones(len(labels), dtype=bool)
        for j in np.flatnonzero(round_budget):
            members = np.flatnonzero(available & (labels == j))
            p[members], exact[members] = _softmax_inclusion(
                quality, members, int(round_budget[j]), sample_tau, draws, rng)
        parts.append(pd.DataFrame({
            "row": rows, "round": number, "round_weight": np.asarray(w)[labels[rows]],
            "round_budget": round_budget[labels[rows]], "p_select": p[rows],
            "p_select_kind": np.where(exact[rows], "exact", "estimated"),
            "p_select_draws": np.where(exact[rows], 0, draws)}))
        available[rows] = False
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["row", "round", "round_weight", "round_budget", "p_select", "p_select_kind",
                 "p_select_draws"])
    rows = frame["row"].to_numpy(dtype=np.int64)
    totals = np.bincount(labels[rows], minlength=k)
    frame = frame.assign(cluster=labels[rows], cluster_size=sizes[labels[rows]],
                         cluster_budget=totals[labels[rows]], quality=quality[rows],
                         quality_rank=ranks[rows])
    n_rows, budget = len(labels), len(rows)
    frame["why"] = [
        f"round {r.round}: cluster {r.cluster} ({r.cluster_size / n_rows:.1%} of the pool, weight "
        f"{r.round_weight:.3f}) gets {r.round_budget} of the round's rows ({r.cluster_budget} of "
        f"{budget} over all rounds); this row ranks {_ordinal(r.quality_rank)} of "
        f"{r.cluster_size} by quality ({r.quality:.3g}); drawn ∝ exp(quality/{sample_tau:g}) "
        f"among the cluster's remaining rows, "
        f"{_probability_text(r.p_select, r.p_select_kind == 'exact', r.p_select_draws)}"
        for r in frame.itertuples()]
    return frame[[*RATIONALE_COLUMNS[:-1], "round", "round_weight", "round_budget", "why"]]


# --------------------------------------------------------------------------- summaries
def cluster_budget_table(rationale: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """Per contributing cluster: its rows in the pool and its share of them, the rows it gives
    the selection and their share of the budget — what a size-proportional budget looks like
    (or, for global methods and iterative weights, how far the picks stray from it)."""
    per_cluster = rationale.groupby("cluster", sort=True).agg(
        pool_rows=("cluster_size", "first"), budget=("cluster_budget", "first"))
    table = per_cluster.reset_index()
    table["pool_share"] = table["pool_rows"] / n_rows
    table["budget_share"] = table["budget"] / table["budget"].sum()
    return table[["cluster", "pool_rows", "pool_share", "budget", "budget_share"]]


def task_budget_table(explained: pd.DataFrame) -> pd.DataFrame:
    """Per task an influence selection's picks were made for (`explain_on_matrix`): how many,
    their share, and the first and median pick (order) that served it."""
    served = explained.dropna(subset=["task"])
    table = served.groupby("task", sort=False)["order"].agg(
        picks="count", first_pick="min", median_pick="median").reset_index()
    table["share"] = table["picks"] / len(explained)
    return table[["task", "picks", "share", "first_pick", "median_pick"]]


def tasks_served_over_order(explained: pd.DataFrame) -> pd.DataFrame:
    """Long table (order, task, picks so far) of how many picks each task has received after
    each pick: where a task lags, BIDS's running average lets its instances win next."""
    served = explained.dropna(subset=["task"])
    tasks = list(dict.fromkeys(served["task"]))
    counts = pd.crosstab(explained["order"], explained["task"]).reindex(
        columns=tasks, fill_value=0).cumsum()
    return counts.reset_index().melt(id_vars="order", var_name="task", value_name="picks")


def example_positions(rationale: pd.DataFrame, n: int = 5) -> np.ndarray:
    """Positions (in the selection) of n rows that show the method at work: for the kMQ family
    the best-ranked selected row of each of the n largest-budget clusters, for influence
    selections the first pick of each task then the earliest picks."""
    positions = pd.Series(np.arange(len(rationale)))
    if "cluster_budget" in rationale.columns:
        ranked = pd.DataFrame({"position": positions, "cluster": rationale["cluster"].to_numpy(),
                               "budget": rationale["cluster_budget"].to_numpy(),
                               "rank": rationale["quality_rank"].to_numpy()}).sort_values(
            ["budget", "rank", "position"], ascending=[False, True, True], kind="stable")
        chosen = ranked.drop_duplicates("cluster")["position"].tolist()
    elif "task" in rationale.columns:
        tasks = rationale["task"].reset_index(drop=True)
        chosen = positions[tasks.notna()].groupby(tasks[tasks.notna()], sort=False).first() \
            .sort_values().tolist()
    else:
        chosen = []
    taken = set(chosen)
    rest = [i for i in range(len(rationale)) if i not in taken]
    return np.asarray((chosen + rest)[:n], dtype=np.int64)
