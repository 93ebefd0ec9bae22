"""Figure builders: pure functions from data to a plotly Figure.

The same figure object serves the app (st.plotly_chart), the HTML report and PNG export, and the
tests (which inspect its traces). Maps use WebGL (Scattergl) so tens of thousands of points stay
smooth; every point carries its pool row position as `customdata` (and its id in the hover
text), so a click maps back to pool rows; box and lasso selections are resolved on every row's
coordinates by `viz.map_view.selected_rows`.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import NamedTuple

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
# Readability limits. Figures are laid out for FULL_WIDTH px (the page's full width, the PNG
# export width); a label is cut when CHAR_WIDTH × font size × its length would not fit its slot.
FULL_WIDTH = 1200
CHAR_WIDTH = 0.6  # average glyph width as a share of the font size (Inter / Helvetica)
MAX_BARS = 120  # bars in one chart; more cannot be told apart
MAX_GROUPS = 20  # groups (clusters, sources) in a composition chart before the rest is "other"
MAP_LABELS = 40  # cluster ids printed on the map: the largest clusters only
SHORT_NAME = 28  # characters of a selection name in legends and axes (the full name on hover)


def apply_layout(fig: go.Figure, title: str | None, height: int = 520) -> go.Figure:
    """The project's one figure style (template, font, margins, title): every builder ends here."""
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


def fit_label(text: str, width_px: float, font_size: float = FONT["size"]) -> str:
    """`text` cut (with an ellipsis) to what fits in `width_px` at `font_size`."""
    limit = max(1, int(width_px / (CHAR_WIDTH * font_size)))
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def short_names(names: Sequence[str], limit: int = SHORT_NAME) -> tuple[list[str], str]:
    """Distinct short labels for selection names, and what they all share.

    Names such as "kmq · k=64 · 300 rows · seed 0" are split on " · "; the parts every name shares
    are dropped from the labels (and returned, for a subtitle), the rest is cut to `limit`
    characters. Labels stay distinct (a figure axis would merge equal ones).
    """
    parts = [str(name).split(" · ") for name in names]
    shared = [p for p in parts[0] if all(p in other for other in parts[1:])] \
        if len(parts) > 1 else []
    labels: list[str] = []
    for name, pieces in zip(names, parts):
        label = " · ".join(p for p in pieces if p not in shared) or str(name)
        label = fit_label(label, limit * CHAR_WIDTH * FONT["size"])
        candidate, copy = label, 2
        while candidate in labels:
            suffix = f" ({copy})"
            candidate = fit_label(label, (limit - len(suffix)) * CHAR_WIDTH * FONT["size"]) + suffix
            copy += 1
        labels.append(candidate)
    return labels, " · ".join(shared)


def _plot_width(fig: go.Figure, width: int = FULL_WIDTH) -> float:
    margin = fig.layout.margin
    return width - (margin.l or 0) - (margin.r or 0)


# --------------------------------------------------------------------------- the cluster map
class MapHover(NamedTuple):
    """A map's hover texts without the cluster line, per point (object arrays: plotly takes them
    without walking them): `title` the bold id, `body` source, quality and a prompt preview.
    None of it changes with k, so a page builds it once per view (`map_hover`)."""

    title: np.ndarray
    body: np.ndarray


HOVER_COLUMNS = ("source", "quality")  # shown on hover when present, besides id and cluster


def map_hover(frame: pd.DataFrame) -> MapHover:
    """The hover texts of `frame`'s points (needs id and prompt; source / quality when there):
    HTML-escaped, the preview 180 characters, 100 from 5,000 points on (hover texts are the
    one part of a map sent as JSON strings)."""
    preview = 180 if len(frame) < 5_000 else 100
    title = np.array([f"<b>{html.escape(str(row_id))}</b>" for row_id in frame["id"]],
                     dtype=object)
    body = np.full(len(frame), "", dtype=object)
    for column in (c for c in HOVER_COLUMNS if c in frame.columns):
        body = body + f"<br>{column}: " + _hover_values(frame[column]).astype(object)
    body = body + "<br>" + np.array([_preview(p, limit=preview) for p in frame["prompt"]],
                                    dtype=object)
    return MapHover(title, body)


def cluster_map(frame: pd.DataFrame, color: str, title: str | None = None,
                marker_size: float | None = None, height: int = 620,
                density: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                hover: MapHover | None = None) -> go.Figure:
    """UMAP scatter coloured by `color` (a categorical, boolean or numeric column of `frame`).

    `frame` needs x, y, id and prompt; cluster / source / quality columns are shown on hover when
    present; an optional `row` column holds each point's pool row position (default: its
    position in `frame`), carried as the point's `customdata`, so a click maps back to the pool.
    Categorical colours get one legend entry each (click to hide); numbers get a colour bar; a
    boolean column (e.g. `selected`) greys out the False points and draws True on top.
    `density` (`map_view.density_grid`: x centres, y centres, counts) is drawn underneath: where
    a large pool's rows lie when only a subset of them is drawn. `hover` is `map_hover(frame)`
    when the caller keeps it across k (only the cluster line is added here).

    Every number array (coordinates, row positions, colours, the density grid) is a NumPy array
    of the narrowest fitting type, which plotly serialises as a base64 typed array, not a JSON
    list: a 40,000-point map is a few MB, most of it the hover texts.
    """
    required = {"x", "y", "id", "prompt", color}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"cluster_map needs columns {sorted(missing)}")
    n = len(frame)
    size = marker_size or (6 if n < 2_000 else 4 if n < 20_000 else 2.5)
    rows = frame["row"].to_numpy(dtype=np.int32) if "row" in frame.columns else \
        np.arange(n, dtype=np.int32)
    xs, ys = frame["x"].to_numpy(dtype=np.float32), frame["y"].to_numpy(dtype=np.float32)
    hover = hover if hover is not None else map_hover(frame)
    cluster_line = "<br>cluster: " + _hover_values(frame["cluster"]).astype(object) \
        if "cluster" in frame.columns else ""
    hover = hover.title + cluster_line + hover.body
    fig = go.Figure()
    if density is not None:
        x_centres, y_centres, counts = density
        fig.add_trace(go.Heatmap(x=x_centres, y=y_centres, z=counts, name="density",
                                 colorscale=[[0, "#f1f3f5"], [1, "#7b8794"]], showscale=False,
                                 hovertemplate="%{z:.0f} rows here<extra></extra>",
                                 zsmooth=False))

    def trace(mask: np.ndarray, name: str, marker: dict, showlegend: bool = True) -> go.Scattergl:
        return go.Scattergl(
            x=xs[mask], y=ys[mask], mode="markers", name=name, marker=marker,
            customdata=rows[mask], hovertext=hover[mask], showlegend=showlegend,
            hovertemplate=f"%{{hovertext}}<extra>{html.escape(name) if showlegend else ''}"
                          "</extra>")

    values = frame[color]
    if pd.api.types.is_bool_dtype(values):
        flags = values.to_numpy(dtype=bool)
        fig.add_trace(trace(~flags, f"not {color}", dict(size=size, color=MUTED, opacity=0.5)))
        fig.add_trace(trace(flags, color, dict(size=size + 1, color=ACCENT, opacity=0.9)))
    elif pd.api.types.is_numeric_dtype(values) and not _is_label_column(color, values):
        fig.add_trace(trace(np.ones(n, dtype=bool), color, dict(
            size=size, color=values.to_numpy(dtype=np.float32), colorscale="Viridis",
            opacity=0.85, showscale=True, colorbar=dict(title=color, thickness=14)),
            showlegend=False))
    else:
        categories = _sorted_categories(values)
        if len(categories) <= len(PALETTE):  # one legend entry per category: click to hide
            for i, category in enumerate(categories):
                mask = (values == category).to_numpy()
                fig.add_trace(trace(mask, f"{color} {category}" if color == "cluster" else
                                    str(category), dict(size=size, color=color_for(i),
                                                        opacity=0.8)))
        else:  # colours repeat, a legend would mislead: one WebGL trace per palette colour
            # (not one trace coloured through a colour scale: the browser maps every point
            # through the scale on each redraw, ~1 s for 40,000 points in a software renderer)
            shade = values.map(pd.Series(np.arange(len(categories)) % len(PALETTE),
                                         index=categories)).to_numpy()
            for i in range(len(PALETTE)):
                fig.add_trace(trace(shade == i, f"{color} colour {i + 1}", dict(
                    size=size, color=PALETTE[i], opacity=0.8), showlegend=False))
        if color == "cluster" and n:  # print the ids of the largest clusters at their centres
            largest = values.value_counts().index[:MAP_LABELS]
            centres = frame[values.isin(largest)].groupby(color)[["x", "y"]].median()
            fig.add_trace(go.Scatter(x=centres["x"].to_numpy(dtype=np.float32),
                                     y=centres["y"].to_numpy(dtype=np.float32), mode="text",
                                     text=[str(c) for c in centres.index], hoverinfo="skip",
                                     textfont=dict(size=12, color="#1f2933"), showlegend=False,
                                     name="cluster ids"))
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_layout(dragmode="lasso", hoverlabel=dict(align="left"))
    return apply_layout(fig, title, height)


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
    fig = apply_layout(fig, title, height=620 if stacked else 420)
    fig.update_layout(legend=dict(orientation="h", y=-0.12 if stacked else -0.2))
    return fig


# --------------------------------------------------------------------------- clusters
def cluster_bars(labels: np.ndarray, quality: np.ndarray | None = None,
                 title: str | None = "Cluster sizes") -> go.Figure:
    """Size of each cluster, largest first, coloured by the cluster's mean quality when given.

    Past MAX_BARS clusters single bars cannot be told apart: the figure becomes the distribution
    of cluster sizes (how many clusters have each size), coloured the same way.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=k)
    means = None
    if quality is not None:
        sums = np.bincount(labels, weights=np.asarray(quality, dtype=float), minlength=k)
        means = np.divide(sums, sizes, out=np.full(k, np.nan), where=sizes > 0)
    if k > MAX_BARS:
        return _cluster_size_histogram(sizes, means, title)
    order = np.argsort(-sizes, kind="stable")
    marker: dict = dict(color=PALETTE[0])
    hover = "cluster %{x}<br>%{y} rows<extra></extra>"
    if means is not None:
        marker = dict(color=means[order], colorscale="Viridis", showscale=True,
                      colorbar=dict(title="mean quality", thickness=14))
        hover = "cluster %{x}<br>%{y} rows<br>mean quality %{customdata:.3f}<extra></extra>"
    fig = go.Figure(go.Bar(x=[str(j) for j in order], y=sizes[order], marker=marker,
                           customdata=None if means is None else means[order],
                           hovertemplate=hover))
    fig.update_xaxes(title_text="cluster (largest first)", type="category")
    fig.update_yaxes(title_text="rows")
    fig = apply_layout(fig, title, height=380)
    slot = _plot_width(fig) / max(k, 1)
    if len(str(k - 1)) * CHAR_WIDTH * FONT["size"] > slot:  # ids would overlap: hover gives them
        fig.update_xaxes(showticklabels=False, title_text=f"{k} clusters, largest first "
                                                          "(hover for the id)")
    return fig


def _cluster_size_histogram(sizes: np.ndarray, means: np.ndarray | None,
                            title: str | None) -> go.Figure:
    edges = np.unique(np.histogram_bin_edges(sizes, bins=min(40, MAX_BARS)).round())
    edges = edges if len(edges) > 1 else np.array([sizes.min(), sizes.min() + 1.0])
    bins = np.clip(np.digitize(sizes, edges[1:-1]), 0, len(edges) - 2)
    counts = np.bincount(bins, minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    marker: dict = dict(color=PALETTE[0])
    customdata = np.column_stack([edges[:-1], edges[1:]])
    hover = "%{y} clusters of %{customdata[0]:.0f}–%{customdata[1]:.0f} rows<extra></extra>"
    if means is not None:
        bin_means = np.array([np.nanmean(means[bins == b]) if counts[b] else np.nan
                              for b in range(len(counts))])
        marker = dict(color=bin_means, colorscale="Viridis", showscale=True,
                      colorbar=dict(title="mean quality", thickness=14))
        customdata = np.column_stack([customdata, bin_means])
        hover = hover.replace("<extra>", "<br>mean quality %{customdata[2]:.3f}<extra>")
    fig = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges), marker=marker,
                           customdata=customdata, hovertemplate=hover))
    fig.update_xaxes(title_text=f"cluster size (rows) — {len(sizes)} clusters")
    fig.update_yaxes(title_text="clusters")
    return apply_layout(fig, title, height=380)


def selection_composition(groups: Sequence, selections: Mapping[str, np.ndarray],
                          by: str = "cluster", title: str | None = None,
                          max_groups: int | None = None) -> go.Figure:
    """Share of each group (cluster or source) in the pool and in each named selection.

    `groups` is the pool's group label per row; each selection is an array of row positions.
    Bars side by side make over- and under-sampled groups obvious. Readable at any k: the groups
    with the largest share (in the pool or in any selection) are shown, largest pool share first,
    at most `max_groups` of them (by default as many as MAX_BARS bars allow, ≤ MAX_GROUPS); the
    rest are summed into "other", drawn in a narrow panel of its own so that its (large) share
    does not flatten the rest. Selections get short names (the full name on hover).
    """
    groups = pd.Series(np.asarray(groups)).astype(str)
    names = list(selections)
    shares = [groups.value_counts(normalize=True)] + [
        groups.iloc[np.asarray(rows, dtype=int)].value_counts(normalize=True)
        for rows in selections.values()]
    table = pd.concat(shares, axis=1, keys=range(len(shares))).fillna(0.0)  # 0 = the pool
    limit = max_groups or max(4, min(MAX_GROUPS, MAX_BARS // table.shape[1] - 1))
    ranked = table.max(axis=1).sort_values(ascending=False, kind="stable").index
    shown = table.loc[ranked if len(ranked) <= limit + 1 else ranked[:limit]]
    shown = shown.sort_values(0, ascending=False, kind="stable")
    rest = table.drop(index=shown.index).sum()
    n_rest = len(table) - len(shown)
    fig = make_subplots(rows=1, cols=2 if n_rest else 1, horizontal_spacing=0.04,
                        column_widths=[0.9, 0.1] if n_rest else None)
    labels, shared = short_names(names)
    columns = [("pool", "the pool", MUTED)] + [
        (label, name, color_for(i)) for i, (name, label) in enumerate(zip(names, labels))]
    other = f"the other {n_rest} {by}s"
    for column, (label, full, colour) in enumerate(columns):
        vs_pool = "" if column == 0 else " (pool: %{customdata:.1%})"
        fig.add_trace(go.Bar(x=list(shown.index), y=shown[column].to_numpy(), name=label,
                             legendgroup=label, marker=dict(color=colour),
                             customdata=shown[0].to_numpy(),
                             hovertemplate=f"%{{x}}: %{{y:.1%}} of {html.escape(str(full))}"
                                           f"{vs_pool}<extra></extra>"), row=1, col=1)
        if n_rest:
            fig.add_trace(go.Bar(x=["other"], y=[rest[column]], name=label, legendgroup=label,
                                 showlegend=False, marker=dict(color=colour),
                                 customdata=[rest[0]],
                                 hovertemplate=f"{other}: %{{y:.1%}} of "
                                               f"{html.escape(str(full))}{vs_pool}<extra></extra>"),
                          row=1, col=2)
    fig.update_layout(barmode="group", legend=dict(orientation="h", x=0, y=-0.2,
                                                   yanchor="top"))
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text="share of rows", row=1, col=1)
    fig = apply_layout(fig, title or f"Composition by {by}: selections vs the pool", height=460)
    slot = _plot_width(fig) * (fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0]) \
        / max(len(shown), 1)
    fig.update_xaxes(type="category", tickangle=0, tickvals=list(shown.index),
                     ticktext=[fit_label(str(g), slot) for g in shown.index], row=1, col=1,
                     title_text=by if not n_rest else
                     f"{by} — the {len(shown)} with the largest share")
    if n_rest:
        fig.update_xaxes(type="category", tickangle=0, title_text=f"+{n_rest} more",
                         row=1, col=2)
    return _subtitle(fig, shared, top=90)


def _subtitle(fig: go.Figure, shared: str, top: int) -> go.Figure:
    """What every compared selection shares, under the title (their labels leave it out)."""
    if shared and fig.layout.title.text:
        fig.update_layout(title=dict(subtitle=dict(text=f"all selections: {html.escape(shared)}")))
    if fig.layout.title.text:
        fig.update_layout(margin=dict(t=top))
    return fig


# --------------------------------------------------------------------------- comparing selections
def overlap_heatmap(matrix: pd.DataFrame, title: str | None = "Overlap (Jaccard)") -> go.Figure:
    """Pairwise Jaccard overlap of selections, annotated; short names on the axes (full names on
    hover), margins sized to the labels so none is cut off."""
    full = [str(name) for name in matrix.columns]
    labels, shared = short_names(full)
    values = matrix.to_numpy()
    names = np.array([[f"{html.escape(a)} ∩ {html.escape(b)}" for b in full] for a in full])
    fig = go.Figure(go.Heatmap(z=values, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues",
                               text=np.vectorize(lambda v: f"{v:.2f}")(values),
                               texttemplate="%{text}", customdata=names,
                               hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title="Jaccard", thickness=14)))
    label_px = max(len(label) for label in labels) * CHAR_WIDTH * FONT["size"] if labels else 0
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(automargin=True, tickangle=-30 if len(labels) > 2 else 0)
    fig = apply_layout(fig, title, height=int(200 + label_px / 2 + 48 * len(labels)))
    fig.update_layout(margin=dict(l=int(label_px) + 20, b=int(label_px / 2) + 40))
    return _subtitle(fig, shared, top=90)


def quality_distribution(quality: np.ndarray, selections: Mapping[str, np.ndarray],
                         title: str | None = "Quality of the selected rows") -> go.Figure:
    """Box plots of the quality scores: the whole pool, then each selection (short names on the
    axis, the full name on hover)."""
    quality = np.asarray(quality, dtype=float)
    fig = go.Figure(go.Box(y=quality, name="pool", marker=dict(color=MUTED), boxmean=True))
    labels, shared = short_names(list(selections))
    for i, ((name, rows), label) in enumerate(zip(selections.items(), labels)):
        fig.add_trace(go.Box(y=quality[np.asarray(rows, dtype=int)], name=label, boxmean=True,
                             marker=dict(color=color_for(i)),
                             hovertemplate=f"{html.escape(str(name))}<br>%{{y:.3f}}"
                                           "<extra></extra>"))
    fig.update_layout(showlegend=False)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(title_text="quality score")
    return _subtitle(apply_layout(fig, title, height=380), shared, top=90)


# --------------------------------------------------------------------------- the pool
def source_counts(sources: Sequence, title: str | None = "Rows by source") -> go.Figure:
    counts = pd.Series(np.asarray(sources)).value_counts()
    fig = go.Figure(go.Bar(x=[str(s) for s in counts.index], y=counts.to_numpy(),
                           marker=dict(color=[color_for(i) for i in range(len(counts))]),
                           hovertemplate="%{x}: %{y} rows<extra></extra>"))
    fig.update_xaxes(title_text="source", type="category")
    fig.update_yaxes(title_text="rows")
    return apply_layout(fig, title, height=340)


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
    return apply_layout(fig, title, height=340)
