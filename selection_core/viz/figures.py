"""Figure builders: pure functions from data to a plotly Figure.

The same figure object serves the app (st.plotly_chart), the HTML report and PNG export, and the
tests (which inspect its traces). Maps use WebGL (Scattergl) so tens of thousands of points stay
smooth; every point carries its row id in `customdata[0]` and its row position in `customdata[1]`,
so a lasso selection in the browser maps back to pool rows.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)
PALETTE = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100",
           "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D",
           "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA",
           "#6C4516", "#0D2A63", "#AF0038")  # plotly's Dark24: distinct on white
MUTED = "#c9ccd1"
ACCENT = "#d62728"


def _layout(fig: go.Figure, title: str | None, height: int = 520) -> go.Figure:
    fig.update_layout(template=TEMPLATE, font=FONT, height=height,
                      title=dict(text=title, x=0.01, xanchor="left") if title else None,
                      margin=dict(l=60, r=20, t=60 if title else 20, b=50),
                      legend=dict(itemsizing="constant"))
    return fig


def color_for(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _preview(text: str, width: int = 60, limit: int = 180) -> str:
    """First `limit` characters, HTML-escaped and wrapped for a hover box."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    lines = [text[i:i + width] for i in range(0, len(text), width)] or [""]
    return "<br>".join(html.escape(line) for line in lines)


# --------------------------------------------------------------------------- the cluster map
def cluster_map(frame: pd.DataFrame, color: str, title: str | None = None,
                marker_size: float | None = None, height: int = 620) -> go.Figure:
    """UMAP scatter coloured by `color` (a categorical, boolean or numeric column of `frame`).

    `frame` needs x, y, id and prompt; cluster / source / quality columns are shown on hover when
    present. Categorical colours get one legend entry each (click to hide); numbers get a colour
    bar; a boolean column (e.g. `selected`) greys out the False points and draws True on top.
    """
    required = {"x", "y", "id", "prompt", color}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"cluster_map needs columns {sorted(missing)}")
    n = len(frame)
    size = marker_size or (6 if n < 2_000 else 4 if n < 20_000 else 2.5)
    hover_cols = [c for c in ("cluster", "source", "quality") if c in frame.columns and c != color]
    positions = np.arange(n)
    fig = go.Figure()

    def trace(mask: np.ndarray, name: str, marker: dict, showlegend: bool = True) -> go.Scattergl:
        part = frame.loc[mask]
        extra = "".join(f"<br>{c}: %{{customdata[{i + 3}]}}" for i, c in enumerate(hover_cols))
        custom = np.column_stack([part["id"].astype(str), positions[mask],
                                  [_preview(p) for p in part["prompt"]],
                                  *[_hover_values(part[c]) for c in hover_cols]])
        return go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=name, marker=marker,
            customdata=custom, showlegend=showlegend,
            hovertemplate=f"<b>%{{customdata[0]}}</b>{extra}<br>%{{customdata[2]}}<extra>{name}"
                          "</extra>")

    values = frame[color]
    if pd.api.types.is_bool_dtype(values):
        flags = values.to_numpy(dtype=bool)
        fig.add_trace(trace(~flags, f"not {color}", dict(size=size, color=MUTED, opacity=0.5)))
        fig.add_trace(trace(flags, color, dict(size=size + 1, color=ACCENT, opacity=0.9)))
    elif pd.api.types.is_numeric_dtype(values) and not _is_label_column(color, values):
        numbers = values.to_numpy(dtype=float)
        fig.add_trace(trace(np.ones(n, dtype=bool), color, dict(
            size=size, color=numbers, colorscale="Viridis", opacity=0.85, showscale=True,
            colorbar=dict(title=color, thickness=14)), showlegend=False))
    else:
        categories = _sorted_categories(values)
        for i, category in enumerate(categories):
            mask = (values == category).to_numpy()
            fig.add_trace(trace(mask, f"{color} {category}" if color == "cluster" else
                                str(category), dict(size=size, color=color_for(i), opacity=0.8)))
        if len(categories) > len(PALETTE):  # colours repeat: the legend would mislead
            fig.update_traces(showlegend=False)
        if color == "cluster":  # print each cluster's id at its centre
            centres = frame.groupby(color)[["x", "y"]].median()
            fig.add_trace(go.Scatter(x=centres["x"], y=centres["y"], mode="text",
                                     text=[str(c) for c in centres.index], hoverinfo="skip",
                                     textfont=dict(size=12, color="#1f2933"), showlegend=False,
                                     name="cluster ids"))
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_layout(dragmode="lasso", hoverlabel=dict(align="left"))
    return _layout(fig, title, height)


def _is_label_column(name: str, values: pd.Series) -> bool:
    """Integer columns named like labels (cluster ids) are categories, not quantities."""
    return name in ("cluster", "label", "k") and pd.api.types.is_integer_dtype(values)


def _sorted_categories(values: pd.Series) -> list:
    uniques = pd.unique(values.dropna())
    try:
        return sorted(uniques)
    except TypeError:
        return sorted(uniques, key=str)


def _hover_values(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_float_dtype(column):
        return np.array([f"{v:.3f}" for v in column])
    return column.astype(str).to_numpy()


def selected_row_positions(selection_event: Mapping | None) -> list[int]:
    """Row positions picked by a lasso/box/click in a `cluster_map`, from the browser's event.

    Accepts Streamlit's `on_select` payload (``{"selection": {"points": [...]}}``) or plotly's
    own (``{"points": [...]}``); each point's customdata[1] is its row position.
    """
    if not selection_event:
        return []
    points = selection_event.get("selection", selection_event).get("points", []) or []
    positions = set()
    for point in points:
        custom = point.get("customdata")
        if custom is not None and len(custom) > 1:
            positions.add(int(float(custom[1])))
    return sorted(positions)


# --------------------------------------------------------------------------- choosing k
def k_sweep_figure(table: pd.DataFrame, recommended_k: int | None = None,
                   knee_k: int | None = None, title: str | None = "Choosing k",
                   stacked: bool = False) -> go.Figure:
    """Silhouette (exact on a sample, simplified on all points) and the elbow curve, with the
    recommended k (silhouette optimum) and the inertia knee marked. Side by side, or `stacked`
    for a narrow column."""
    from ..cluster.sweep import wide_k_range

    table = table.sort_values("k")
    rows, cols = (2, 1) if stacked else (1, 2)
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=0.16,
                        subplot_titles=("Silhouette (higher is better)", "Elbow: inertia"))
    at = [(1, 1), (2, 1)] if stacked else [(1, 1), (1, 2)]
    fig.add_trace(go.Scatter(x=table["k"], y=table["silhouette"], mode="lines+markers",
                             name="silhouette (sample)", line=dict(color=PALETTE[0], width=2.5)),
                  *at[0])
    fig.add_trace(go.Scatter(x=table["k"], y=table["simplified_silhouette"], mode="lines+markers",
                             name="simplified silhouette (all)",
                             line=dict(color=PALETTE[1], width=2, dash="dash")), *at[0])
    fig.add_trace(go.Scatter(x=table["k"], y=table["inertia"], mode="lines+markers",
                             name="inertia", line=dict(color=PALETTE[2], width=2.5)), *at[1])
    log_x = wide_k_range(table["k"])
    ticks = table["k"].tolist()
    if log_x and len(ticks) > 8:  # keep the labels readable: powers of two and the ends
        ticks = sorted({ticks[0], ticks[-1], *[k for k in ticks if k & (k - 1) == 0]})
    for i, (row, col) in enumerate(at):
        fig.update_xaxes(title_text=None if stacked and i == 0 else "k",
                         type="log" if log_x else "linear", tickvals=ticks if log_x else None,
                         row=row, col=col)
        if recommended_k is not None:
            fig.add_vline(x=recommended_k, line=dict(color=ACCENT, dash="dot"), row=row, col=col)
    if recommended_k is not None:
        fig.add_annotation(x=np.log10(recommended_k) if log_x else recommended_k, y=1.0,
                           yref="y domain", text=f"recommended k={recommended_k}",
                           showarrow=False, xanchor="left", font=dict(color=ACCENT), row=1, col=1)
    if knee_k is not None:
        knee = table.loc[table["k"] == knee_k]
        fig.add_trace(go.Scatter(x=knee["k"], y=knee["inertia"], mode="markers+text",
                                 name=f"knee k={knee_k}", text=[f"knee k={knee_k}"],
                                 textposition="top right",
                                 marker=dict(size=14, symbol="diamond", color=ACCENT)), *at[1])
    fig.update_yaxes(title_text="silhouette", row=1, col=1)
    fig.update_yaxes(title_text="inertia", row=at[1][0], col=at[1][1])
    fig = _layout(fig, title, height=620 if stacked else 420)
    fig.update_layout(legend=dict(orientation="h", y=-0.12 if stacked else -0.2))
    return fig


# --------------------------------------------------------------------------- clusters
def cluster_bars(labels: np.ndarray, quality: np.ndarray | None = None,
                 title: str | None = "Cluster sizes") -> go.Figure:
    """Size of each cluster, bars coloured by the cluster's mean quality when given."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    marker: dict = dict(color=PALETTE[0])
    hover = "cluster %{x}<br>%{y} rows<extra></extra>"
    custom = None
    if quality is not None:
        sums = np.bincount(labels, weights=np.asarray(quality, dtype=float), minlength=k)
        means = np.divide(sums, sizes, out=np.full(k, np.nan), where=sizes > 0)[order]
        marker = dict(color=means, colorscale="Viridis", showscale=True,
                      colorbar=dict(title="mean quality", thickness=14))
        custom = means
        hover = "cluster %{x}<br>%{y} rows<br>mean quality %{customdata:.3f}<extra></extra>"
    fig = go.Figure(go.Bar(x=[str(j) for j in order], y=sizes[order], marker=marker,
                           customdata=custom, hovertemplate=hover))
    fig.update_xaxes(title_text="cluster (largest first)", type="category")
    fig.update_yaxes(title_text="rows")
    return _layout(fig, title, height=380)


def selection_composition(groups: Sequence, selections: Mapping[str, np.ndarray],
                          by: str = "cluster", title: str | None = None) -> go.Figure:
    """Share of each group (cluster or source) in the pool and in each named selection.

    `groups` is the pool's group label per row; each selection is an array of row positions.
    Bars side by side make over- and under-sampled groups obvious.
    """
    groups = pd.Series(np.asarray(groups))
    categories = _sorted_categories(groups)
    pool_share = groups.value_counts(normalize=True).reindex(categories, fill_value=0.0)
    fig = go.Figure(go.Bar(x=[str(c) for c in categories], y=pool_share.to_numpy(), name="pool",
                           marker=dict(color=MUTED),
                           hovertemplate="%{x}: %{y:.1%} of the pool<extra></extra>"))
    for i, (name, rows) in enumerate(selections.items()):
        share = groups.iloc[np.asarray(rows, dtype=int)].value_counts(normalize=True).reindex(
            categories, fill_value=0.0)
        fig.add_trace(go.Bar(x=[str(c) for c in categories], y=share.to_numpy(), name=name,
                             marker=dict(color=color_for(i)),
                             hovertemplate=f"%{{x}}: %{{y:.1%}} of {html.escape(name)}"
                                           "<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=by, type="category")
    fig.update_yaxes(title_text="share of rows", tickformat=".0%")
    return _layout(fig, title or f"Composition by {by}: selection vs pool", height=400)


# --------------------------------------------------------------------------- comparing selections
def overlap_heatmap(matrix: pd.DataFrame, title: str | None = "Overlap (Jaccard)") -> go.Figure:
    """Pairwise Jaccard overlap of selections, annotated."""
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=list(matrix.columns), y=list(matrix.index),
                               zmin=0, zmax=1, colorscale="Blues",
                               text=np.vectorize(lambda v: f"{v:.2f}")(matrix.to_numpy()),
                               texttemplate="%{text}", hovertemplate="%{y} ∩ %{x}: %{z:.3f}"
                                                                     "<extra></extra>",
                               colorbar=dict(title="Jaccard", thickness=14)))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=360)


def quality_distribution(quality: np.ndarray, selections: Mapping[str, np.ndarray],
                         title: str | None = "Quality of the selected rows") -> go.Figure:
    """Box plots of the quality scores: the whole pool, then each selection."""
    quality = np.asarray(quality, dtype=float)
    fig = go.Figure(go.Box(y=quality, name="pool", marker=dict(color=MUTED), boxmean=True))
    for i, (name, rows) in enumerate(selections.items()):
        fig.add_trace(go.Box(y=quality[np.asarray(rows, dtype=int)], name=name, boxmean=True,
                             marker=dict(color=color_for(i))))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title_text="quality score")
    return _layout(fig, title, height=380)


# --------------------------------------------------------------------------- the pool
def source_counts(sources: Sequence, title: str | None = "Rows by source") -> go.Figure:
    counts = pd.Series(np.asarray(sources)).value_counts()
    fig = go.Figure(go.Bar(x=[str(s) for s in counts.index], y=counts.to_numpy(),
                           marker=dict(color=[color_for(i) for i in range(len(counts))]),
                           hovertemplate="%{x}: %{y} rows<extra></extra>"))
    fig.update_xaxes(title_text="source", type="category")
    fig.update_yaxes(title_text="rows")
    return _layout(fig, title, height=340)


def length_histograms(pool: pd.DataFrame, title: str | None = "Lengths (words)") -> go.Figure:
    """Prompt and response lengths in words, one overlaid histogram per source."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("prompt", "response"))
    for i, (source, part) in enumerate(pool.groupby("source", sort=True)):
        for col, field in ((1, "prompt"), (2, "response")):
            words = part[field].str.split().str.len().fillna(0)
            fig.add_trace(go.Histogram(x=words, name=str(source), legendgroup=str(source),
                                       showlegend=col == 1, opacity=0.6, nbinsx=40,
                                       marker=dict(color=color_for(i))), row=1, col=col)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="words")
    fig.update_yaxes(title_text="rows", row=1, col=1)
    return _layout(fig, title, height=340)
