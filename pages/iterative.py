"""Iterative refinement: start iterative kMQ in the background, follow it live, draw its history
(per-cluster scores, weights, draws, low-quality clusters) and read generations against gold."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.frontends import jobs
from selection_core.frontends.bundle import bundle_for
from selection_core.spine.errors import SelectionError
from selection_core.iterative.loop import ITERATE_JOB, ITERATE_JOB_STAGE, ROUNDS_COLUMNS, \
    IterateJob, IterativeHistory, completed_rounds, iterative_selection_path, \
    list_iterative_runs, load_generations, load_history, round_lora, run_config, \
    selection_frame
from selection_core.spine.config import MAX_NEW_TOKENS, IterativeConfig, KMeansConfig, widget
from selection_core.spine.store import RunStore
from selection_core.viz.iterative import cluster_trends, entropy_trend, items_added, \
    low_quality_bars, round_heatmap, weight_evolution

MODELS = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct (packaged; ~5–15 min a round on CPU)",
          "tiny-random-llama": "tiny random llama (seconds; checks the wiring, learns nothing)"}
SCORER_HELP = ("perplexity: −log(PPL_gen / PPL_gold) under the round's model; reward: a reward "
               "model's score of gold minus that of the generation; heuristic: the model-free "
               "0–10 score (cannot tell right from wrong)")

ui.require_app_frame()
st.title("Iterative refinement")
st.caption("Iterative kMQ (Yu et al., 2024, \"Diversify and Conquer\", Algorithm 1): each "
           "round draws new items with per-cluster budgets ∝ weight × remaining size, trains on "
           "everything selected so far, generates for a sample covering every cluster and "
           "compares with the gold answers; clusters where gold still beats the model more than "
           "elsewhere gain weight (w ← w · exp(s/τ), s in standard deviations of S, shrunk by "
           "how much of it is noise).")
ready = ui.require_ready_run()
store = ready or ui.current_store()
bundle = bundle_for(store)  # the demo pool's bundled run: shown even while the pool is prepared
if ready is None and bundle is None:
    st.stop()
view = ui.run_view(store) if ready is not None else None  # None: only the bundle is shown


# ----------------------------------------------------------------------------- live progress
@st.fragment(run_every=1.0)
def _job_panel(run_dir: str, rounds_seen: int) -> None:
    """Polls the iterate job; reruns the whole page when it ends or a round completes."""
    run = RunStore(run_dir)
    status = jobs.job_status(run, ITERATE_JOB)
    found = list_iterative_runs(run)
    done = completed_rounds(found[0]) if found else 0
    if not status.running or done != rounds_seen:
        st.rerun(scope="app")
    if status.queued:
        ui.queue_note()
        return
    progress = run.progress(ITERATE_JOB) or {"done": 0, "total": 1, "message": "starting"}
    elapsed = time.time() - (status.started or time.time())
    st.progress(min(progress["done"] / max(progress["total"], 1), 1.0),
                text=f"{progress.get('message') or 'starting'} ({elapsed:.0f} s)")


status = jobs.job_status(store, ITERATE_JOB)
runs = list_iterative_runs(store)
if status.running:
    st.info("An iterative run is going in the background; finished rounds appear below.")
    _job_panel(str(store.root), completed_rounds(runs[0]) if runs else 0)
elif status.state == "failed":
    st.error(f"The last iterative run failed: {status.message}")
    with st.expander("Log"):
        st.code(status.log_tail or "(empty)")

# ----------------------------------------------------------------------------- start a run
def start_form(view: ui.RunView) -> None:
    """An operator's: start iterative kMQ on this pool in the background."""
    n_rows = len(view.pool)
    with st.expander("Start an iterative run", expanded=not runs), \
            st.form("iterate_form", border=False):
        first, second, third = st.columns(3)
        with first:
            k = int(st.number_input("k (clusters)",
                                    min_value=widget(IterativeConfig, "k").min_value,
                                    max_value=n_rows,
                                    value=view.k))
            budget = int(st.number_input(
                "Budget (rows in all)", min_value=widget(IterativeConfig, "budget").min_value,
                max_value=n_rows, value=min(300, n_rows), step=50))
            rounds_widget = widget(IterativeConfig, "rounds")
            rounds = int(st.number_input("Rounds", min_value=rounds_widget.min_value,
                                         max_value=10, value=rounds_widget.default))
        with second:
            model = st.selectbox("Model", list(MODELS),
                                 format_func=lambda m: f"{m} — {MODELS[m]}")
            custom_model = st.text_input("…or another causal LM (HF name or local path)", "")
            scorers = widget(IterativeConfig, "scorer")
            scorer = st.selectbox("Scorer", scorers.choices, help=SCORER_HELP,
                                  index=scorers.choices.index(scorers.default))
            reward_model = st.text_input("Reward model (for the reward scorer)", "")
        with third:
            weight_tau = st.number_input("Weight temperature τ", step=0.25,
                                         min_value=widget(IterativeConfig, "weight_tau").min_value,
                                         value=widget(IterativeConfig, "weight_tau").default,
                                         help="in standard deviations of S, whatever the scorer")
            scored = widget(IterativeConfig, "eval_per_round")
            eval_per_round = int(st.number_input(
                "Generations scored per round", min_value=scored.min_value, value=scored.default,
                step=8, help=f"more when k needs them: every cluster with selected items gets "
                             f"{IterativeConfig.min_scored_per_cluster}"))
            max_new_tokens = int(st.number_input(
                "Max new tokens", min_value=4, value=MAX_NEW_TOKENS, step=16,
                help="the generation cap; gold answers are cut at it too before scoring"))
            from_base = st.checkbox("Train each round from the base model",
                                    help="default: continue the previous round's adapter")
        start = st.form_submit_button("Start", type="primary", disabled=status.running)
    if start:
        chosen_model = custom_model.strip() or model
        if budget < rounds:
            st.error(f"The budget ({budget}) must be at least the number of rounds ({rounds}).")
        elif scorer == "reward" and not reward_model.strip():
            st.error("The reward scorer needs a reward model (a Hugging Face name or local "
                     "path).")
        else:
            config = IterativeConfig(k=k, budget=budget, rounds=rounds,
                                     weight_tau=float(weight_tau), scorer=scorer,
                                     scorer_model=reward_model.strip() or None,
                                     eval_per_round=eval_per_round,
                                     continue_training=not from_base, model=chosen_model)
            job = IterateJob.create(config, KMeansConfig(k=k), round_lora(), max_new_tokens,
                                    out=str(iterative_selection_path(store, k, budget)))
            auth.start_job(store, ITERATE_JOB, [jobs.link(ITERATE_JOB_STAGE.name, job)])
            st.rerun()


if auth.is_operator() and view is not None:
    start_form(view)

if not runs and bundle is not None:  # until this run has one of its own
    runs = bundle.iterative_runs()
    st.info(f"Showing the {bundle.label('iterative')}. Starting a run replaces it.")
if not runs:
    st.info("No iterative run on this pool yet. An operator starts one above, or on a GPU "
            "server runs `python -m selection_core iterate --run DIR --k K --budget B --model "
            "NAME --out selected.jsonl` and opens the same run directory here.")
    st.code(f"python -m selection_core iterate --run {store.root} --k {view.k} --budget 300 "
            "--rounds 3 --model smollm2-135m-instruct --out selected.jsonl", language="bash")
    st.stop()


# ----------------------------------------------------------------------------- history
def _describe(folder: Path) -> str:
    config = run_config(folder)
    return (f"k={config['k']}, budget {config['budget']}, {config['rounds']} rounds, "
            f"{config['scorer']}, {config.get('model_name') or config.get('model')}, "
            f"τ={config.get('weight_tau', config.get('tau'))}")  # `tau` before issue 13


try:
    folder = st.selectbox("Iterative run", runs, format_func=_describe)
    history: IterativeHistory = load_history(folder)
except SelectionError as exc:
    ui.show_error(exc)
    st.stop()
config = history.config
if history.rounds < config["rounds"] and not status.running:
    last = store.progress(ITERATE_JOB) or {}
    ago = f" (last update {time.time() - last['time']:.0f} s ago: {last.get('message')})" \
        if last.get("time") else ""
    st.info(f"{history.rounds} of {config['rounds']} rounds are done{ago}. A run started from "
            "the command line goes on there: refresh to see new rounds; if it was stopped, run "
            "the same command again and it resumes at the next round.")
    st.button("Refresh", icon=":material/refresh:")
if history.rounds == 0:
    st.stop()

summaries = history.summaries
clusters = history.clusters
metrics = st.columns(5)
metrics[0].metric("Rounds done", f"{history.rounds} / {config['rounds']}")
metrics[1].metric("Items selected", int(summaries["selected"].iloc[-1]))
metrics[2].metric("Mean S, last round", f"{summaries['mean_gap'].iloc[-1]:.3f}",
                  delta=f"{summaries['mean_gap'].iloc[-1] - summaries['mean_gap'].iloc[0]:.3f}"
                  if history.rounds > 1 else None, delta_color="inverse")
entropy = entropy_trend(clusters)
final_entropy, uniform = float(entropy.data[0].y[-1]), float(np.log(config["k"]))
metrics[3].metric("Weight entropy now", f"{final_entropy:.2f} of {uniform:.2f}",
                  help="Entropy of the cluster weights in nats; log k when uniform. Near 0: a "
                       "few clusters have taken the whole budget.")
seconds = summaries[["train_s", "generate_s", "score_s"]].sum(axis=1)
metrics[4].metric("Time per round", f"{seconds.mean():.0f} s")
if final_entropy < 0.5 * uniform:
    st.warning(f"The weights have collapsed onto a few clusters (entropy {final_entropy:.2f} of "
               f"{uniform:.2f}, as even as {np.exp(final_entropy):.1f} equal clusters): raise τ "
               "to slow the update.")

trend_col, heat_col = st.columns([3, 2])
with trend_col:
    value = st.segmented_control("Score", ["mean_score", "mean_quality"], default="mean_score",
                                 key="trend_value",
                                 format_func={"mean_score": "S (gold − generation)",
                                              "mean_quality": "normalised quality"}.get)
    value = value or "mean_score"
    first_round = clusters[clusters["round"] == 1].sort_values("mean_score", ascending=False)
    all_clusters = sorted(clusters["cluster"].unique().tolist())
    default = first_round["cluster"].head(6).tolist()
    chosen = st.multiselect("Clusters", all_clusters, default=default, key="trend_clusters",
                            help="by default the six where gold beat the model most in round 1")
    st.plotly_chart(cluster_trends(clusters, chosen or all_clusters, value),
                    use_container_width=True)
with heat_col:
    st.plotly_chart(round_heatmap(clusters, value), use_container_width=True)

weight_col, entropy_col = st.columns(2)
with weight_col:
    st.plotly_chart(weight_evolution(clusters), use_container_width=True)
with entropy_col:
    st.plotly_chart(entropy, use_container_width=True)
added_col, low_col = st.columns(2)
with added_col:
    st.plotly_chart(items_added(clusters), use_container_width=True)
with low_col:
    st.plotly_chart(low_quality_bars(summaries, config["low_quality_threshold"]),
                    use_container_width=True)

with st.expander("Per-round timings and summary"):
    st.dataframe(summaries, hide_index=True, use_container_width=True)

# ----------------------------------------------------------------------------- generations
st.subheader("Generations vs gold")
pick_round, pick_cluster = st.columns(2)
with pick_round:
    round_number = st.selectbox("Round", list(range(1, history.rounds + 1)),
                                index=history.rounds - 1, key="gen_round")
generations = load_generations(folder, round_number)
with pick_cluster:
    cluster = st.selectbox("Cluster", sorted(generations["cluster"].unique().tolist()),
                           key="gen_cluster")
shown = generations[generations["cluster"] == cluster].sort_values("gap", ascending=False)
st.caption(f"{len(shown)} scored prompts of cluster {cluster} in round {round_number}, "
           "largest S first (gold beats the model most).")
if shown.get("gold_cut", pd.Series(dtype=bool)).any():
    st.caption("Gold answers longer than the generation cap are shown, and were scored, cut at "
               "it (gold_cut).")
columns = ["id", "gap", "quality", "prompt", "gold", *(["gold_cut"] if "gold_cut" in shown
                                                        else []), "generated"]
st.dataframe(shown[columns], hide_index=True,
             use_container_width=True,
             column_config={"gap": st.column_config.NumberColumn("S", format="%.3f"),
                            "quality": st.column_config.NumberColumn(format="%.2f")})

# ----------------------------------------------------------------------------- export
st.subheader("Export")
complete = history.rounds == config["rounds"]
if not complete:
    st.caption("The selection is offered once every round has finished.")
left, right = st.columns(2)
with left:
    st.download_button("rounds.csv", ui.export_bytes(clusters[ROUNDS_COLUMNS], "csv"),
                       file_name="rounds.csv", mime="text/csv")
with right:
    if complete and view is not None:  # the selection's clusters need the prepared run
        selected = selection_frame(store, folder)
        st.download_button(f"Final selection ({len(selected)} rows, JSONL)",
                           ui.export_bytes(selected, "jsonl"),
                           file_name=f"{ui.file_stem(folder.name)}.jsonl",
                           mime="application/jsonl", type="primary")
