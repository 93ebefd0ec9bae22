"""Data: choose the pool (demo, upload, local path or HF dataset) and look at it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from pages import _access as auth
from pages import _ui as ui
from selection_core.select import stages as pipeline
from selection_core.frontends import workspace
from selection_core.data.loaders import check_decompressed_size, describe_input, load_pool
from selection_core.spine.errors import SelectionError
from selection_core.viz.figures import length_histograms, source_counts

ui.require_app_frame()

UPLOAD_TYPES = ["jsonl", "gz", "json", "csv", "parquet"]
PREVIEW_ROWS = 5


@st.cache_data(show_spinner="Checking the upload…", max_entries=16)
def _check_inflated_size(path: str) -> None:
    """The upload limit holds for what a stored upload inflates to (checked once per file)."""
    check_decompressed_size(Path(path), int(st.get_option("server.maxUploadSize")) * 1024 ** 2)


def _checked_upload(name: str, content: bytes) -> str:
    """Store an upload (guarded: operators only, within the workspace quota) and check it."""
    path = auth.save_upload(name, content)
    _check_inflated_size(str(path))
    return str(path)


st.title("Data")

# ----------------------------------------------------------------------------- choosing a pool
def choose_pool() -> None:
    """The operator's pool chooser: the demo, an upload, or server paths under the data
    roots; opening a pool prepares it in the background."""
    with st.container(border=True):
        st.subheader("Choose a pool")
        kind = st.radio("Source", ["Demo pool", "Upload a file",
                                   "Local path or Hugging Face dataset"],
                        horizontal=True, key="data_source")
        if kind == "Demo pool":
            st.caption("A generated pool of six skills (arithmetic, unit conversion, Python, "
                       "formatting, classification, fictional-world Q&A) with 20% injected "
                       "low-quality rows whose `is_noise` label the methods never see.")
            n_col, seed_col = st.columns(2)
            demo_n, demo_seed = workspace.demo_size()
            n = n_col.number_input("Rows", min_value=100, max_value=50_000, value=demo_n, step=500)
            seed = seed_col.number_input("Seed", min_value=0, value=demo_seed, step=1)
            if st.button("Open the demo pool", type="primary"):
                ui.use_run(workspace.demo_run(int(n), int(seed)),
                           pipeline.PrepareConfig(demo_n=int(n), demo_seed=int(seed)))
                st.switch_page("pages/clusters.py")
        else:
            inputs: list[str] = []
            if kind == "Upload a file":
                uploaded = st.file_uploader(
                    "Instruction data (.jsonl, .jsonl.gz, .json, .csv, .parquet)",
                    type=UPLOAD_TYPES, accept_multiple_files=True)
                try:  # the upload limit holds for what a compressed file inflates to
                    inputs = [_checked_upload(f.name, f.getvalue()) for f in uploaded or []]
                except SelectionError as exc:
                    ui.show_error(exc)
                    inputs = []
            else:
                text = st.text_area(
                    "One input per line: a file or folder path, or a HF dataset name "
                    "(`org/name@split`); prefix `name=` to name its source",
                    placeholder="../shared/data/dolly/dolly_filtered_3k.jsonl.gz\n"
                                "code=../shared/data/code_alpaca/code_alpaca_2k.jsonl.gz")
                inputs = [line.strip() for line in text.splitlines() if line.strip()]
            if inputs:
                try:  # only the rows shown are read: a large or broken file costs nothing here
                    if kind != "Upload a file":  # server paths: under the data roots only
                        auth.check_inputs(inputs)
                    preview = load_pool(inputs, limit=PREVIEW_ROWS)
                    shapes = pd.DataFrame([describe_input(i) for i in inputs])
                except SelectionError as exc:
                    ui.show_error(exc)
                else:
                    st.markdown("**How the inputs map onto the pool schema**")
                    st.dataframe(shapes, hide_index=True)
                    st.markdown(f"**First rows** (of up to {PREVIEW_ROWS} per input)")
                    st.dataframe(preview, hide_index=True, height=220)
                    st.caption("The whole pool is read when it is prepared, in the background; a "
                               "problem further down a file is reported there, with its line.")
                    if st.button("Use this pool", type="primary"):
                        ui.use_run(workspace.run_for_inputs(inputs),
                                   pipeline.PrepareConfig(data=tuple(inputs)))
                        st.switch_page("pages/clusters.py")


if auth.is_operator():
    choose_pool()
else:
    st.caption("Viewers look at prepared runs; an operator opens new pools.")

# ----------------------------------------------------------------------------- the current pool
store = ui.current_store()
if not pipeline.has_pool(store):
    st.info("The current pool is still being loaded — open the Clusters page to follow its "
            "preparation.")
    st.stop()
token = ui.run_token(store)
pool = ui.load_pool(str(store.root), token)
st.subheader(f"Current pool: {store.root.name}")
metrics = st.columns(4)
metrics[0].metric("Rows", f"{len(pool):,}")
metrics[1].metric("Sources", pool["source"].nunique())
metrics[2].metric("Median prompt words", int(pool["prompt"].str.split().str.len().median()))
metrics[3].metric("Median response words", int(pool["response"].str.split().str.len().median()))
inputs_used = ((store.stage_info("pool") or {}).get("config") or {}).get("inputs", [])
if inputs_used:
    try:
        st.dataframe(pd.DataFrame([describe_input(i) for i in inputs_used]), hide_index=True)
    except SelectionError as exc:  # the input file moved or changed since it was loaded
        st.caption(f"Input files no longer readable: {exc}")

left, right = st.columns([1, 2], gap="large")
left.plotly_chart(source_counts(pool["source"]), key="sources")
right.plotly_chart(length_histograms(pool), key="lengths")

ui.paged_table(pool, key="pool_rows", height=420, search=("prompt", "response"))
