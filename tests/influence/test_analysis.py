"""AID and THI on hand-computed cases, the comparison tables, and the influence figures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from selection_core.spine.errors import ConfigError
from selection_core.influence.analysis import aid, aid_by_task, compare_methods, thi, thi_table
from selection_core.select.bids import normalise_columns
from selection_core.select.compare import jaccard_matrix
from selection_core.viz.influence import aid_strip, aid_task_heatmap, method_overlap, thi_bars

# row 0: task means (x 2, y 1), best instance 3 (x) → x at both levels
# row 1: task means (x 2, y 3), best instance 4 (x) → y by task, x by instance
# row 2: task means (x 0.5, y 2.5), best instance 5 (y) → y at both levels
A = np.array([[1.0, 3.0, 0.0, 2.0],
              [4.0, 0.0, 3.0, 3.0],
              [0.0, 1.0, 5.0, 0.0]])
TASKS = np.array(["x", "x", "y", "y"])


def test_aid_is_the_column_mean_over_the_selected_rows() -> None:
    np.testing.assert_array_equal(aid(A, np.array([0, 2])), [0.5, 2.0, 2.5, 1.0])
    assert aid(A.astype(np.float32), [0]).dtype == np.float64
    assert np.isnan(aid(A, np.array([], dtype=np.int64))).all()


def test_aid_by_task_summarises_each_task_in_first_appearance_order() -> None:
    table = aid_by_task(np.array([0.5, 2.0, 2.5, 1.0]), np.array(["y", "y", "x", "x"]))
    assert list(table.columns) == ["task", "mean", "std", "n_instances"]
    assert list(table["task"]) == ["y", "x"]
    np.testing.assert_allclose(table["mean"], [1.25, 1.75])
    np.testing.assert_allclose(table["std"], [0.75, 0.75])  # population std
    assert list(table["n_instances"]) == [2, 2]


def test_thi_counts_the_favourite_task_at_both_levels() -> None:
    rows = np.array([0, 1, 2])
    by_task = thi(A, TASKS, rows, level="task")
    assert by_task.to_dict() == {"x": 1, "y": 2}
    assert thi(A, TASKS, rows, level="instance").to_dict() == {"x": 2, "y": 1}
    assert by_task.index.name == "task"
    with pytest.raises(ConfigError, match="task, instance"):
        thi(A, TASKS, rows, level="column")


def test_thi_ties_go_to_the_first_task_and_unfavoured_tasks_count_zero() -> None:
    tasks = np.array(["y", "y", "x", "x", "z"])
    tied = np.array([[2.0, 0.0, 1.0, 1.0, 0.0],   # task means y 1 = x 1; best instance in y
                     [1.0, 1.0, 1.0, 1.0, 1.0]])  # every task and instance ties
    assert thi(tied, tasks, [0, 1], level="task").to_dict() == {"y": 2, "x": 0, "z": 0}
    assert thi(tied, tasks, [0, 1], level="instance").to_dict() == {"y": 2, "x": 0, "z": 0}


def test_normalised_analysis_uses_column_z_scores() -> None:
    # raw, row 1 favours y (12 > 2); after z-scoring the columns it favours x
    raw = np.array([[0.0, 10.0], [2.0, 12.0], [1.0, 30.0]])
    tasks = np.array(["x", "y"])
    z = (raw - raw.mean(axis=0)) / np.sqrt(((raw - raw.mean(axis=0)) ** 2).mean(axis=0))
    for normalised, favourite, values in ((False, "y", raw[1]), (True, "x", z[1])):
        tables = compare_methods(raw, tasks, {"one": np.array([1])}, normalised=normalised)
        thi_task = tables["thi"].query("level == 'task'").set_index("task")["count"]
        assert thi_task[favourite] == 1 and thi_task.sum() == 1
        np.testing.assert_allclose(tables["aid"]["value"], values)
    np.testing.assert_allclose(normalise_columns(raw), z)


@pytest.fixture()
def tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(100, 6))
    tasks = np.array(["math", "math", "code", "code", "bbh", "bbh"])
    selections = {"bids": np.arange(0, 20), "random": rng.permutation(100)[:20],
                  "empty": np.array([], dtype=np.int64)}
    return compare_methods(matrix, tasks, selections, normalised=False)


def test_compare_methods_returns_tidy_frames(tables: dict[str, pd.DataFrame]) -> None:
    assert list(tables["thi"].columns) == ["method", "task", "count", "share", "level"]
    assert list(tables["aid"].columns) == ["method", "instance", "task", "value"]
    assert list(tables["aid_task"].columns) == ["method", "task", "mean"]
    assert len(tables["thi"]) == 3 * 3 * 2 and len(tables["aid"]) == 3 * 6
    shares = tables["thi"].groupby(["method", "level"], sort=False)["share"].sum()
    np.testing.assert_allclose(shares.drop("empty"), 1.0)
    np.testing.assert_array_equal(shares["empty"], 0.0)
    means = tables["aid"].groupby(["method", "task"], sort=False)["value"].mean()
    np.testing.assert_allclose(tables["aid_task"].set_index(["method", "task"])["mean"],
                               means.reindex(tables["aid_task"].set_index(["method", "task"])
                                             .index))
    assert list(tables["aid_task"]["task"].unique()) == ["math", "code", "bbh"]


def test_thi_table_is_tasks_by_methods_counts_in_frame_order(tables) -> None:
    table = thi_table(tables["thi"], level="instance")
    assert list(table.columns) == ["task", "bids", "random", "empty"]
    assert list(table["task"]) == ["math", "code", "bbh"]
    assert table[["bids", "random"]].sum().tolist() == [20, 20]
    assert (table["empty"] == 0).all()
    frame = tables["thi"].query("level == 'instance' and method == 'random'")
    assert table["random"].tolist() == frame["count"].tolist()
    with pytest.raises(ConfigError, match="task, instance"):
        thi_table(tables["thi"], level="column")


# --------------------------------------------------------------------------- figures
def test_thi_bars_one_trace_per_method_with_shares_and_counts(tables) -> None:
    fig = thi_bars(tables["thi"], level="instance")
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["bids", "random", "empty"]
    frame = tables["thi"].query("level == 'instance' and method == 'bids'")
    assert list(fig.data[0].x) == ["math", "code", "bbh"]
    np.testing.assert_allclose(fig.data[0].y, frame["share"])
    np.testing.assert_array_equal(fig.data[0].customdata, frame["count"])
    assert "rows" in fig.data[0].hovertemplate and "instance level" in fig.layout.title.text


def test_aid_strip_boxes_with_points_per_task_and_method(tables) -> None:
    fig = aid_strip(tables["aid"])
    assert [t.name for t in fig.data] == ["bids", "random", "empty"]
    assert all(isinstance(t, go.Box) and t.boxpoints == "all" and t.boxmean for t in fig.data)
    assert set(fig.data[0].x) == {"math", "code", "bbh"} and len(fig.data[0].y) == 6
    assert list(fig.layout.xaxis.categoryarray) == ["math", "code", "bbh"]
    assert fig.layout.boxmode == "group"


def test_aid_task_heatmap_is_methods_by_tasks_and_annotated(tables) -> None:
    heat = aid_task_heatmap(tables["aid_task"]).data[0]
    assert list(heat.y) == ["bids", "random", "empty"]
    assert list(heat.x) == ["math", "code", "bbh"]
    expected = tables["aid_task"].query("method == 'bids'")["mean"].to_numpy()
    np.testing.assert_allclose(heat.z[0], expected)
    assert heat.text[0][0] == f"{expected[0]:.3g}" and heat.zmid == 0


def test_method_overlap_is_the_shared_jaccard_heatmap() -> None:
    selections = {"a": np.array([0, 1, 2, 3]), "b": np.array([2, 3, 4, 5])}
    heat = method_overlap(selections).data[0]
    assert list(heat.x) == list(heat.y) == ["a", "b"]
    np.testing.assert_allclose(heat.z, jaccard_matrix(selections).to_numpy())
    np.testing.assert_allclose(heat.z[0][1], 2 / 6)
