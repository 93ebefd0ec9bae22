"""Results: per-benchmark tables of fine-tuned models, by selection method and budget."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.frontends import access, jobs, workspace
from selection_core.experiment.plan import EXPERIMENT, ExperimentJob, load_results, results_stamp
from selection_core.experiment.results import ALL_ITEMS, HELD_OUT, LABELS, PARTS, BenchmarkTable, \
    balance_figure, benchmark_table, delta_forest_figure, display_frame, protocols, split_parts, \
    to_html, to_latex, to_markdown
from selection_core.frontends.report import ReportSection, render_report
from selection_core.spine.store import RunStore

QUICK_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo_tiny_cpu.toml"
TABLE_CSS = """<style>
table.results {border-collapse: collapse; font-size: 0.9rem; width: 100%;}
table.results th, table.results td {padding: 4px 8px; border-bottom: 1px solid #e4e7eb;
  text-align: right;}
table.results th {background: #f0f3f7;}
table.results td:nth-child(-n+2) {text-align: left;}
</style>"""


@st.cache_resource(max_entries=4, show_spinner=False)
def _load(run_dirs: tuple[str, ...], stamp: tuple[int, ...]) -> pd.DataFrame:
    """Every result with its per-item verdicts, read once (shared, never modified)."""
    return load_results(list(run_dirs))


@st.cache_data(max_entries=16, show_spinner="Bootstrapping the intervals…")
def _table(run_dirs: tuple[str, ...], stamp: tuple[int, ...], model: str, protocol: str | None,
           items: str, parts_of: str | None = None) -> BenchmarkTable:
    """The table is a bootstrap over every item: computed once per results and view. With
    `parts_of`, that benchmark's table per part (the demo's skills)."""
    results = _load(run_dirs, stamp)
    if protocol is not None:
        results = results[results["protocol"] == protocol]
    if parts_of is not None:
        results = split_parts(results[results["model"] == model], parts_of, PARTS[parts_of])
    return benchmark_table(results, model, items=items)


ui.require_app_frame()
st.title("Results")
experiments = {f"{p.name} (bundled demo)" if workspace.is_bundled(p) else p.name: p
               for p in workspace.list_experiments()}
quick_run = workspace.experiments_root() / "demo-tiny-cpu"
quick_store = RunStore(quick_run)
quick_job = jobs.job_status(quick_store, "experiment")


@st.fragment(run_every=2.0)
def _experiment_progress() -> None:
    status = jobs.job_status(quick_store, "experiment")
    if not status.running:
        st.rerun(scope="app")
    if status.queued:
        ui.queue_note()
        return
    progress = quick_store.progress("experiment")
    if progress and progress["total"]:
        st.progress(progress["done"] / progress["total"],
                    text=f"{progress['done']}/{progress['total']} selections trained and "
                         f"evaluated — now {progress['message']}")
    st.code(status.log_tail[-1500:] or "starting…")


if quick_job.running:
    st.info("The quick demo experiment is running in the background.")
    _experiment_progress()
elif quick_job.state == "failed":
    st.error(f"The demo experiment failed: {quick_job.message}")

if not any(not workspace.is_bundled(path) for path in experiments.values()):
    st.info(
        ("Shown below: the demo experiment shipped with the project. " if experiments
         else "No experiment results yet. ")
        + "An experiment selects subsets with several methods, LoRA-tunes a model on each and "
        "evaluates it per benchmark. Run one from a shell — `python -m selection_core "
        "experiment --config configs/demo_tiny_cpu.toml` (about a minute on a CPU), "
        "`configs/demo_smollm2_cpu.toml` (the bundled one: a real 135M model, about 54 min on 2 "
        "cores), or a GPU config from `configs/` on a server — or start the quick one here.")
    if auth.is_operator() and not quick_job.running and \
            st.button("Run the quick demo experiment", type="primary"):
        auth.start_job(quick_store, "experiment",
                       [jobs.link(EXPERIMENT.name, ExperimentJob(str(QUICK_CONFIG)))])
        st.rerun()
if not experiments:
    st.stop()

chosen = st.multiselect("Experiments", list(experiments), default=list(experiments)[:1])
run_dirs = [experiments[name] for name in chosen]
extra = st.text_input("…or another experiment directory", placeholder="/path/to/run") \
    if auth.is_operator() else ""
if extra.strip():
    try:  # a server path: under the data roots only
        auth.check_inputs([extra])
    except access.AccessDenied as exc:
        ui.show_error(exc)
    else:
        if workspace.is_experiment(Path(extra)):
            run_dirs.append(Path(extra))
        else:
            st.warning(f"{extra} is not an experiment directory (no experiment.json).")
key, stamp = tuple(str(run) for run in run_dirs), results_stamp(run_dirs)
results = _load(key, stamp)
if results.empty:
    st.info("These experiments have no results yet (still running?).")
    st.stop()

models = sorted(results["model"].unique())
model = st.selectbox("Model", models) if len(models) > 1 else models[0]
found = protocols(results[results["model"] == model])
protocol = st.selectbox("Evaluation protocol", found,
                        help="A table shows the numbers of one protocol only") \
    if len(found) > 1 else None
if protocol is not None:
    results = results[results["protocol"] == protocol]
items = st.radio("Items", [HELD_OUT, ALL_ITEMS], horizontal=True,
                 format_func={HELD_OUT: "held-out (never an influence validation instance)",
                              ALL_ITEMS: "all test items"}.get,
                 help="Influence selection targets its validation instances; scoring a "
                      "selection on them would reward it for having seen the test.")
table = _table(key, stamp, model, protocol, items)
st.subheader(f"{model}: score per benchmark (0–100)")
st.html(TABLE_CSS + to_html(table))
st.caption("Each score ± its standard error; bold = not significantly worse than the column's "
           "best within a budget (paired, 95 %); macro avg = mean over the benchmarks; Δ vs "
           "random = macro avg minus random selection's at the same budget, with its 95 % "
           "interval (* = excludes 0); budget — is the untuned base model. The table's caption "
           "gives the items per benchmark and the smallest difference each can detect.")
part_tables = {name: _table(key, stamp, model, protocol, items, parts_of=name)
               for name in sorted(set(results["benchmark"]) & set(PARTS))}
for name, part_table in part_tables.items():
    st.subheader(f"{LABELS.get(name, name)}, per {PARTS[name]}")
    st.html(TABLE_CSS + to_html(part_table))
    st.caption(f"The same results, one column per {PARTS[name]}: a total can hide a method that "
               f"moved one {PARTS[name]} and left the others. Δ vs random here is the macro "
               f"average over the {PARTS[name]}s, paired within each.")
stem = ui.file_stem(f"results-{model}")
cols = st.columns(4)
cols[0].download_button("CSV", ui.export_bytes(table.flat(), "csv"), file_name=f"{stem}.csv",
                        mime="text/csv", on_click="ignore")
cols[1].download_button("Markdown", to_markdown(table), file_name=f"{stem}.md",
                        mime="text/markdown", on_click="ignore")
cols[2].download_button("LaTeX", to_latex(table), file_name=f"{stem}.tex",
                        mime="application/x-tex", on_click="ignore")

budgets = sorted(int(b) for b in results["budget"].dropna().unique())
figures = []
if budgets:
    budget = st.select_slider("Budget for the balance chart", budgets, value=budgets[-1]) \
        if len(budgets) > 1 else budgets[0]
    figures.append(("balance", balance_figure(results[results["model"] == model], budget,
                                              table=table)))
    if any(b == budget for b, _, _ in table.vs_random):
        figures.append(("delta_vs_random", delta_forest_figure(table, budget)))
    else:
        st.caption("No Δ vs random at this budget (no random baseline, or no per-item "
                   "verdicts to pair).")
    for name, figure in figures:
        st.plotly_chart(figure, key=name)
report = render_report(f"Results — {model}", [ReportSection(
    "Score per benchmark (0–100)", f"◆ = not significantly worse than the column's best "
                                   f"within a budget (paired, 95 %). {table.caption}",
    tables=[("Budget × method", display_frame(table)),
            *((f"{LABELS.get(name, name)}, per {PARTS[name]}", display_frame(part_table))
              for name, part_table in part_tables.items())], figures=figures)],
    {"experiments": ", ".join(Path(run).name for run in run_dirs), "model": model,
     "items": items})
cols[3].download_button("HTML report", report.encode("utf-8"), file_name=f"{stem}.html",
                        mime="text/html", on_click="ignore")

st.subheader("Predictions")
shown = results[results["model"] == model]
labels = {r.predictions: f"{r.run} · {r.method}"
          + ("" if pd.isna(r.budget) else f" · budget {r.budget}")
          + ("" if pd.isna(r.seed) else f" · seed {r.seed}") + f" · {r.benchmark}"
          for r in shown.sort_values(["run", "method", "budget", "seed", "benchmark"])
          .itertuples()}
chosen_path = st.selectbox("Show the predictions of", list(labels), format_func=labels.get)
path = Path(chosen_path)
if path.exists():
    predictions = pd.read_json(path, lines=True, dtype={"id": str})
    st.dataframe(predictions, hide_index=True, height=320)
else:
    st.caption("No predictions file for this result.")
