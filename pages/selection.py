"""Selection: run kMQ and the baselines, compare selections side by side, download them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.select import clean, stages as pipeline
from selection_core.frontends import jobs
from selection_core.spine.config import KMeansConfig, ScorerConfig, SelectionConfig, widget
from selection_core.spine.errors import SelectionError
from selection_core.frontends.report import NamedSelection, describe_selection
from selection_core.select.compare import jaccard_matrix, selection_summary
from selection_core.select.rationale import cluster_budget_table, static_rationale
from selection_core.select.registry import get_method
from selection_core.viz.figures import cluster_map, overlap_heatmap, quality_distribution, \
    selection_composition
from selection_core.viz.map_view import selected_rows
from selection_core.viz.rationale import budget_vs_pool_share

SCORE_JOB = "score"


@st.cache_data(show_spinner=False, max_entries=16)
def pool_rationale(run_dir: str, token: str, config: dict, selected: np.ndarray) -> pd.DataFrame:
    """`static_rationale` of every pool row under a selection made here (its own k and scorer),
    computed once per selection: its rows' rationale, and for a comparison what its computation
    gave the rows it did not select."""
    fields = {k: v for k, v in config.items() if k in SelectionConfig.__dataclass_fields__}
    selection = SelectionConfig(**fields)
    labels, distances = ui.load_labels(run_dir, token, selection.k)
    scores = ui.load_quality(run_dir, token, selection.scorer, config.get("scorer_model"))
    return static_rationale(selection, labels, scores, distances, selected,
                            rows=np.arange(len(labels)))


ui.require_app_frame()
st.title("Selection")
store = ui.require_ready_run(first_view=True)
if store is None:
    st.stop()
view = ui.run_view(store)
pool, n_rows = view.pool, len(view.pool)
made = ui.selections(store)

# ----------------------------------------------------------------------------- the form
with st.form("selection_form", border=True):
    st.markdown(f"Selections use the clustering at **k={view.k}** (change it on the Clusters "
                "page).")
    method_col, budget_col, scorer_col = st.columns(3)
    with method_col:
        methods = widget(SelectionConfig, "method")
        method = st.selectbox("Method", methods.choices, format_func=lambda m: m,
                              index=methods.choices.index(methods.default),
                              help="\n".join(f"- **{m}**: {get_method(m).description}"
                                              for m in methods.choices))
        seeds = widget(SelectionConfig, "sample_seed")
        seed = st.number_input("Seed", min_value=seeds.min_value, step=1, value=seeds.default)
    with budget_col:
        unit = st.radio("Budget as", ["rows", "% of the pool"], horizontal=True)
        if unit == "rows":
            budget = int(st.number_input("Budget (rows)",
                                         min_value=widget(SelectionConfig, "budget").min_value,
                                         max_value=n_rows,
                                         value=min(300, n_rows), step=50))
        else:
            share = st.number_input("Budget (%)", min_value=0.1, max_value=100.0, value=10.0,
                                    step=1.0)
            budget = pipeline.parse_budget(f"{share}%", n_rows)
        tau = st.number_input("Temperature τ (kMQ)", step=0.25,
                              min_value=widget(SelectionConfig, "sample_tau").min_value,
                              value=widget(SelectionConfig, "sample_tau").default,
                              help="Sampling ∝ exp(quality/τ): small τ approaches top-quality, "
                                   "large τ approaches uniform.")
    with scorer_col:  # a model scorer names a server path and scores in a job: operators'
        scorers = widget(SelectionConfig, "scorer")
        scorer, scorer_model = scorers.default, ""
        if auth.is_operator():
            scorer = st.selectbox("Quality scorer", scorers.choices,
                                  index=scorers.choices.index(scorers.default),
                                  help="heuristic: model-free 0–10; perplexity: −log PPL of the "
                                       "response under a causal LM; reward: a reward model's "
                                       "score")
            scorer_model = st.text_input("Scorer model (perplexity / reward)", value="",
                                         placeholder="HF name, local folder, .gguf or llama2.c "
                                                     ".bin")
        else:
            st.caption(f"Quality scorer: {scorer}")
    submitted = st.form_submit_button("Run selection", type="primary")

if submitted:
    scorer_config = ScorerConfig(name=scorer, model=scorer_model.strip() or None)
    try:
        if scorer != "heuristic":
            if not scorer_config.model:
                raise SelectionError(f"the {scorer} scorer needs a model: fill in "
                                     "'Scorer model'")
            if not pipeline.has_quality(store, scorer_config):
                # scoring with a language model is long work: it runs as a background job
                auth.start_job(store, SCORE_JOB,
                               [jobs.link(pipeline.QUALITY.name, scorer_config)])
                st.session_state.pending_scorer = scorer_config.model
                raise SelectionError(f"Scoring the pool with {scorer_config.model} runs in the "
                                     "background; run the selection again when it has finished.")
        config = SelectionConfig(method=method, budget=budget, k=view.k,
                                 sample_tau=float(tau), sample_seed=int(seed), scorer=scorer)
        excluded = clean.exclusion(store, pool["id"].astype(str).tolist())
        rows, _, _ = pipeline.select_rows(store, config, KMeansConfig(k=view.k), scorer_config,
                                          exclude=excluded)
        st.caption(excluded.text)
        name = describe_selection(config.to_dict())
        settings = {**config.to_dict(), "scorer_model": scorer_config.model}
        rationale = pool_rationale(view.run_dir, view.token, settings, rows).iloc[rows]
        made[name] = NamedSelection(name, rows, settings, rationale.reset_index(drop=True))
        st.session_state.compare = list(made)[-4:]  # the new selection joins the comparison
    except SelectionError as exc:
        ui.show_error(exc)

score_job = jobs.job_status(store, SCORE_JOB)
if score_job.queued:
    ui.queue_note()
elif score_job.running:
    st.info(f"Scoring with {st.session_state.get('pending_scorer', 'a model')} in the background…")
    progress = store.progress(SCORE_JOB)
    if progress and progress["total"]:
        st.progress(progress["done"] / progress["total"],
                    text=f"{progress['done']}/{progress['total']} rows scored")
elif score_job.state == "failed":
    st.error(f"Scoring failed: {score_job.message}")

if not made:
    st.info("No selection yet: choose a method and a budget above and press **Run selection**. "
            "Run two or more to compare them side by side.")
    st.stop()

# ----------------------------------------------------------------------------- comparison
st.session_state.setdefault("compare", list(made)[-4:])
st.session_state.compare = [n for n in st.session_state.compare if n in made]
names = st.multiselect("Compare", list(made), key="compare")
if not names:
    st.stop()
chosen = {n: made[n].rows for n in names}
labels, quality = view.labels, view.quality
summary = selection_summary(pool, chosen, labels, quality)
st.subheader("Side by side")
st.caption("Quality columns and charts use the heuristic scorer for every selection, as a common "
           "yardstick; downloads carry the score of the scorer each selection used.")
st.dataframe(summary, hide_index=True, column_config={
    "mean quality": st.column_config.NumberColumn(format="%.2f"),
    "cluster evenness": st.column_config.NumberColumn(format="%.2f"),
    "noise share": st.column_config.NumberColumn(format="percent")})
if "is_noise" in pool.columns:
    st.caption("noise share: rows of the demo pool known to be low quality (wrong, truncated, "
               "empty, duplicated or off-topic) — ground truth the methods never see.")

# the cluster composition gets the full width: up to MAX_GROUPS clusters × (pool + selections)
st.plotly_chart(selection_composition(labels, chosen, by="cluster"), key="comp_cluster")
left, right = st.columns(2, gap="large")
with left:
    st.plotly_chart(selection_composition(pool["source"], chosen, by="source"), key="comp_source")
with right:
    st.plotly_chart(quality_distribution(quality, chosen), key="quality_dist")
if len(chosen) > 1:
    overlap_col, _ = st.columns(2, gap="large")
    overlap_col.plotly_chart(overlap_heatmap(jaccard_matrix(chosen)), key="overlap")

# ----------------------------------------------------------------------------- why these rows
st.subheader("Why these rows")
explained = st.selectbox("Selection to explain", names, key="explain_selection")
selection = made[explained]
why = selection.rationale
budget_col, map_col = st.columns(2, gap="large")
with budget_col:
    st.plotly_chart(budget_vs_pool_share(cluster_budget_table(why, n_rows),
                                         title="What drove the picks: budget by cluster vs "
                                               "pool share"), key="budget_share")
    st.caption(get_method(selection.config["method"]).description + ". Equal bars: a budget proportional "
               "to cluster size; a gap: the method moved rows between clusters.")
with map_col:
    coords, _ = ui.load_coords(view.run_dir, view.token)
    picked = coords[selection.rows]
    points = pd.DataFrame({"x": picked[:, 0], "y": picked[:, 1],
                           "id": pool["id"].iloc[selection.rows].to_numpy(),
                           "prompt": pool["prompt"].iloc[selection.rows].to_numpy(),
                           "cluster": why["cluster"].to_numpy(),
                           "quality": why["quality"].to_numpy()})
    selected_map = cluster_map(points, "cluster", title="The selected rows (click one)",
                               height=380)
    selected_map.update_layout(dragmode="pan")  # lasso mode would turn clicks into no selection
    map_event = st.plotly_chart(selected_map, key="why_map", on_select="rerun",
                                selection_mode="points")
table = why.assign(id=pool["id"].iloc[selection.rows].to_numpy(),
                   prompt=pool["prompt"].iloc[selection.rows].to_numpy())
table_event = st.dataframe(
    table[["id", "cluster", "cluster_budget", "quality_rank", "p_select", "why", "prompt"]],
    hide_index=True, height=240, key="why_table", on_select="rerun",
    selection_mode="single-row", column_config={
        "p_select": st.column_config.NumberColumn(format="%.3f"),
        "why": st.column_config.TextColumn(width="large")})
for source, clicked in (("map", selected_rows(picked, map_event).tolist()),
                        ("table", table_event.selection.rows)):  # the one that changed wins
    click_key = (explained, tuple(clicked))
    if clicked and st.session_state.get(f"why_last_{source}") != click_key:
        st.session_state.why_row = int(clicked[-1])
    st.session_state[f"why_last_{source}"] = click_key
if st.session_state.get("why_row", 0) >= len(selection.rows):
    st.session_state.why_row = 0
position = st.selectbox("Row", range(len(selection.rows)), key="why_row",
                        format_func=lambda i: f"{table['id'].iloc[i]} — cluster "
                                              f"{why['cluster'].iloc[i]}",
                        help="Click a point on the map or a row of the table, or choose here.")
ui.rationale_panel(pool.iloc[selection.rows[position]], why.iloc[position].to_dict())

if len(names) > 1:
    st.subheader("Rows one selection chose and the other did not")
    first_col, second_col = st.columns(2)
    first = first_col.selectbox("Selection A", names, index=0, key="diff_a")
    second = second_col.selectbox("Selection B", names, index=1, key="diff_b")
    for this, other in ((first, second), (second, first)):
        if this == other:
            break
        mine, theirs = made[this], made[other]
        only = ~np.isin(mine.rows, theirs.rows)
        rows = mine.rows[only]
        other_view = pool_rationale(view.run_dir, view.token, theirs.config,
                                    theirs.rows).iloc[rows]
        st.markdown(f"**{only.sum()} rows in {this}, not in {other}**")
        st.dataframe(pd.DataFrame({
            "id": pool["id"].iloc[rows].to_numpy(), "prompt": pool["prompt"].iloc[rows].to_numpy(),
            f"why {this}": mine.rationale["why"].to_numpy()[only],
            f"why not {other}": other_view["why"].to_numpy()}), hide_index=True, height=220,
            key=f"only_{this}", column_config={f"why {this}": st.column_config.TextColumn(
                width="large"), f"why not {other}": st.column_config.TextColumn(width="large")})

st.subheader("Download")
for i, name in enumerate(names):
    config = made[name].config
    scores = ui.load_quality(view.run_dir, view.token, config["scorer"], config["scorer_model"])
    own_labels, _ = ui.load_labels(view.run_dir, view.token, config["k"])
    selected = pipeline.selected_frame(pool, made[name].rows, own_labels, scores,
                                       made[name].rationale)
    stem = ui.file_stem(name.replace(" · ", "_"))
    cols = st.columns([4, 1, 1])
    cols[0].markdown(f"**{name}** — {len(selected)} rows")
    cols[1].download_button("JSONL", ui.export_bytes(selected, "jsonl"), file_name=f"{stem}.jsonl",
                            mime="application/jsonl", key=f"jsonl_{i}", on_click="ignore")
    cols[2].download_button("CSV", ui.export_bytes(selected, "csv"), file_name=f"{stem}.csv",
                            mime="text/csv", key=f"csv_{i}", on_click="ignore")
