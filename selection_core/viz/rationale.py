"""What drove a selection's picks (issue 16): pure figure builders over the tables of
`select.rationale` — a kMQ-family selection's budget by cluster against the pool's shares, and
an influence selection's tasks served over the selection order.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .figures import MAX_BARS, MUTED, apply_layout, color_for


def budget_vs_pool_share(table: pd.DataFrame, title: str | None = "Budget by cluster vs "
                                                                  "pool share") -> go.Figure:
    """Per cluster (`cluster_budget_table`), its share of the pool beside its share of the
    selection: equal bars are a size-proportional budget; a gap shows where the method (global
    ranking, iterative weights) moved rows. The largest MAX_BARS clusters by pool size."""
    table = table.sort_values("pool_rows", ascending=False, kind="stable").head(MAX_BARS)
    clusters = [str(c) for c in table["cluster"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=clusters, y=table["pool_share"], name="share of the pool",
                         marker=dict(color=MUTED), customdata=table["pool_rows"],
                         hovertemplate="cluster %{x}: %{y:.1%} of the pool (%{customdata} rows)"
                                       "<extra></extra>"))
    fig.add_trace(go.Bar(x=clusters, y=table["budget_share"], name="share of the selection",
                         marker=dict(color=color_for(0)), customdata=table["budget"],
                         hovertemplate="cluster %{x}: %{y:.1%} of the selection (%{customdata} "
                                       "rows)<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="cluster (largest first)", type="category")
    fig.update_yaxes(title_text="share", tickformat=".0%")
    return apply_layout(fig, title, height=380)


def tasks_served(served: pd.DataFrame, title: str | None = "Tasks served over the selection "
                                                             "order") -> go.Figure:
    """Picks so far per task after each pick (`tasks_served_over_order`): under BIDS a task
    that falls behind is picked up — its line climbs while the others flatten."""
    fig = go.Figure()
    for i, (task, part) in enumerate(served.groupby("task", sort=False)):
        fig.add_trace(go.Scatter(x=part["order"], y=part["picks"], mode="lines", name=str(task),
                                 line=dict(color=color_for(i), width=2, shape="hv"),
                                 hovertemplate=f"{task}: %{{y}} of the first %{{x}} picks"
                                               "<extra></extra>"))
    fig.update_xaxes(title_text="pick (selection order)")
    fig.update_yaxes(title_text="picks serving the task so far")
    return apply_layout(fig, title, height=380)
