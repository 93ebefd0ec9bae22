"""Selection: run kMQ and the baselines, compare selections side by side, download them."""
from __future__ import annotations

import streamlit as st

from pages import _ui as ui
from selection_core import jobs, pipeline
from selection_core.config import KMeansConfig, ScorerConfig, SelectionConfig, widget
from selection_core.errors import SelectionError
from selection_core.report import NamedSelection, describe_selection
from selection_core.select.compare import jaccard_matrix, selection_summary
from selection_core.viz.figures import overlap_heatmap, quality_distribution, \
    selection_composition

SCORE_JOB = "score"
METHOD_HELP = {
    "kmq": "k-means + quality: budget ∝ cluster size, softmax(quality/τ) sampling in each cluster",
    "kmeans-random": "budget ∝ cluster size, uniform sampling in each cluster",
    "kmeans-closest": "budget ∝ cluster size, the rows nearest each centroid",
    "random": "uniform over the whole pool",
    "quality-top": "the highest-quality rows overall (no diversity)",
}

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
                              help="\n".join(f"- **{m}**: {h}" for m, h in METHOD_HELP.items()))
        seed = st.number_input("Seed", min_value=0, step=1,
                               value=widget(SelectionConfig, "sample_seed").default)
    with budget_col:
        unit = st.radio("Budget as", ["rows", "% of the pool"], horizontal=True)
        if unit == "rows":
            budget = int(st.number_input("Budget (rows)", min_value=1, max_value=n_rows,
                                         value=min(300, n_rows), step=50))
        else:
            share = st.number_input("Budget (%)", min_value=0.1, max_value=100.0, value=10.0,
                                    step=1.0)
            budget = pipeline.parse_budget(f"{share}%", n_rows)
        tau = st.number_input("Temperature τ (kMQ)", min_value=0.01, step=0.25,
                              value=widget(SelectionConfig, "sample_tau").default,
                              help="Sampling ∝ exp(quality/τ): small τ approaches top-quality, "
                                   "large τ approaches uniform.")
    with scorer_col:
        scorers = widget(SelectionConfig, "scorer")
        scorer = st.selectbox("Quality scorer", scorers.choices,
                              index=scorers.choices.index(scorers.default),
                              help="heuristic: model-free 0–10; perplexity: −log PPL of the "
                                   "response under a causal LM; reward: a reward model's score")
        scorer_model = st.text_input("Scorer model (perplexity / reward)", value="",
                                     placeholder="HF name, local folder, .gguf or llama2.c .bin")
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
                jobs.start_job(store, SCORE_JOB,
                               [jobs.link(pipeline.QUALITY.name, scorer_config)])
                st.session_state.pending_scorer = scorer_config.model
                raise SelectionError(f"Scoring the pool with {scorer_config.model} runs in the "
                                     "background; run the selection again when it has finished.")
        config = SelectionConfig(method=method, budget=budget, k=view.k,
                                 sample_tau=float(tau), sample_seed=int(seed), scorer=scorer)
        rows, _, _ = pipeline.select_rows(store, config, KMeansConfig(k=view.k), scorer_config)
        name = describe_selection(config.to_dict())
        made[name] = NamedSelection(name, rows, {**config.to_dict(),
                                                 "scorer_model": scorer_config.model})
        st.session_state.compare = list(made)[-4:]  # the new selection joins the comparison
    except SelectionError as exc:
        ui.show_error(exc)

score_job = jobs.job_status(store, SCORE_JOB)
if score_job.running:
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

st.subheader("Download")
for i, name in enumerate(names):
    config = made[name].config
    scores = ui.load_quality(view.run_dir, view.token, config["scorer"], config["scorer_model"])
    selected = pipeline.selected_frame(pool, made[name].rows, labels, scores)
    stem = ui.file_stem(name.replace(" · ", "_"))
    cols = st.columns([4, 1, 1])
    cols[0].markdown(f"**{name}** — {len(selected)} rows")
    cols[1].download_button("JSONL", ui.export_bytes(selected, "jsonl"), file_name=f"{stem}.jsonl",
                            mime="application/jsonl", key=f"jsonl_{i}", on_click="ignore")
    cols[2].download_button("CSV", ui.export_bytes(selected, "csv"), file_name=f"{stem}.csv",
                            mime="text/csv", key=f"csv_{i}", on_click="ignore")
