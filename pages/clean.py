"""Clean: the pool's duplicates and benchmark contamination (issue 26) — counts, each flagged
row beside what it repeats with the shared n-grams marked, thresholds that recount at once from
the stored scores, and the removed ids. Selections leave the flagged rows out."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.select import clean
from selection_core.frontends import jobs
from selection_core.spine.config import widget

CLEAN_JOB = "clean"
EPS_VALUES = tuple(round(float(v), 3) for v in np.linspace(0.0, 0.2, 41))

ui.require_app_frame()
st.title("Clean")
store = ui.require_ready_run()
if store is None:
    st.stop()
view = ui.run_view(store)
pool = view.pool
result = clean.latest_clean(store)
status = jobs.job_status(store, CLEAN_JOB)

if result is None:
    st.markdown(
        "Find what a selection should not spend its budget on: **exact**, **near** (MinHash) "
        "and **semantic** (SemDeDup) duplicates, and rows **contaminated** by a benchmark's "
        "test items (8-gram overlap, or a paraphrase close in embedding). Influence selection "
        "picks contaminated rows first: they are the benchmark.")
    if status.running:
        st.info("Cleaning runs in the background…")
    elif status.state == "failed":
        st.error(f"Cleaning failed: {status.message}")
    if not auth.is_operator():  # starting a job changes the run: operators only
        st.info("No clean result on this run yet.")
        st.stop()
    names = st.multiselect(
        "Benchmarks to check", clean.all_benchmarks(),
        default=[name for name in clean.all_benchmarks() if name != "demo"],
        help=widget(clean.CleanConfig, "benchmarks").help + ". The demo benchmark is not "
             "checked unless chosen: its items come from the demo pool's own templates, so "
             "about half the demo pool shares 8-grams with them by construction.")
    if st.button("Find duplicates and contamination", type="primary",
                 disabled=status.running or not names):
        auth.start_job(store, CLEAN_JOB,
                       [jobs.link(clean.CLEAN.name, clean.CleanConfig(benchmarks=tuple(names)))])
        st.rerun()
    st.caption(f"The same from the command line: `python -m selection_core clean --run "
               f"{store.root} --out flags.csv`")
    st.stop()


@st.cache_data(max_entries=4, show_spinner=False)
def load_result(folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A finished key's scores and benchmark items, read once (a key's files never change)."""
    found = clean.read_result(Path(folder))
    return found.scores(), found.items()


scores, items = load_result(str(result.folder))
config = result.config
summary = result.summary

st.subheader("Thresholds")
columns = st.columns(4)
eps = columns[0].select_slider("SemDeDup ε (cosine above 1 − ε)", EPS_VALUES,
                               value=min(EPS_VALUES, key=lambda v: abs(v - config.semantic_eps)),
                               help=widget(clean.CleanConfig, "semantic_eps").help)
overlap = columns[1].slider("n-gram overlap (share of an item)", 0.05, 1.0,
                            float(config.ngram_overlap), 0.05,
                            help=widget(clean.CleanConfig, "ngram_overlap").help)
paraphrase = columns[2].slider("Paraphrase cosine", 0.5, 1.0,
                               float(config.paraphrase_threshold), 0.01,
                               help=widget(clean.CleanConfig, "paraphrase_threshold").help)
near = columns[3].slider("Near-duplicate Jaccard", float(config.near_threshold), 1.0,
                         float(config.near_threshold), 0.01,
                         help="MinHash LSH found the pairs at the stage's threshold; a higher "
                              "one keeps fewer")
shown_config = replace(config, semantic_eps=float(eps), ngram_overlap=float(overlap),
                       paraphrase_threshold=float(paraphrase))
flags = clean.flag_table(scores, items, shown_config)
flags = flags[(flags["kind"] != "near") | (flags["similarity"] >= near)]

counts = flags["kind"].value_counts()
metrics = st.columns(len(clean.KINDS) + 1)
metrics[0].metric("Rows flagged", f"{len(flags):,}", help=f"of {len(pool):,} pool rows")
for column, kind in zip(metrics[1:], clean.KINDS, strict=True):
    column.metric(kind, f"{int(counts.get(kind, 0)):,}")
per_benchmark = pd.DataFrame(
    [{"benchmark": name, "contaminated rows": int((flags["benchmark"] == name).sum()),
      "status": "checked"} for name in summary["benchmarks"]]
    + [{"benchmark": name, "contaminated rows": None, "status": f"skipped: {reason}"}
       for name, reason in summary["skipped"].items()])
left, right = st.columns(2)
left.dataframe(per_benchmark, hide_index=True)
curve = clean.removed_by_threshold(scores, "semantic_eps", EPS_VALUES)
right.caption("Rows SemDeDup removes at each ε (from the stored similarities)")
right.line_chart(curve, x="semantic_eps", y="rows", height=220)
if summary.get("paraphrase") != "checked":
    st.warning(f"Paraphrase check skipped: {summary['paraphrase']}")

st.download_button("Download the removed ids (CSV)", flags.to_csv(index=False).encode(),
                   file_name=f"{ui.file_stem(store.root.name)}-flags.csv", mime="text/csv",
                   on_click="ignore")
st.caption("Selections (Selection page, `select`, `influence select --run`, experiments) leave "
           "the stage's flagged rows out; `--keep duplicates|contaminated|all` keeps them.")

st.subheader("Flagged rows")
kinds = st.multiselect("Kinds", clean.KINDS, default=list(clean.KINDS))
rank = {kind: i for i, kind in enumerate(clean.KINDS)}  # strongest first
listed = flags[flags["kind"].isin(kinds)]
listed = listed.assign(_rank=listed["kind"].map(rank)).sort_values(
    ["similarity", "_rank"], ascending=[False, True], kind="stable").drop(columns="_rank")
st.dataframe(listed, hide_index=True, height=240)
if listed.empty:
    st.stop()
chosen = st.selectbox("Read a flagged row beside what it repeats", listed["id"].head(500))
flag = listed.set_index("id").loc[chosen]
by_id = pool.set_index(pool["id"].astype(str))
row = by_id.loc[str(chosen)]
text = f"{row['prompt']}\n\n{row['response']}"
if flag["kind"] == "contaminated":
    match = items[(items["benchmark"] == flag["benchmark"])
                  & (items["item_id"].astype(str) == str(flag["of"]))].iloc[0]
    other, other_title = match["content"], f"{flag['benchmark']} item {flag['of']}"
else:
    target = by_id.loc[str(flag["of"])]
    other, other_title = f"{target['prompt']}\n\n{target['response']}", f"pool row {flag['of']}"
evidence = scores.set_index(scores["id"].astype(str)).loc[str(chosen)]
found_by = (f" · {config.ngram}-gram coverage {evidence['ngram']:.2f}, nearest item's cosine "
            f"{evidence['paraphrase']:.3f}") if flag["kind"] == "contaminated" else ""
st.caption(f"{flag['kind']} · similarity {flag['similarity']:.3f}{found_by} · words in a "
           f"shared {config.ngram}-gram are marked")
mine, theirs = st.columns(2)
mine.markdown(f"**pool row {chosen}**")
mine.html(f"<div style='white-space: pre-wrap'>{clean.highlight_shared(text, other, config.ngram)}"
          "</div>")
theirs.markdown(f"**{other_title}**")
theirs.html(f"<div style='white-space: pre-wrap'>"
            f"{clean.highlight_shared(other, text, config.ngram)}</div>")
