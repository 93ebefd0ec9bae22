"""Clusters: the UMAP map, choosing k with silhouette and elbow curves, what each cluster holds."""
from __future__ import annotations

import numpy as np
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.spine.errors import SelectionError
from selection_core.viz.figures import cluster_bars, cluster_map, k_sweep_figure
from selection_core.viz.map_view import MapWindow, selected_rows

ui.require_app_frame()
st.title("Clusters")
store = ui.require_ready_run(first_view=True)
if store is None:
    st.stop()

token = ui.run_token(store)
run_dir = str(store.root)
table, recommended, knee = ui.load_sweep(run_dir, token)
swept = [int(k) for k in table["k"]]

# ----------------------------------------------------------------------------- choosing k
map_col, k_col = st.columns([3, 2], gap="large")
with k_col:
    st.subheader("Choose k")
    current = ui.current_k(store, token)
    options = sorted(set(swept) | {current})
    # The slider's state is set from the chosen k on every run, never passed as `value=`: a
    # changed `value` would make a new widget and drop the user's next move (every other
    # change of k was lost that way). Its callback keeps the choice in `k`, which outlives
    # the widget when another page is shown.
    st.session_state.k_slider = current
    k = st.select_slider("Number of clusters k", options=options, key="k_slider",
                         on_change=lambda: st.session_state.update(k=st.session_state.k_slider),
                         help="Every swept k is precomputed, so changing it is instant.")
    if auth.is_operator():  # clustering at a new k adds to the run: operators only
        with st.expander("Try a k that was not swept"):
            # 2 ≤ k ≤ n − 1: where a silhouette exists (the page's need, not the config's)
            custom = st.number_input("k", min_value=2,
                                     max_value=len(ui.load_pool(run_dir, token)) - 1,
                                     value=k, step=1)
            if st.button("Cluster at this k"):
                k = int(custom)
    if k != current:  # chosen by the user: kept (otherwise k follows the recommendation)
        st.session_state.k = k
    knee_text = f"**k={knee}**" if knee else "none (the curve has no clear elbow)"
    so_far = "" if ui.is_ready(store) else " (so far: the remaining k are being swept)"
    st.caption(f"Recommended (silhouette optimum): **k={recommended}**{so_far} · knee of the "
               f"inertia curve: {knee_text} · showing **k={k}**")
    st.plotly_chart(k_sweep_figure(table, recommended, knee, title=None, stacked=True),
                    key="sweep_chart")

try:
    view = ui.run_view(store)
except SelectionError as exc:
    ui.show_error(exc)
    st.stop()
pool, labels, quality = view.pool, view.labels, view.quality
coords, map_kind = ui.load_coords(run_dir, token)
made = ui.selections(store)
flagged = ui.current_flags(store)  # None until the Clean page (or `clean`) has run

# ----------------------------------------------------------------------------- the map
# A large pool: the browser draws at most MAP_POINTS rows of the current window over the density
# of all of them; zooming in (server-side, to a box or lasso) narrows the window until every
# row in it is drawn. Selections are resolved on every row's coordinates (`selected_rows`).
windows = st.session_state.setdefault("map_window", {})
window = windows.get(run_dir)
with map_col:
    colour_options = ["cluster", "source", "quality"] + (["selected"] if made else []) + \
        (["flagged"] if flagged is not None else [])
    colour = st.segmented_control("Colour by", colour_options, default="cluster",
                                  key="colour_by") or "cluster"
    points = ui.load_map_points(run_dir, token, window)
    rows, held = points.rows, points.held
    frame = points.frame.assign(cluster=labels[rows])  # a new frame: the cached one stays as is
    if colour == "selected":
        chosen = st.selectbox("Selection", list(made), index=len(made) - 1)
        flags = np.zeros(len(pool), dtype=bool)
        flags[made[chosen].rows] = True
        frame["selected"] = flags[rows]
    if colour == "flagged" and flagged is not None:  # issue 26: what a selection leaves out
        frame["flagged"] = (flagged["duplicate"] | flagged["contaminated"]).to_numpy()[rows]
    sampled = held > len(rows)
    figure = cluster_map(frame, colour, title=None, height=600, hover=points.hover,
                         density=ui.load_density(run_dir, token, window) if sampled else None)
    figure.update_layout(uirevision=str(window))  # the browser keeps its own zoom across k
    event = st.plotly_chart(figure, key="cluster_map", on_select="rerun",
                            selection_mode=("lasso", "box", "points"))
    placement = "UMAP map" if map_kind == "umap" else \
        "Quick map (PCA of the embeddings; the UMAP map replaces it when ready)"
    legend = any(getattr(trace, "showlegend", None) is not False and trace.type == "scattergl"
                 for trace in figure.data)
    shown = (f" · showing a random {len(rows):,} of the {held:,} rows in view over their density "
             "(grey); zoom in to a box to see every row" if sampled else "")
    st.caption(f"{placement} · {len(pool):,} prompts · k={k}: {labels.max() + 1} clusters{shown}"
               " · drag a lasso or a box to read the chosen prompts"
               + ("; click a legend entry to hide a group." if legend else "."))

lassoed = selected_rows(coords, event, window)
with map_col:
    zoom_in, zoom_out = st.columns(2)
    if len(lassoed) and zoom_in.button("Zoom to the chosen area", icon=":material/zoom_in:"):
        windows[run_dir] = MapWindow.around(coords[lassoed])
        st.rerun()
    if window is not None and zoom_out.button("Show the whole map", icon=":material/zoom_out:"):
        windows.pop(run_dir, None)
        st.rerun()
if len(lassoed):
    st.subheader(f"{len(lassoed):,} rows chosen on the map")
    chosen_rows = pool.iloc[lassoed].assign(cluster=labels[lassoed], quality=quality[lassoed])
    columns = ["id", "cluster", "source", "quality", "prompt", "response"]
    ui.paged_table(chosen_rows[columns], key="map_rows", height=260)
    st.download_button(f"Download these {len(lassoed):,} rows (JSONL)",
                       lambda: ui.export_bytes(chosen_rows[columns], "jsonl"),
                       file_name=f"map-selection-{len(lassoed)}.jsonl",
                       mime="application/jsonl", on_click="ignore")

# ----------------------------------------------------------------------------- cluster table
st.subheader(f"The {labels.max() + 1} clusters")
overview = ui.load_overview(run_dir, token, k)
if flagged is not None:  # rows the clean result flags, per cluster
    for column, title in (("duplicate", "duplicates"), ("contaminated", "contaminated")):
        per_cluster = np.bincount(labels, weights=flagged[column].to_numpy(),
                                  minlength=int(labels.max()) + 1).astype(int)
        overview = overview.assign(**{title: per_cluster[overview["cluster"].to_numpy()]})
table_col, bars_col = st.columns([3, 2], gap="large")
with table_col:
    st.dataframe(overview, hide_index=True, height=360, column_config={
        "share": st.column_config.ProgressColumn("share", format="percent", min_value=0,
                                                 max_value=float(overview["share"].max())),
        "mean quality": st.column_config.NumberColumn(format="%.2f"),
        "terms": st.column_config.TextColumn(width="medium"),
        "sample prompts": st.column_config.TextColumn(width="large")})
with bars_col:
    st.plotly_chart(cluster_bars(labels, quality, title="Cluster sizes (colour: mean quality)"),
                    key="cluster_bars")

names = {int(r.cluster): f"cluster {r.cluster} — {r.size:,} rows — {r.terms}"
         for r in overview.itertuples()}
picked = st.selectbox("Inspect a cluster", list(names), format_func=names.get, key="inspect")
inside = np.flatnonzero(labels == picked)
members = pool.iloc[inside].assign(quality=quality[inside]).sort_values("quality",
                                                                         ascending=False)
ui.paged_table(members[["id", "source", "quality", "prompt", "response"]], key="members")
st.download_button(f"Download cluster {picked} (CSV)", lambda: ui.export_bytes(members, "csv"),
                   file_name=f"cluster-{picked}-k{k}.csv", mime="text/csv", on_click="ignore")
