"""Issue 16: every selected row's rationale agrees with the method's own computation."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.spine.config import SelectionConfig
from selection_core.select.bids import explain_on_matrix, normalise_columns, select_on_matrix, \
    task_max_scores
from selection_core.iterative.rounds import draw_round
from selection_core.select.kmq import select_static
from selection_core.select.rationale import estimate_inclusion, explanation_rng, \
    iterative_rationale, quality_ranks, static_rationale


@pytest.fixture(scope="module")
def pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    labels = rng.choice(5, size=240, p=[0.4, 0.25, 0.15, 0.15, 0.05])
    return labels, rng.normal(size=240) * 2, rng.uniform(size=240)


@pytest.mark.parametrize("method", ["kmq", "kmeans-random", "kmeans-closest", "random",
                                    "quality-top"])
def test_static_fields_follow_the_selection(pool, method: str) -> None:
    labels, quality, distances = pool
    config = SelectionConfig(method=method, budget=37, k=5, sample_tau=0.7, sample_seed=3)
    rows = select_static(config, labels, quality, distances)
    why = static_rationale(config, labels, quality, distances, rows, draws=50)
    assert len(why) == len(rows)
    np.testing.assert_array_equal(why["cluster"], labels[rows])
    budgets = why.groupby("cluster")["cluster_budget"].first()
    assert budgets.sum() == 37  # every contributing cluster once: the budgets sum to the budget
    np.testing.assert_array_equal(budgets, pd.Series(labels[rows]).value_counts().sort_index())
    np.testing.assert_array_equal(why["cluster_size"], np.bincount(labels)[labels[rows]])
    assert why["why"].str.startswith(tuple(f"cluster {j} (" for j in range(5))).all()
    expected = {"random": 37 / 240, "kmeans-random": why["cluster_budget"] / why["cluster_size"],
                "kmeans-closest": 1.0, "quality-top": 1.0}
    if method in expected:
        assert (why["p_select_kind"] == "exact").all() and (why["p_select_draws"] == 0).all()
        np.testing.assert_allclose(why["p_select"], expected[method])


def test_quality_ranks_follow_quality_within_each_cluster(pool) -> None:
    labels, quality, _ = pool
    ranks = quality_ranks(labels, quality)
    for j in range(5):
        members = np.flatnonzero(labels == j)
        by_quality = members[np.argsort(-quality[members], kind="stable")]
        np.testing.assert_array_equal(ranks[by_quality], np.arange(1, len(members) + 1))
    tied = quality_ranks(np.array([0, 0, 0]), np.array([1.0, 2.0, 1.0]))
    np.testing.assert_array_equal(tied, [2, 1, 3])  # equal quality: the lower row first


def test_kmq_exact_cases_and_the_estimate() -> None:
    """b_j = 1: p is the softmax itself (exact); b_j = n_j: 1; otherwise estimated, and the
    estimator agrees with exact inclusion probabilities enumerated over all ordered draws."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    quality = np.array([0.0, 1.0, 2.0, -1.0, 0.5, 0.0, 3.0, 1.0, 2.0])
    config = SelectionConfig(method="kmq", budget=5, k=3, sample_tau=1.0)
    rows = select_static(config, labels, quality, np.zeros(9))
    why = static_rationale(config, labels, quality, np.zeros(9), rows,
                           rows=np.arange(9), draws=4000)
    budgets = why.groupby("cluster")["cluster_budget"].first().tolist()
    assert budgets == [2, 2, 1]
    softmax = np.exp(quality[7:]) / np.exp(quality[7:]).sum()
    np.testing.assert_allclose(why["p_select"][7:], softmax)  # b_j = 1
    assert (why["p_select_kind"][7:] == "exact").all()
    assert (why["p_select_kind"][:7] == "estimated").all()
    assert (why["p_select_draws"][:7] == 4000).all()
    for members in (np.arange(4), np.arange(4, 7)):
        exact = _plackett_luce_inclusion(quality[members], 2)
        np.testing.assert_allclose(why["p_select"][members], exact, atol=4 * 0.5 / np.sqrt(4000))
    estimate = estimate_inclusion(quality[:4], 1, 4000, explanation_rng(0))
    softmax = np.exp(quality[:4]) / np.exp(quality[:4]).sum()
    np.testing.assert_allclose(estimate, softmax, atol=4 * 0.5 / np.sqrt(4000))


def _plackett_luce_inclusion(logits: np.ndarray, n: int) -> np.ndarray:
    """Exact P(i among n successive softmax draws without replacement), by enumeration."""
    weights = np.exp(logits)
    p = np.zeros(len(logits))
    for sequence in itertools.permutations(range(len(logits)), n):
        left, chance = weights.sum(), 1.0
        for i in sequence:
            chance *= weights[i] / left
            left -= weights[i]
        p[list(sequence)] += chance
    return p


def test_unselected_rows_get_the_methods_numbers(pool) -> None:
    labels, quality, distances = pool
    config = SelectionConfig(method="kmeans-closest", budget=20, k=5)
    rows = select_static(config, labels, quality, distances)
    why = static_rationale(config, labels, quality, distances, rows, rows=np.arange(240))
    chosen = np.isin(np.arange(240), rows)
    np.testing.assert_array_equal(why["p_select"], chosen.astype(float))
    assert why["why"][~chosen].str.startswith("not selected: ").all()
    assert not why["why"][chosen].str.contains("not selected").any()


def test_iterative_rounds_weights_and_budgets(pool) -> None:
    labels, quality, _ = pool
    weights = [np.full(5, 0.2), np.array([0.5, 0.2, 0.1, 0.1, 0.1])]
    added, selected = [], np.zeros(0, dtype=np.int64)
    for number, w in enumerate(weights, start=1):
        rows = draw_round(labels, quality, w, selected, 30, 0.8, 4, number)
        added.append(rows)
        selected = np.concatenate([selected, rows])
    why = iterative_rationale(labels, quality, added, weights, 0.8, 4, draws=50)
    np.testing.assert_array_equal(why["round"], np.repeat([1, 2], 30))
    np.testing.assert_array_equal(why["round_weight"][30:], weights[1][labels[added[1]]])
    for number in (1, 2):
        part = why[why["round"] == number]
        assert part.groupby("cluster")["round_budget"].first().sum() == 30
    assert why.groupby("cluster")["cluster_budget"].first().sum() == 60
    assert why["p_select"].between(0, 1).all() and why["why"].str.startswith("round ").all()


# --------------------------------------------------------------------------- influence
@pytest.fixture(scope="module")
def matrix() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    tasks = np.array(["gsm", "gsm", "mmlu", "mmlu", "mmlu", "ifeval", "ifeval"])
    A = np.round(rng.normal(size=(90, len(tasks))) * rng.uniform(0.5, 3, len(tasks)), 1)
    return A, tasks


def test_bids_explanation_is_the_naive_greedys(matrix) -> None:
    """Recompute the greedy naively from the matrix (every row, every column, each step): the
    same order, val_index, task and utility as the greedy recorded."""
    A, tasks = matrix
    explained = explain_on_matrix(A, tasks, "bids", 25)
    A_hat = normalise_columns(A)
    chosen: list[int] = []
    for step in range(25):
        c = A_hat[chosen].mean(axis=0) if chosen else np.zeros(A.shape[1])
        best = None
        for i in range(len(A)):
            if i in chosen:
                continue
            for j in range(A.shape[1]):
                key = (A_hat[i, j] - c[j], A_hat[i, j], -i, -j)
                best = key if best is None or key > best else best
        utility, _, row, column = best
        chosen.append(-row)
        record = explained.iloc[step]
        assert (record["row"], record["order"], record["val_index"]) == (-row, step + 1, -column)
        assert record["task"] == tasks[-column]
        assert record["utility"] == pytest.approx(utility, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("method", ["bids", "task-max", "instance-max", "instance-max-norm",
                                    "sum", "random"])
def test_explanations_are_of_the_selected_rows(matrix, method: str) -> None:
    A, tasks = matrix
    explained = explain_on_matrix(A, tasks, method, 30, seed=2)
    np.testing.assert_array_equal(explained["row"], select_on_matrix(A, tasks, method, 30, 2))
    rows = explained["row"].to_numpy()
    if method == "task-max":
        np.testing.assert_array_equal(explained["utility"], task_max_scores(A, tasks)[rows])
        means = {t: A[rows][:, tasks == t].mean(axis=1) for t in set(tasks)}
        best = [means[t][n] for n, t in enumerate(explained["task"])]
        np.testing.assert_allclose(best, explained["utility"])
    if method == "instance-max":
        np.testing.assert_array_equal(explained["val_index"], A[rows].argmax(axis=1))
        np.testing.assert_array_equal(explained["task"], tasks[A[rows].argmax(axis=1)])
    if method == "random":
        assert explained["utility"].isna().all() and explained["val_index"].isna().all()


def test_influence_select_explain_writes_jsonl_in_selection_order(matrix, tmp_path: Path) -> None:
    from selection_core.cli import main

    A, tasks = matrix
    np.save(tmp_path / "A.npy", A, allow_pickle=False)
    (tmp_path / "tasks.txt").write_text("\n".join(tasks) + "\n")
    out, why = tmp_path / "rows.txt", tmp_path / "why.jsonl"
    assert main(["influence", "select", "--matrix", str(tmp_path / "A.npy"), "--val-tasks",
                 str(tmp_path / "tasks.txt"), "--method", "bids", "--budget", "12", "--out",
                 str(out), "--explain", str(why)]) == 0
    records = [json.loads(line) for line in why.read_text().splitlines()]
    assert [r["row"] for r in records] == [int(v) for v in out.read_text().split()]
    assert [r["order"] for r in records] == list(range(1, 13))
    assert set(records[0]) == {"row", "order", "val_index", "task", "utility", "why"}
    assert records[0]["why"].startswith("pick 1 of 12: on validation instance ")


# --------------------------------------------------------------------------- the report
def test_report_section_says_how_the_subset_was_chosen(pool, matrix) -> None:
    from selection_core.frontends.report import NamedSelection, how_chosen_section, render_report

    labels, quality, distances = pool
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(240)],
                          "prompt": [f"prompt {i}" for i in range(240)],
                          "response": [f"response {i}" for i in range(240)]})
    config = SelectionConfig(method="kmq", budget=40, k=5, sample_seed=1)
    rows = select_static(config, labels, quality, distances)
    why = static_rationale(config, labels, quality, distances, rows, draws=20)
    kmq = how_chosen_section(frame, NamedSelection("kmq run", rows, config.to_dict(), why))
    assert kmq.title == "How the subset was chosen — kmq run"
    assert kmq.text.startswith("Method: kmq — k-means + quality") and "budget=40" in kmq.text
    (_, budgets), (_, examples) = kmq.tables
    assert budgets["budget"].sum() == 40 and len(budgets) == 5
    assert budgets["budget"].tolist() == np.bincount(labels[rows]).tolist()
    by_row = why.set_index(pd.Index(rows))
    shown = [int(i[1:]) for i in examples["id"]]
    assert len(examples) == 5 and examples["why"].tolist() == by_row.loc[shown, "why"].tolist()
    assert by_row.loc[shown, "cluster"].nunique() == 5  # one example per cluster
    assert by_row.loc[shown, "cluster_budget"].is_monotonic_decreasing  # largest budget first
    A, tasks = matrix
    explained = explain_on_matrix(A, tasks, "bids", 20)
    bids = how_chosen_section(frame, NamedSelection("bids file", explained["row"].to_numpy(),
                                                    {"file": "why.jsonl"}, explained))
    (_, per_task), (_, examples) = bids.tables
    assert per_task["picks"].sum() == 20 and set(per_task["task"]) <= set(tasks)
    assert examples["why"].str.startswith("pick ").all()
    html = render_report("r", [kmq, bids])
    assert "How the subset was chosen — kmq run" in html and "Picks per task" in html


def test_tasks_served_counts_every_pick_once(matrix) -> None:
    from selection_core.select.rationale import task_budget_table, tasks_served_over_order
    from selection_core.viz.rationale import tasks_served

    A, tasks = matrix
    explained = explain_on_matrix(A, tasks, "bids", 30)
    served = tasks_served_over_order(explained)
    last = served[served["order"] == 30].set_index("task")["picks"]
    assert last.sum() == 30
    assert last.to_dict() == explained["task"].value_counts().to_dict()
    table = task_budget_table(explained).set_index("task")
    assert table["picks"].to_dict() == last.to_dict()
    assert (table["first_pick"] == [explained.loc[explained["task"] == t, "order"].min()
                                    for t in table.index]).all()
    assert len(tasks_served(served).data) == len(last)


def test_the_estimate_costs_a_bounded_number_of_draws_at_scale() -> None:
    from selection_core.select.rationale import default_draws

    assert [default_draws(n) for n in (3000, 100_000, 200_000, 1_000_000, 10**8)] == \
        [1000, 1000, 500, 100, 100]


def test_the_estimate_replays_the_selections_sampler_exactly() -> None:
    """Blocked draws are `gumbel_top_k`'s, call for call: same generator, same samples."""
    from selection_core.select.kmq import gumbel_top_k
    from selection_core.select.rationale import ESTIMATE_CELLS

    logits = np.random.default_rng(3).normal(size=700)
    draws = 3 * (ESTIMATE_CELLS // 700) + 5  # several blocks and a partial one
    rng = np.random.default_rng(9)
    counts = np.zeros(700)
    for _ in range(draws):
        counts[gumbel_top_k(logits, 40, rng)] += 1
    np.testing.assert_array_equal(estimate_inclusion(logits, 40, draws, np.random.default_rng(9)),
                                  counts / draws)
