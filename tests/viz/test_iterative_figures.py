"""Iterative-kMQ figures: one trace per cluster, the right axes, gaps where nothing was scored."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selection_core.viz.iterative import cluster_trends, entropy_trend, items_added, \
    low_quality_bars, round_heatmap, weight_evolution


@pytest.fixture()
def history() -> pd.DataFrame:
    rows = []
    for round_number in (1, 2, 3):
        weights = np.array([0.5, 0.3, 0.2]) if round_number > 1 else np.full(3, 1 / 3)
        for cluster in range(3):
            scored = not (cluster == 2 and round_number == 2)
            rows.append({"round": round_number, "cluster": cluster,
                         "weight": weights[cluster], "n_selected": 10 + cluster,
                         "n_scored": 4 if scored else 0,
                         "mean_score": (cluster - 1) / round_number if scored else np.nan,
                         "mean_quality": 0.2 * (cluster + 1) if scored else np.nan,
                         "next_weight": weights[::-1][cluster]})
    return pd.DataFrame(rows)


def test_cluster_trends_draw_the_chosen_clusters_with_gaps(history: pd.DataFrame) -> None:
    fig = cluster_trends(history, clusters=[0, 2])
    assert [t.name for t in fig.data] == ["cluster 0", "cluster 2"]
    assert np.isnan(np.asarray(fig.data[1].y, dtype=float)[1])
    assert len(cluster_trends(history).data) == 3
    assert "quality" in cluster_trends(history, value="mean_quality").layout.yaxis.title.text


def test_round_heatmap_is_clusters_by_rounds_symmetric_around_zero(history) -> None:
    heat = round_heatmap(history).data[0]
    assert np.asarray(heat.z).shape == (3, 3)
    assert list(heat.x) == ["round 1", "round 2", "round 3"]
    assert heat.zmin == -heat.zmax
    assert heat.text[2][1] == ""  # not scored in round 2


def test_weight_evolution_stacks_drawing_weights_then_the_final_ones(history) -> None:
    fig = weight_evolution(history)
    assert len(fig.data) == 3 and list(fig.data[0].x) == ["round 1", "round 2", "round 3", "after"]
    totals = np.sum([np.asarray(t.y) for t in fig.data], axis=0)
    np.testing.assert_allclose(totals, 1.0)
    assert fig.data[0].y[-1] == pytest.approx(0.2)  # cluster 0's next_weight after round 3


def test_items_added_and_low_quality_share(history) -> None:
    bars = items_added(history)
    assert bars.layout.barmode == "stack" and list(bars.data[2].y) == [12, 12, 12]
    summaries = pd.DataFrame({"round": [1, 2], "low_quality_share": [0.5, np.nan]})
    fig = low_quality_bars(summaries, 0.3)
    assert "below 0.3" in fig.layout.title.text and list(fig.data[0].text) == ["50%", ""]


def test_entropy_trend_per_round_then_after_against_log_k(history) -> None:
    fig = entropy_trend(history)
    trace = fig.data[0]
    assert list(trace.x) == ["round 1", "round 2", "round 3", "after"]
    uniform, skewed = np.log(3), -sum(w * np.log(w) for w in (0.5, 0.3, 0.2))
    np.testing.assert_allclose(trace.y, [uniform, skewed, skewed, skewed])
    assert fig.layout.shapes[0].y0 == pytest.approx(uniform)
