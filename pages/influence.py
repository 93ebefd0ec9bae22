"""Influence: which training rows help which evaluation tasks (the LESS attribution matrix A), and
how BIDS and its baselines spread a budget over the tasks — AID and THI side by side (BIDS: Dai et
al., 2025; LESS: Xia et al., 2024).
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.frontends.bundle import bundle_for
from selection_core.frontends import jobs, workspace
from selection_core.select import stages as pipeline
from selection_core.spine.errors import InputError, SelectionError
from selection_core.evaluate.base import default_data_dir
from selection_core.influence.analysis import THI_LEVELS, compare_methods, thi, thi_table
from selection_core.influence import pipeline as influence_pipeline
from selection_core.influence.attribution import load_attribution
from selection_core.influence.pipeline import rds_scores_for_run
from selection_core.select.baselines import top_rows
from selection_core.select.bids import INFLUENCE_METHODS, explain_on_matrix, \
    normalise_columns, select_on_matrix
from selection_core.select.rationale import tasks_served_over_order
from selection_core.select.registry import methods
from selection_core.frontends.report import ReportSection, render_report
from selection_core.spine.store import RunStore
from selection_core.viz.influence import aid_strip, aid_task_heatmap, method_overlap, thi_bars
from selection_core.viz.rationale import tasks_served

DEFAULT_METHODS = ("bids", "task-max", "random")
# the registry's descriptions; the influence baseline's random is its own (a seeded permutation)
METHOD_HELP = {**{m.name: m.description for m in methods("influence")},
               "random": "a seeded random permutation of the pool"}
NORMALISED, RAW = "normalised Â", "raw A"
SOURCE_RUN, SOURCE_OTHER, SOURCE_BUNDLED, SOURCE_UPLOAD = (
    "This run", "Another run in the workspace", "The bundled demo", "Upload A.npy + val_tasks.txt")


# ----------------------------------------------------------------------------- matrix files
class MatrixFiles(NamedTuple):
    """An attribution matrix's two files plus a token that changes whenever either changes: the
    cache key of everything computed from them."""

    matrix: str
    tasks: str
    token: str


def matrix_files(matrix: Path, tasks: Path) -> MatrixFiles:
    stats = [matrix.stat(), tasks.stat()]
    return MatrixFiles(str(matrix), str(tasks),
                       "-".join(f"{s.st_mtime_ns}:{s.st_size}" for s in stats))


@dataclass(frozen=True)
class Source:
    """Where the matrix comes from, and which run its rows are (for the pool and RDS)."""

    files: MatrixFiles
    label: str
    run: Path | None
    shown_names: dict[str, str] = field(default_factory=dict)  # stored upload → its file name

    def explain(self, exc: SelectionError) -> str:
        """The core's message, naming uploads as the user named them, not by their stored path."""
        text = str(exc)
        for stored, name in self.shown_names.items():
            text = text.replace(stored, name)
        return text


def has_matrix(run: Path) -> bool:
    return run.is_dir() and influence_pipeline.has_matrix(RunStore(run, create=False))


def run_source(run: Path) -> Source:
    return Source(matrix_files(*influence_pipeline.matrix_paths(RunStore(run, create=False))),
                  run.name, run)


# ----------------------------------------------------------------------------- cached compute
@st.cache_resource(show_spinner=False, max_entries=2)
def load_matrix(files: MatrixFiles) -> tuple[np.ndarray, np.ndarray]:
    """A and its task names, checked once per file version; a resource (shared, never copied)
    because A can be gigabytes. Read-only, so no caller can change the cached matrix."""
    A, tasks = load_attribution(files.matrix, files.tasks)
    A.setflags(write=False)
    return A, tasks


@st.cache_resource(show_spinner=False, max_entries=2)
def load_normalised(files: MatrixFiles) -> np.ndarray:
    normalised = normalise_columns(load_matrix(files)[0])
    normalised.setflags(write=False)
    return normalised


@st.cache_data(show_spinner=False, max_entries=64)
def ranking(files: MatrixFiles, method: str, seed: int, rds_run: str | None) -> np.ndarray:
    """Every row in `method`'s selection order. Each method's selection for a budget is a
    prefix of this, so the budget slider only slices it."""
    A, tasks = load_matrix(files)
    if method != "rds":
        return select_on_matrix(A, tasks, method, len(A), seed=seed)
    scores = rds_scores_for_run(RunStore(rds_run, create=False))
    if len(scores) != len(A):
        raise InputError(f"the RDS features cover {len(scores)} rows but the matrix has "
                         f"{len(A)}: they were computed on another pool", path=rds_run)
    return top_rows(scores, len(scores))


@st.cache_data(show_spinner=False, max_entries=16)
def explanation(files: MatrixFiles, method: str, budget: int, seed: int) -> pd.DataFrame:
    """Why each of the first `budget` rows was picked (`explain_on_matrix`; for BIDS what the
    greedy recorded at each pick)."""
    A, tasks = load_matrix(files)
    return explain_on_matrix(A, tasks, method, budget, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def analyse(files: MatrixFiles, selections: dict[str, np.ndarray], normalised: bool
            ) -> dict[str, pd.DataFrame]:
    """compare_methods' THI/AID tables; Â comes from the cache instead of being recomputed."""
    A, tasks = load_matrix(files)
    return compare_methods(load_normalised(files) if normalised else A, tasks, selections,
                           normalised=False)


@st.cache_data(show_spinner=False, max_entries=8)
def pool_thi(files: MatrixFiles, level: str, normalised: bool) -> pd.Series:
    """THI of the whole pool: the baseline each selection's composition reads against."""
    A, tasks = load_matrix(files)
    values = load_normalised(files) if normalised else A
    return thi(values, tasks, np.arange(len(A)), level=level)


# ----------------------------------------------------------------------------- computing A here
CHAIN_JOB = "influence"


def tiny_chain() -> jobs.Chain:
    """The in-app demo as one job: the LESS pipeline with CPU-sized values — the tiny random
    model, 2 epochs, rank 8, batch 8, short sequences, small projections, 5 validation instances
    per task (the demo benchmark when ../shared/data is not there)."""
    fraction, lora = influence_pipeline.warmup_settings(
        "less", epochs=2, r=8, batch_size=8, effective_batch=8, max_length=128, device="cpu")
    features = influence_pipeline.FeatureSettings(
        dim=512, val_per_task=5, max_length=128, val_max_new_tokens=32, device="cpu",
        **({} if default_data_dir().is_dir() else {"tasks": ("demo",)}))
    return [jobs.link(influence_pipeline.WARMUP.name,
                      influence_pipeline.WarmupConfig("tiny-random-llama", fraction, lora)),
            jobs.link(influence_pipeline.FEATURES.name, features),
            jobs.link(influence_pipeline.MATRIX_STAGE.name, influence_pipeline.MatrixConfig())]


STAGE_LABELS = {influence_pipeline.WARMUP.name:
                "LoRA warmup on 5% of the pool (the LESS preset, CPU-sized)",
                influence_pipeline.FEATURES.name:
                "gradient features of every row and validation instance",
                influence_pipeline.MATRIX_STAGE.name: "the attribution matrix"}


def chain_active(store: RunStore) -> bool:
    """The in-app chain is running or has failed (not yet replaced by a matrix)."""
    return jobs.job_status(store, CHAIN_JOB).state in ("running", "failed")


def _start_chain(store: RunStore) -> None:
    auth.start_job(store, CHAIN_JOB, tiny_chain())


@st.fragment(run_every=1.0)
def _chain_progress(run_dir: str) -> None:
    """Polls the job; reruns the page when it ends."""
    status = jobs.job_status(RunStore(run_dir), CHAIN_JOB)
    if not status.running:
        st.rerun(scope="app")
    if status.queued:
        ui.queue_note()
        return
    elapsed = time.time() - (status.started or time.time())
    detail = RunStore(run_dir).progress(CHAIN_JOB) or {}
    fresh = detail.get("time", 0) >= (status.started or 0)
    within = detail["done"] / max(detail["total"], 1) if fresh else 0.0
    steps = max(status.steps, 1)
    text = f"Step {status.step + 1} of {steps}: {STAGE_LABELS.get(status.stage or '', '')}"
    if fresh and detail.get("message"):
        text += f" — {detail.get('message')}: {detail['done']}/{detail['total']}"
    st.progress(min((status.step + within) / steps, 1.0), text=f"{text} ({elapsed:.0f} s)")
    with st.expander("Log"):
        st.code(status.log_tail[-1500:] or "starting…")


def empty_state(store: RunStore) -> None:
    """No matrix in this run: the three CLI commands (GPU servers), or the tiny chain here."""
    run = shlex.quote(str(store.root))
    st.info("This run has no attribution matrix yet. It takes three steps: a short LoRA warmup, "
            "gradient features of every pool row and validation instance, and their weighted "
            "inner products — the matrix A (training rows × validation instances) and one task "
            "name per column.")
    st.markdown("**On a GPU server** (hours for a real model): copy this run directory there, "
                "run the three stages, then copy `attribution.npy` and `val_tasks.txt` back "
                "into it — or upload the two files with *Upload* above.")
    st.code(f"python -m selection_core influence warmup   --run {run} --model "
            f"meta-llama/Llama-3.1-8B --preset less   # or bids (BIDS A.2)\n"
            f"python -m selection_core influence features --run {run}\n"
            f"python -m selection_core influence matrix   --run {run}", language="bash")
    st.markdown("**Or try the page here** with a tiny random model on the CPU (about a minute "
                "for the demo pool): the matrix is real in shape, not in meaning.")
    if not pipeline.has_pool(store):
        st.caption("This run has no pool yet: choose one on the Data page first.")
        return
    status = jobs.job_status(store, CHAIN_JOB)
    if status.running:
        _chain_progress(str(store.root))
    elif status.state == "failed":
        st.error(f"Computing {STAGE_LABELS.get(status.stage or '', 'the matrix')} failed: "
                 f"{status.message}")
        with st.expander("Log"):
            st.code(status.log_tail or "(empty)")
        if auth.is_operator() and st.button("Try again", type="primary"):  # stages are reused
            _start_chain(store)
            st.rerun()
    elif not auth.is_operator():
        st.caption("An operator can compute it here or upload one.")
    elif st.button("Compute a small matrix here (tiny CPU model)", type="primary"):
        _start_chain(store)
        st.rerun()


# ----------------------------------------------------------------------------- choosing A
def choose_source(store: RunStore) -> Source:
    """The current run's matrix, another run's, or an uploaded pair; stops the page otherwise."""
    here = has_matrix(store.root)
    others = {p.name: p for p in workspace.list_runs() if p != store.root and has_matrix(p)}
    bundle = bundle_for(store)  # the demo pool's bundled matrix
    options = [SOURCE_RUN, *([SOURCE_OTHER] if others else []),
               *([SOURCE_BUNDLED] if bundle else []),
               *([SOURCE_UPLOAD] if auth.is_operator() else [])]
    fallback = SOURCE_OTHER if others else SOURCE_BUNDLED if bundle else SOURCE_RUN
    # keyed: the choice survives the default changing (e.g. between two stages of the chain)
    choice = st.radio("Attribution matrix", options, horizontal=True, key="influence_source",
                      index=options.index(SOURCE_RUN if here or chain_active(store)
                                          else fallback))
    if choice == SOURCE_BUNDLED and bundle is not None:
        st.info(f"Showing the {bundle.label('influence')}. Computing a matrix for this run "
                "replaces it.")
        return Source(matrix_files(*bundle.matrix_paths()), "bundled demo", None)
    if choice == SOURCE_RUN:
        if not here:
            empty_state(store)
            st.stop()
        return run_source(store.root)
    if choice == SOURCE_OTHER:
        return run_source(others[st.selectbox("Run", list(others))])
    left, right = st.columns(2)
    matrix = left.file_uploader("Attribution matrix A (.npy, training rows × validation "
                                "instances)", type=["npy"])
    tasks = right.file_uploader("Validation tasks (.txt, one task name per matrix column)",
                                type=["txt"])
    if matrix is None or tasks is None:
        st.info("Upload both files, as written by `influence matrix` (`attribution.npy`, "
                "`val_tasks.txt`). Row i of A is taken to be row i of the current pool.")
        st.stop()
    try:
        stored = [auth.save_upload(f.name, f.getvalue()) for f in (matrix, tasks)]
    except SelectionError as exc:  # the workspace quota
        ui.show_error(exc)
        st.stop()
    return Source(matrix_files(*stored), f"upload {matrix.name}", None,
                  {str(stored[0]): matrix.name, str(stored[1]): tasks.name})


def pool_for(source: Source, store: RunStore, n_rows: int) -> pd.DataFrame | None:
    """The pool the matrix rows index (its run's, or the current one for uploads), if it fits."""
    run = source.run or store.root
    version = pipeline.pool_version(RunStore(run, create=False))
    if version is None:
        return None
    pool = ui.load_pool(str(run), version)
    if len(pool) != n_rows:
        st.warning(f"The matrix has {n_rows:,} rows but the pool of {run.name} has "
                   f"{len(pool):,}: it was computed on another pool, so only row indices can be "
                   "exported.")
        return None
    return pool


def figures_html(title: str, section: ReportSection, settings: dict[str, object]) -> bytes:
    """The page's figures in one self-contained HTML file (plotly.js inlined: opens offline)."""
    return render_report(title, [section], settings).encode("utf-8")


# ----------------------------------------------------------------------------- the page
ui.require_app_frame()
st.title("Influence")
st.caption("Which training rows help which evaluation tasks: the attribution matrix A holds "
           "each pool row's influence on each validation instance. **AID** (average influence "
           "distribution) is a selection's mean influence per instance; **THI** counts, per "
           "task, the selected rows that influence it most.")
store = ui.current_store()
source = choose_source(store)
try:
    with st.spinner("Reading the attribution matrix…"):
        A, tasks = load_matrix(source.files)
except SelectionError as exc:
    st.error(f"Cannot use this attribution matrix — {source.explain(exc)}", icon="⚠️")
    st.stop()
n_rows, n_columns = A.shape
pool = pool_for(source, store, n_rows)
metrics = st.columns(4)
metrics[0].metric("Training rows", f"{n_rows:,}")
metrics[1].metric("Validation instances", f"{n_columns:,}")
metrics[2].metric("Tasks", len(pd.unique(tasks)))
metrics[3].metric("Matrix of", source.label)

rds_run = str(source.run) if source.run is not None and \
    influence_pipeline.has_rds_features(RunStore(source.run, create=False)) else None
with st.container(border=True):
    method_col, budget_col, view_col = st.columns([2, 2, 1.4], gap="large")
    with method_col:
        options = [*INFLUENCE_METHODS, *(["rds"] if rds_run else [])]
        methods = st.multiselect("Methods", options, default=list(DEFAULT_METHODS),
                                 help="\n".join(f"- **{m}**: {METHOD_HELP[m]}" for m in options))
        seed = int(st.number_input("Seed (random)", min_value=0, value=0, step=1))
    with budget_col:
        unit = st.radio("Budget as", ["% of the pool", "rows"], horizontal=True)
        if unit == "rows":
            budget = st.slider("Budget (rows)", 1, n_rows, max(1, round(0.1 * n_rows))) \
                if n_rows > 1 else 1  # a slider needs two ends
        else:
            share = st.slider("Budget (% of the pool)", 0.5, 100.0, 10.0, step=0.5)
            budget = max(1, round(share / 100 * n_rows))
        st.caption(f"**{budget:,}** of {n_rows:,} rows ({budget / n_rows:.1%}). Each method "
                   "ranks the pool once; a budget is a prefix of that order, so the slider is "
                   "instant.")
    with view_col:
        level = st.segmented_control("THI level", THI_LEVELS, default="task",
                                     help="task: the task with the highest mean influence; "
                                          "instance: the task of the single most influenced "
                                          "instance") or "task"
        values = st.segmented_control("Influence values", [NORMALISED, RAW], default=NORMALISED,
                                      help="Â z-scores each validation column over the pool "
                                           "(what BIDS sees); raw A is what LESS ranks "
                                           "by") or NORMALISED
if not methods:
    st.info("Choose at least one method to compare.")
    st.stop()

normalised = values == NORMALISED
try:
    with st.spinner("Ranking the pool with each method (once per matrix)…"):
        selections = {m: ranking(source.files, m, seed if m == "random" else 0, rds_run)[:budget]
                      for m in methods}
    with st.spinner("Computing AID and THI…"):
        tables = analyse(source.files, selections, normalised)
        composition = thi_table(tables["thi"], level)
        composition[f"whole pool ({n_rows:,})"] = pool_thi(source.files, level,
                                                           normalised).to_numpy()
except SelectionError as exc:
    ui.show_error(exc)
    st.stop()

variant = "Â" if normalised else "raw A"
figures = {
    "thi": thi_bars(tables["thi"], level,
                    title=f"Task with the highest influence ({level} level, {variant})"),
    "aid_task": aid_task_heatmap(tables["aid_task"], title=f"Mean AID per task ({variant})"),
    "aid": aid_strip(tables["aid"], title=f"AID per validation instance, by task ({variant})"),
}
if len(selections) > 1:
    figures["overlap"] = method_overlap(selections)

thi_col, heat_col = st.columns(2, gap="large")
thi_col.plotly_chart(figures["thi"], key="thi")
heat_col.plotly_chart(figures["aid_task"], key="aid_task")
st.plotly_chart(figures["aid"], key="aid")
table_col, overlap_col = st.columns(2, gap="large")
with table_col:
    st.markdown(f"**Composition** — selected rows whose highest influence ({level} level) is on "
                "each task")
    st.dataframe(composition, hide_index=True)
if "overlap" in figures:
    overlap_col.plotly_chart(figures["overlap"], key="overlap")

# ----------------------------------------------------------------------------- why these rows
st.subheader("Why these rows")
explainable = [m for m in methods if m != "rds"]  # RDS ranks by features, not by A
if explainable:
    explained_method = st.selectbox("Selection to explain", explainable, key="influence_explain",
                                     help="\n".join(f"- **{m}**: {METHOD_HELP[m]}"
                                                     for m in explainable))
    why = explanation(source.files, explained_method, budget,
                      seed if explained_method == "random" else 0)
    served_col, picks_col = st.columns(2, gap="large")
    with served_col:
        if why["task"].notna().any():
            st.plotly_chart(tasks_served(tasks_served_over_order(why),
                                         title=f"Tasks served over {explained_method}'s "
                                               "selection order"), key="tasks_served")
            if explained_method == "bids":
                st.caption("Each pick serves the instance where the row's normalised influence "
                           "most exceeds the average of the rows picked so far: a task that "
                           "falls behind has the lowest averages, so its line climbs next.")
        else:
            st.caption(f"{explained_method} picks rows without reference to a task or "
                       "instance: no task is served by a pick.")
    with picks_col:
        picks = st.dataframe(why[["order", "row", "task", "val_index", "utility", "why"]],
                             hide_index=True, height=330, key="influence_why_table",
                             on_select="rerun", selection_mode="single-row",
                             column_config={"why": st.column_config.TextColumn(width="large")})
    clicked = (explained_method, tuple(picks.selection.rows))
    if picks.selection.rows and st.session_state.get("influence_why_click") != clicked:
        st.session_state.influence_why_click = clicked
        st.session_state.influence_why_row = int(picks.selection.rows[-1])
    if st.session_state.get("influence_why_row", 0) >= len(why):
        st.session_state.influence_why_row = 0
    position = st.selectbox("Pick", range(len(why)), key="influence_why_row",
                            format_func=lambda i: f"pick {i + 1}: row {why['row'].iloc[i]}",
                            help="Click a row of the table, or choose here.")
    record = why.iloc[position]
    if pool is not None:
        ui.rationale_panel(pool.iloc[int(record["row"])], record.to_dict(),
                           title=f"{pool['id'].iloc[int(record['row'])]} — pick {position + 1}")
    else:
        st.markdown(str(record["why"]))

# ----------------------------------------------------------------------------- export
st.subheader("Export")
method = st.selectbox("Selection", methods, key="influence_export")
rows = selections[method]
stem = ui.file_stem(f"{method}-{budget}-of-{n_rows}")
cols = st.columns([2, 2, 2, 3])
cols[0].download_button("Row indices (.txt)", "".join(f"{int(r)}\n" for r in rows),
                        file_name=f"{stem}-rows.txt", mime="text/plain", on_click="ignore",
                        help="Pool row positions, one per line, in selection order")
if pool is not None:  # deferred: the file is built only when the button is pressed
    cols[1].download_button("Selected rows (JSONL)", partial(ui.export_bytes, pool.iloc[rows],
                                                             "jsonl"),
                            file_name=f"{stem}.jsonl", mime="application/jsonl",
                            on_click="ignore", help="The pool rows, in selection order")
else:
    cols[1].caption("No pool of this size to export rows from.")
settings = {"matrix": source.files.matrix, "shape": f"{n_rows} × {n_columns}",
            "methods": ", ".join(methods), "budget": budget, "seed": seed, "values": variant,
            "THI level": level}
section = ReportSection(f"{len(methods)} methods at {budget:,} of {n_rows:,} rows",
                        tables=[(f"Composition by THI ({level} level)", composition)],
                        figures=list(figures.items()))
cols[2].download_button(
    "Figures (HTML)", partial(figures_html, f"Influence — {source.label}", section, settings),
    file_name=f"influence-{ui.file_stem(source.label)}-{budget}.html", mime="text/html",
    on_click="ignore", help="All figures, interactive, in one self-contained HTML file")
