"""Report: one click to a self-contained HTML report of the current run, and PNG figures."""
from __future__ import annotations

import streamlit as st

from pages import _ui as ui
from selection_core.spine.config import KMeansConfig, ScorerConfig
from selection_core.spine.errors import SelectionError
from selection_core.frontends.bundle import bundled_selections
from selection_core.frontends.report import figures_png_zip, run_report, stored_selections

ui.require_app_frame()
st.title("Report")
store = ui.require_ready_run()
if store is None:
    st.stop()
view = ui.run_view(store)
# the selections made on the Selection page, and those `select` saved in the run (the CLI's
# `report` command sees the latter: the same report without a browser)
made = {**bundled_selections(store, view.pool),  # the demo pool's bundled iterative runs
        **{s.name: s for s in stored_selections(store, view.pool).values()},
        **ui.selections(store)}

st.markdown(
    "A single HTML file with the pool, the choice of k, the cluster map and table, and every "
    "selection compared — interactive figures (plotly.js inlined, works offline), tables and the "
    "exact configuration and package versions. Share it as it is.")
names = st.multiselect("Selections to include", list(made), default=list(made))
if not made:
    st.caption("No selection yet — the report will cover the pool and the clusters. Run "
               "selections on the Selection page (or with `python -m selection_core select`) to "
               "compare them here.")
title = st.text_input("Title", value=f"Data selection report — {store.root.name}")
st.caption(f"The same report without a browser (e.g. on a GPU server): `python -m "
           f"selection_core report --run {store.root} --k {view.k} --out report.html --png` "
           "(selections saved by `select`).")

if st.button("Build the report", type="primary"):
    with st.spinner("Building the report…"):
        try:
            html, figures = run_report(store, KMeansConfig(k=view.k), ScorerConfig(),
                                       [made[n] for n in names], title=title)
        except SelectionError as exc:
            ui.show_error(exc)
            st.stop()
    st.session_state.report = {"run": str(store.root), "html": html, "figures": figures,
                               "k": view.k}

report = st.session_state.get("report")
if report and report["run"] == str(store.root):
    size = len(report["html"]) / 1e6
    st.success(f"Report ready (k={report['k']}, {len(report['figures'])} figures, "
               f"{size:.1f} MB).")
    st.download_button("Download the HTML report", report["html"].encode("utf-8"),
                       file_name=f"{ui.file_stem(title)}.html", mime="text/html",
                       type="primary", on_click="ignore")
    st.markdown("**PNG figures** — rendered by kaleido through the local Chrome/Chromium.")
    if st.button("Render PNG figures"):
        with st.spinner(f"Rendering {len(report['figures'])} figures…"):
            try:
                st.session_state.report_png = figures_png_zip(report["figures"])
            except SelectionError as exc:
                ui.show_error(exc)
    if st.session_state.get("report_png"):
        st.download_button("Download PNG figures (zip)", st.session_state.report_png,
                           file_name=f"{ui.file_stem(title)}-figures.zip",
                           mime="application/zip", on_click="ignore")
    st.caption("Contains: " + ", ".join(name.replace("_", " ") for name in report["figures"]))
