from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from selection_core.viz.figures import cluster_bars, cluster_map, k_sweep_figure, \
    selected_row_positions, selection_composition


@pytest.fixture()
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "x": rng.normal(size=n), "y": rng.normal(size=n),
        "id": [f"row-{i}" for i in range(n)],
        "prompt": [f"<b>prompt</b> number {i} " * 8 for i in range(n)],
        "cluster": rng.integers(0, 3, size=n), "source": rng.choice(["a", "b"], size=n),
        "quality": rng.random(n), "selected": rng.random(n) < 0.3,
    })


def test_map_by_cluster_has_one_webgl_trace_per_cluster_with_ids(frame: pd.DataFrame) -> None:
    fig = cluster_map(frame, "cluster")
    assert isinstance(fig, go.Figure)
    points = [t for t in fig.data if t.mode == "markers"]
    assert all(isinstance(t, go.Scattergl) for t in points)
    assert [t.name for t in points] == ["cluster 0", "cluster 1", "cluster 2"]
    labels = next(t for t in fig.data if t.mode == "text")
    assert list(labels.text) == ["0", "1", "2"]  # cluster ids printed at their centres
    ids = sorted(str(c[0]) for t in points for c in t.customdata)
    assert ids == sorted(frame["id"])
    for trace in points:  # customdata[1] is the row position, consistent with the id
        for custom in trace.customdata:
            assert frame["id"].iloc[int(custom[1])] == custom[0]
    hover = fig.data[0].customdata[0][2]
    assert "&lt;b&gt;" in hover and "<br>" in hover  # escaped and wrapped preview


def test_map_by_quality_uses_a_colour_bar(frame: pd.DataFrame) -> None:
    fig = cluster_map(frame, "quality")
    assert len(fig.data) == 1 and fig.data[0].marker.showscale


def test_map_by_selected_draws_selected_on_top(frame: pd.DataFrame) -> None:
    fig = cluster_map(frame, "selected")
    assert [t.name for t in fig.data] == ["not selected", "selected"]
    assert len(fig.data[1].x) == int(frame["selected"].sum())


def test_map_by_source(frame: pd.DataFrame) -> None:
    assert [t.name for t in cluster_map(frame, "source").data] == ["a", "b"]


def test_map_rejects_missing_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="needs columns"):
        cluster_map(frame.drop(columns="prompt"), "cluster")


def test_lasso_event_maps_back_to_rows(frame: pd.DataFrame) -> None:
    fig = cluster_map(frame, "cluster")
    picked = [{"customdata": list(fig.data[1].customdata[i])} for i in range(2)]
    picked.append({"x": 0.1, "y": 0.2})  # a point of the text trace carries no row
    event = {"selection": {"points": picked, "point_indices": [0, 1]}}
    rows = selected_row_positions(event)
    assert rows == sorted(int(p["customdata"][1]) for p in picked[:2])
    assert selected_row_positions(None) == []
    assert selected_row_positions({"points": picked}) == rows


def test_k_sweep_marks_recommended_and_knee() -> None:
    table = pd.DataFrame({"k": [2, 4, 8, 16, 32], "inertia": [100, 50, 35, 30, 28],
                          "silhouette": [0.1, 0.3, 0.2, 0.15, 0.1],
                          "simplified_silhouette": [0.2, 0.35, 0.3, 0.2, 0.15]})
    fig = k_sweep_figure(table, recommended_k=4, knee_k=4)
    names = [t.name for t in fig.data]
    assert "silhouette (sample)" in names and "inertia" in names and "knee k=4" in names
    assert any("recommended k=4" in (a.text or "") for a in fig.layout.annotations)
    assert len([s for s in fig.layout.shapes if s.type == "line"]) == 2
    assert fig.layout.xaxis.type == "log"  # a grid spanning ×16 is read on a log scale
    stacked = k_sweep_figure(table, 4, 4, stacked=True)
    assert stacked.layout.xaxis2.anchor == "y2" and stacked.layout.yaxis2.domain[1] < 0.5


def test_cluster_bars_sorted_by_size_coloured_by_quality() -> None:
    labels = np.array([0, 1, 1, 2, 2, 2])
    fig = cluster_bars(labels, quality=np.array([1.0, 0.0, 0.5, 0.2, 0.2, 0.2]))
    assert list(fig.data[0].x) == ["2", "1", "0"]
    assert list(fig.data[0].y) == [3, 2, 1]
    assert np.allclose(fig.data[0].marker.color, [0.2, 0.25, 1.0])


def test_selection_composition_shares() -> None:
    groups = np.array(["a", "a", "b", "b"])
    fig = selection_composition(groups, {"kmq": np.array([0, 1]), "random": np.array([0, 2])},
                                by="source")
    assert [t.name for t in fig.data] == ["pool", "kmq", "random"]
    assert list(fig.data[0].y) == [0.5, 0.5]
    assert list(fig.data[1].y) == [1.0, 0.0]
    assert list(fig.data[2].y) == [0.5, 0.5]
