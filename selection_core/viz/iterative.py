"""Figures for iterative kMQ: how per-cluster scores, weights and draws move across rounds.

Pure functions from the long per-(round, cluster) table of `iterate.load_history` (columns round,
cluster, weight, n_selected, n_scored, mean_score, update, mean_quality, next_weight,
weight_entropy) to plotly Figures, in the style of `viz.figures`; each cluster keeps its map colour.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..iterative.rounds import weight_entropy
from .figures import apply_layout, color_for

SCORE_LABELS = {"mean_score": "mean S (gold − generation)",
                "mean_quality": "mean normalised quality of the generations"}


def _rounds_axis(fig: go.Figure, rounds: Sequence[int]) -> None:
    fig.update_xaxes(title_text="round", tickmode="array", tickvals=list(rounds),
                     ticktext=[str(r) for r in rounds])


def cluster_trends(history: pd.DataFrame, clusters: Sequence[int] | None = None,
                   value: str = "mean_score", title: str | None = None) -> go.Figure:
    """One line per chosen cluster of `value` across rounds; gaps where a cluster was not
    scored. S > 0 means the gold answers still beat the model's own on that cluster."""
    chosen = sorted(history["cluster"].unique()) if clusters is None else list(clusters)
    fig = go.Figure()
    for cluster in chosen:
        part = history[history["cluster"] == cluster].sort_values("round")
        fig.add_trace(go.Scatter(
            x=part["round"], y=part[value], mode="lines+markers", name=f"cluster {cluster}",
            line=dict(color=color_for(int(cluster)), width=2), customdata=part["n_scored"],
            hovertemplate=f"cluster {cluster}, round %{{x}}: %{{y:.3f}} "
                          "(%{customdata} scored)<extra></extra>"))
    if value == "mean_score":
        fig.add_hline(y=0, line=dict(color="#888", dash="dot"))
    _rounds_axis(fig, sorted(history["round"].unique()))
    fig.update_yaxes(title_text=SCORE_LABELS.get(value, value))
    return apply_layout(fig, title or "Per-cluster score across rounds", height=420)


def round_heatmap(history: pd.DataFrame, value: str = "mean_score",
                  title: str | None = None) -> go.Figure:
    """Cluster × round heatmap of `value`, annotated; blank cells were not scored."""
    grid = history.pivot(index="cluster", columns="round", values=value).sort_index()
    z = grid.to_numpy(dtype=float)
    finite = z[np.isfinite(z)]
    limit = float(np.abs(finite).max()) if len(finite) else 1.0
    diverging = value == "mean_score"
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"round {r}" for r in grid.columns], y=[f"cluster {c}" for c in grid.index],
        colorscale="RdBu_r" if diverging else "Viridis",
        zmin=-limit if diverging else None, zmax=limit if diverging else None,
        text=np.where(np.isfinite(z), np.round(z, 2).astype(str), ""), texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="S" if diverging else "value"))))
    fig.update_yaxes(autorange="reversed")
    return apply_layout(fig, title or f"{SCORE_LABELS.get(value, value)} by cluster and round",
                   height=max(320, 40 + 28 * len(grid)))


def weight_evolution(history: pd.DataFrame, title: str | None = "Cluster weights") -> go.Figure:
    """Stacked shares of the cluster weights: those that drew each round, then the final ones."""
    rounds = sorted(history["round"].unique())
    last = history[history["round"] == rounds[-1]].set_index("cluster")["next_weight"]
    labels = [f"round {r}" for r in rounds] + ["after"]
    fig = go.Figure()
    for cluster, part in history.groupby("cluster"):
        weights = part.sort_values("round")["weight"].tolist() + [float(last[cluster])]
        fig.add_trace(go.Scatter(
            x=labels, y=weights, name=f"cluster {cluster}", mode="lines", stackgroup="weights",
            line=dict(color=color_for(int(cluster)), width=0.5),
            hovertemplate=f"cluster {cluster}, %{{x}}: weight %{{y:.3f}}<extra></extra>"))
    fig.update_yaxes(title_text="weight (sums to 1)", range=[0, 1])
    fig.update_xaxes(title_text="")
    return apply_layout(fig, title, height=420)


def entropy_trend(history: pd.DataFrame, title: str | None = "Weight entropy") -> go.Figure:
    """The entropy of the cluster weights that drew each round, then of the final ones, against
    log k (uniform): a fall toward 0 means a few clusters are taking the whole budget."""
    rounds = sorted(history["round"].unique())
    k = history["cluster"].nunique()
    by_round = history.groupby("round")["weight"].agg(weight_entropy)
    last = history[history["round"] == rounds[-1]]["next_weight"]
    values = [float(by_round[r]) for r in rounds] + [weight_entropy(last.to_numpy())]
    labels = [f"round {r}" for r in rounds] + ["after"]
    fig = go.Figure(go.Scatter(
        x=labels, y=values, mode="lines+markers", name="entropy", line=dict(color="#1f77b4"),
        customdata=np.exp(values),
        hovertemplate="%{x}: %{y:.3f} nats (as even as %{customdata:.1f} equal clusters)"
                      "<extra></extra>"))
    fig.add_hline(y=float(np.log(k)), line=dict(color="#888", dash="dot"),
                  annotation_text=f"uniform over {k} clusters (log k = {np.log(k):.2f})",
                  annotation_position="bottom right")
    fig.update_yaxes(title_text="entropy of the weights (nats)", range=[0, np.log(k) * 1.08])
    fig.update_xaxes(title_text="")
    return apply_layout(fig, title, height=380)


def items_added(history: pd.DataFrame, title: str | None = "Items added per round") -> go.Figure:
    """Stacked bars: how many new items each cluster contributed in each round."""
    rounds = sorted(history["round"].unique())
    fig = go.Figure()
    for cluster, part in history.groupby("cluster"):
        part = part.set_index("round").reindex(rounds)
        fig.add_trace(go.Bar(x=rounds, y=part["n_selected"], name=f"cluster {cluster}",
                             marker=dict(color=color_for(int(cluster))),
                             hovertemplate=f"cluster {cluster}, round %{{x}}: %{{y}} items"
                                           "<extra></extra>"))
    fig.update_layout(barmode="stack")
    _rounds_axis(fig, rounds)
    fig.update_yaxes(title_text="items added")
    return apply_layout(fig, title, height=420)


def low_quality_bars(summaries: pd.DataFrame, threshold: float,
                      title: str | None = None) -> go.Figure:
    """Per round, the share of scored clusters whose mean normalised quality is below the
    threshold (the paper's Figure 4)."""
    fig = go.Figure(go.Bar(
        x=summaries["round"], y=summaries["low_quality_share"], marker=dict(color="#d62728"),
        text=[f"{v:.0%}" if np.isfinite(v) else "" for v in summaries["low_quality_share"]],
        textposition="outside",
        hovertemplate="round %{x}: %{y:.1%} of scored clusters<extra></extra>"))
    _rounds_axis(fig, summaries["round"].tolist())
    fig.update_yaxes(title_text="share of clusters", tickformat=".0%", range=[0, 1.1])
    return apply_layout(fig, title or f"Clusters with mean quality below {threshold:g}", height=380)
