"""Figures for influence-based selection: which tasks a selection serves (THI, AID) and how far
methods agree. Pure functions from the long tables of `influence.analysis.compare_methods` to
plotly Figures, in the style of `viz.figures`; methods keep one colour across all figures.
"""
from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..select.compare import jaccard_matrix
from .figures import apply_layout, color_for, overlap_heatmap


def _in_order(values: pd.Series) -> list:
    """Distinct values in order of first appearance: the order the caller listed them in."""
    return list(pd.unique(values))


def thi_bars(thi_frame: pd.DataFrame, level: str = "task",
             title: str | None = None) -> go.Figure:
    """Share of each selection whose highest-influence task is each task, methods side by side
    (one THI `level` of the frame; hover gives the row counts)."""
    frame = thi_frame[thi_frame["level"] == level]
    tasks = _in_order(frame["task"])
    fig = go.Figure()
    for i, (method, part) in enumerate(frame.groupby("method", sort=False)):
        part = part.set_index("task").reindex(tasks)
        fig.add_trace(go.Bar(x=tasks, y=part["share"].to_numpy(), name=method,
                             customdata=part["count"].to_numpy(),
                             marker=dict(color=color_for(i)),
                             hovertemplate=f"%{{x}}: %{{y:.1%}} of {html.escape(method)} "
                                           "(%{customdata} rows)<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="task", type="category")
    fig.update_yaxes(title_text="share of the selection", tickformat=".0%")
    return apply_layout(fig, title or f"Task with the highest influence ({level} level)", height=400)


def aid_strip(aid_frame: pd.DataFrame, title: str | None = "Average influence per validation "
                                                               "instance") -> go.Figure:
    """AID of every validation instance, grouped by task: per (task, method) a box with its
    points, the dashed line in each box marking the task mean."""
    tasks = _in_order(aid_frame["task"])
    fig = go.Figure()
    for i, (method, part) in enumerate(aid_frame.groupby("method", sort=False)):
        fig.add_trace(go.Box(x=part["task"], y=part["value"], name=method, boxmean=True,
                             boxpoints="all", jitter=0.4, pointpos=0,
                             text=[f"instance {j}" for j in part["instance"]],
                             marker=dict(color=color_for(i), size=4, opacity=0.6),
                             line=dict(width=1.5)))
    fig.update_layout(boxmode="group")
    fig.update_xaxes(title_text="task", type="category", categoryorder="array",
                     categoryarray=tasks)
    fig.update_yaxes(title_text="AID (mean influence of the selected rows)", zeroline=True)
    return apply_layout(fig, title, height=460)


def aid_task_heatmap(aid_task_frame: pd.DataFrame,
                     title: str | None = "Mean AID per task") -> go.Figure:
    """Methods × tasks mean AID, annotated; diverging around 0 so helpful (positive) and
    harmful (negative) influence read apart."""
    table = aid_task_frame.pivot(index="method", columns="task", values="mean").reindex(
        index=_in_order(aid_task_frame["method"]), columns=_in_order(aid_task_frame["task"]))
    values = table.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(z=values, x=list(table.columns), y=list(table.index),
                               zmid=0, colorscale="RdBu",
                               text=np.vectorize(lambda v: f"{v:.3g}", otypes=[str])(values),
                               texttemplate="%{text}",
                               hovertemplate="%{y} on %{x}: %{z:.4f}<extra></extra>",
                               colorbar=dict(title="mean AID", thickness=14)))
    fig.update_yaxes(autorange="reversed")
    return apply_layout(fig, title, height=120 + 40 * len(table))


def method_overlap(selections: Mapping[str, np.ndarray],
                   title: str | None = "Overlap between methods (Jaccard)") -> go.Figure:
    """Pairwise Jaccard overlap of the methods' selected rows."""
    return overlap_heatmap(jaccard_matrix(selections), title=title)
