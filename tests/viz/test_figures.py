from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from selection_core.select.compare import jaccard_matrix
from selection_core.viz.figures import FULL_WIDTH, MAP_LABELS, MAX_BARS, MAX_GROUPS, PALETTE, \
    SHORT_NAME, cluster_bars, cluster_map, k_sweep_figure, overlap_heatmap, quality_distribution, \
    selection_composition, short_names
from selection_core.viz.map_view import selected_rows

GLYPH = 0.6  # this test's own estimate of an average glyph's width, as a share of the font size


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
    rows = sorted(int(c) for t in points for c in t.customdata)
    assert rows == list(range(len(frame)))
    for trace in points:  # customdata is the row position, consistent with the id on hover
        for row, text in zip(trace.customdata, trace.hovertext):
            assert text.startswith(f"<b>{frame['id'].iloc[int(row)]}</b>")
    hover = fig.data[0].hovertext[0]
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


def test_clicked_points_map_back_to_rows(frame: pd.DataFrame) -> None:
    fig = cluster_map(frame, "cluster")
    coords = frame[["x", "y"]].to_numpy()
    picked = [{"customdata": int(fig.data[1].customdata[i])} for i in range(2)]
    picked.append({"x": 0.1, "y": 0.2})  # a point of the text trace carries no row
    event = {"selection": {"points": picked, "point_indices": [0, 1], "box": [], "lasso": []}}
    rows = selected_rows(coords, event)
    assert list(rows) == sorted(p["customdata"] for p in picked[:2])
    assert len(selected_rows(coords, None)) == 0
    assert list(selected_rows(coords, {"points": picked})) == list(rows)


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


def text_px(text: str, fig: go.Figure) -> float:
    return len(text) * GLYPH * fig.layout.font.size


def long_named_selections(n_rows: int, k: int, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Four selections named like the app names them; the last one takes all of cluster k-1."""
    rng = np.random.default_rng(k)
    tiny = np.flatnonzero(labels == k - 1)
    return {f"kmq · k={k} · 300 rows · τ=1 · seed 0": rng.choice(n_rows, 300, replace=False),
            f"random · k={k} · 300 rows · seed 0": rng.choice(n_rows, 300, replace=False),
            f"quality-top · k={k} · 300 rows": rng.choice(n_rows, 300, replace=False),
            f"kmq · k={k} · 300 rows · τ=0.25 · seed 0 · perplexity": np.concatenate(
                [tiny, rng.choice(n_rows, 300 - len(tiny), replace=False)])}


@pytest.mark.parametrize("k", [2, 64, 512, 2048])
def test_composition_stays_readable_from_k2_to_k2048(k: int) -> None:
    n_rows = max(3000, 3 * k)
    rng = np.random.default_rng(k)
    labels = np.minimum(rng.zipf(1.5, n_rows) - 1, max(k - 2, 0))  # a long tail of clusters
    labels[rng.choice(n_rows, 12, replace=False)] = k - 1  # small in the pool
    selections = long_named_selections(n_rows, k, labels)
    fig = selection_composition(labels, selections, by="cluster")
    bars = [t for t in fig.data if t.xaxis == "x"]  # the main panel: one trace per column
    others = [t for t in fig.data if t.xaxis == "x2"]  # "other", in a panel of its own
    groups = list(bars[0].x)
    assert sum(len(t.x) for t in fig.data) <= MAX_BARS
    assert len(groups) <= min(len(np.unique(labels)), MAX_GROUPS)
    many = len(np.unique(labels)) > MAX_GROUPS + 1
    assert len(others) == (len(bars) if many else 0)
    for i, trace in enumerate(bars):  # every share is accounted for: the rest is in "other"
        assert sum(trace.y) + (others[i].y[0] if others else 0) == pytest.approx(1.0)
    assert list(bars[0].y) == sorted(bars[0].y, reverse=True)  # sorted by share
    if many:
        pool_rank = list(pd.Series(labels).value_counts().index).index(k - 1)
        assert pool_rank > MAX_GROUPS and str(k - 1) in groups  # over-sampled: kept in view
        assert {t.yaxis for t in others} == {"y2"}  # its own scale: it never flattens the rest
    domain = fig.layout.xaxis.domain
    slot = (FULL_WIDTH - fig.layout.margin.l - fig.layout.margin.r) * (domain[1] - domain[0]) \
        / len(groups)
    assert fig.layout.xaxis.tickangle == 0
    assert all(text_px(tick, fig) <= slot for tick in fig.layout.xaxis.ticktext)
    names = [t.name for t in bars[1:]]
    assert len(set(names)) == 4 and all(len(name) <= SHORT_NAME for name in names)
    for trace, full in zip(bars[1:], selections):
        assert full in trace.hovertemplate  # the full name on hover
    assert "300 rows" in fig.layout.title.subtitle.text  # what all share, said once


def test_composition_by_source_cuts_long_source_names_to_their_slot() -> None:
    sources = np.array([f"a_very_long_dataset_name_number_{i}.jsonl.gz" for i in range(25)])
    groups = sources[np.random.default_rng(0).integers(0, 25, 2000)]
    fig = selection_composition(groups, {"kmq": np.arange(300)}, by="source")
    domain = fig.layout.xaxis.domain
    slot = (FULL_WIDTH - fig.layout.margin.l - fig.layout.margin.r) * (domain[1] - domain[0]) \
        / len(fig.data[0].x)
    assert all(text_px(tick, fig) <= slot for tick in fig.layout.xaxis.ticktext)
    assert all(len(x) > len(t) for x, t in zip(fig.data[0].x, fig.layout.xaxis.ticktext))


def test_short_names_drop_what_all_share_and_stay_distinct() -> None:
    names = ["kmq · k=64 · 300 rows · τ=1 · seed 0", "random · k=64 · 300 rows · seed 0",
             "kmq · k=64 · 300 rows · τ=1 · seed 0 · " + "x" * 40,
             "kmq · k=64 · 300 rows · τ=1 · seed 0 · " + "x" * 41]
    labels, shared = short_names(names)
    assert shared == "k=64 · 300 rows · seed 0"
    assert labels[:2] == ["kmq · τ=1", "random"]
    assert len(set(labels)) == 4 and all(len(label) <= SHORT_NAME for label in labels)
    assert short_names(["only one · k=8"]) == (["only one · k=8"], "")


def test_overlap_heatmap_labels_fit_inside_the_figure() -> None:
    labels = np.arange(3000) % 64
    selections = long_named_selections(3000, 64, labels)
    fig = overlap_heatmap(jaccard_matrix(selections))
    ticks = list(fig.data[0].y)
    assert ticks == list(fig.data[0].x) and len(set(ticks)) == 4
    assert all(len(t) <= SHORT_NAME for t in ticks)
    assert fig.layout.margin.l >= max(text_px(t, fig) for t in ticks)  # never cut off
    assert fig.layout.yaxis.automargin and fig.layout.xaxis.automargin
    assert all(full in cell for full, row in zip(selections, fig.data[0].customdata)
               for cell in row[:1])  # full names on hover


def test_quality_boxes_use_short_names() -> None:
    labels = np.arange(3000) % 64
    selections = long_named_selections(3000, 64, labels)
    fig = quality_distribution(np.random.default_rng(0).random(3000), selections)
    assert [t.name for t in fig.data][1:] == short_names(list(selections))[0]
    assert all(full in t.hovertemplate for t, full in zip(fig.data[1:], selections))


def test_cluster_bars_become_a_size_distribution_past_the_readable_maximum() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2048, 20_000)
    fig = cluster_bars(labels, rng.random(20_000))
    assert len(fig.data) == 1 and len(fig.data[0].x) <= MAX_BARS
    assert sum(fig.data[0].y) == 2048  # every cluster counted once
    few = cluster_bars(rng.integers(0, 8, 500))
    assert len(few.data[0].x) == 8 and few.layout.xaxis.showticklabels is not False
    many = cluster_bars(rng.integers(0, MAX_BARS, 5000))
    assert len(many.data[0].x) == MAX_BARS and many.layout.xaxis.showticklabels is False


def test_map_at_large_k_is_one_trace_with_the_largest_clusters_labelled() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n),
                          "id": [f"r{i}" for i in range(n)], "prompt": ["p"] * n,
                          "cluster": rng.integers(0, 512, n)})
    fig = cluster_map(frame, "cluster")
    points = [t for t in fig.data if t.mode == "markers"]
    text = next(t for t in fig.data if t.mode == "text")
    # one trace per palette colour (a colour scale over 512 ids is slow to redraw), no legend
    assert len(points) == len(PALETTE) and not any(t.showlegend for t in points)
    assert [t.marker.color for t in points] == list(PALETTE)
    assert sorted(int(r) for t in points for r in t.customdata) == list(range(n))
    position = {c: j for j, c in enumerate(sorted(frame["cluster"].unique()))}
    for i, trace in enumerate(points):  # the j-th cluster is drawn in palette colour j mod 24
        clusters = frame["cluster"].to_numpy()[np.asarray(trace.customdata)]
        assert {position[c] % len(PALETTE) for c in clusters} == {i}
        assert all(hover.startswith(f"<b>{frame['id'].iloc[int(row)]}</b><br>cluster: "
                                    f"{frame['cluster'].iloc[int(row)]}<br>")
                   for row, hover in zip(trace.customdata[:20], trace.hovertext[:20]))
    assert len(text.text) == MAP_LABELS
    largest = frame["cluster"].value_counts().index[:MAP_LABELS]
    assert set(text.text) == {str(c) for c in largest}
