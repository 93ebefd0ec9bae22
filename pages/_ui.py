"""Streamlit glue shared by the pages: the current run, cached loaders, background jobs, empty
states. Everything computational lives in `selection_core`; this module only wires it to the UI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from selection_core import jobs, pipeline, workspace
from selection_core.cluster.terms import TermCounts, distinctive_terms, term_counts
from selection_core.config import KMeansConfig, ScorerConfig, UMAPConfig
from selection_core.errors import SelectionError
from selection_core.report import NamedSelection
from selection_core.store import RunStore

PREPARE_JOB = "prepare"
READY_STAGES = ("embed", "sweep", "umap", "quality:heuristic")


# --------------------------------------------------------------------------- the current run
def current_store() -> RunStore:
    """The run the pages show: chosen on the Data page or in the sidebar; the demo by default."""
    if "run_dir" not in st.session_state:
        st.session_state.run_dir = str(workspace.demo_run().root)
    return RunStore(st.session_state.run_dir)


def use_run(store: RunStore, prepare_args: list[str] | None = None) -> None:
    """Switch the app to `store`, starting its preparation job when it is not ready yet."""
    st.session_state.run_dir = str(store.root)
    st.session_state.pop("k", None)
    if prepare_args is not None and not is_ready(store):
        jobs.start_job(store, PREPARE_JOB, ["prepare", "--run", str(store.root), *prepare_args])


def is_demo(store: RunStore) -> bool:
    return store.root.name.startswith("demo-")


def is_ready(store: RunStore) -> bool:
    stages = store.manifest()["stages"] if store.exists("manifest.json") else {}
    return all(stages.get(name, {}).get("status") == "done" for name in READY_STAGES)


def run_token(store: RunStore) -> str:
    """Changes whenever the run's embeddings change: the cache key of every loader below."""
    info = store.stage_info("embed") or {}
    return f"{info.get('key')}-{info.get('finished')}"


def require_ready_run() -> RunStore | None:
    """The current run if it is prepared; otherwise show progress or the one action to fix it."""
    store = current_store()
    if is_ready(store):
        return store
    status = jobs.job_status(store, PREPARE_JOB)
    if status.running:
        _progress_panel(str(store.root))
    elif status.state == "failed":
        st.error(f"Preparing this pool failed: {status.message}")
        with st.expander("Log"):
            st.code(status.log_tail or "(empty)")
        if st.button("Try again", type="primary"):
            jobs.start_job(store, PREPARE_JOB, _prepare_args(store))
            st.rerun()
    elif is_demo(store):  # the built-in demo prepares itself: nothing to click on first visit
        jobs.start_job(store, PREPARE_JOB, _prepare_args(store))
        _progress_panel(str(store.root))
    else:
        st.info("This pool has not been embedded and clustered yet.")
        if st.button("Prepare this pool (embed, sweep k, map, score)", type="primary"):
            jobs.start_job(store, PREPARE_JOB, _prepare_args(store))
            st.rerun()
    return None


def _prepare_args(store: RunStore) -> list[str]:
    args = ["prepare", "--run", str(store.root)]
    if is_demo(store):
        n, seed = store.root.name.removeprefix("demo-").split("-")
        args += ["--demo", "--n", n.removeprefix("n"), "--seed", seed.removeprefix("s")]
    return args


@st.fragment(run_every=1.0)
def _progress_panel(run_dir: str) -> None:
    """Polls the preparation job's progress files; reruns the page when the job ends."""
    store = RunStore(run_dir)
    status = jobs.job_status(store, PREPARE_JOB)
    if not status.running:
        st.rerun(scope="app")
    overall = store.progress("prepare") or {"done": 0, "total": 4, "message": "loading the pool"}
    stage = overall.get("message") or "starting"
    detail = store.progress(stage) if stage in ("embed", "sweep", "quality") else None
    fraction = overall["done"] / max(overall["total"], 1)
    if detail and detail["total"]:
        fraction += detail["done"] / detail["total"] / max(overall["total"], 1)
    labels = {"embed": "embedding prompts", "sweep": "clustering at every k",
              "umap": "projecting the map (UMAP)", "quality": "scoring quality"}
    text = labels.get(stage, stage)
    if detail:
        text += f" — {detail['done']}/{detail['total']}"
    elapsed = time.time() - (status.started or time.time())
    st.info(f"Preparing {store.root.name}: embedding, k sweep, map and quality scores run once "
            f"in the background and are cached (about a minute for the demo pool on 2 cores).")
    st.progress(min(fraction, 1.0), text=f"Step {overall['done'] + 1} of {overall['total']}: "
                                          f"{text} ({elapsed:.0f} s)")


def _switch_run(runs: dict[str, Path]) -> None:
    """on_change of the run switcher: callbacks may reset their own widget, the script may not."""
    choice = st.session_state.switch_run
    if choice in runs:
        use_run(RunStore(runs[choice]))
    st.session_state.switch_run = "—"


def sidebar() -> None:
    """Run picker and a short description of the current run."""
    store = current_store()
    with st.sidebar:
        st.caption("Current pool")
        st.markdown(f"**{store.root.name}**")
        runs = {p.name: p for p in workspace.list_runs() if p != store.root}
        if runs:
            st.selectbox("Switch to", ["—", *runs], key="switch_run", on_change=_switch_run,
                         args=(runs,))
        st.caption(f"Run directory: `{store.root}`")


# --------------------------------------------------------------------------- cached loaders
@st.cache_data(show_spinner=False, max_entries=8)
def load_pool(run_dir: str, token: str) -> pd.DataFrame:
    return pipeline.load_run_pool(RunStore(run_dir))


@st.cache_data(show_spinner=False, max_entries=8)
def load_coords(run_dir: str, token: str) -> np.ndarray:
    return pipeline.projection(RunStore(run_dir), UMAPConfig())


@st.cache_data(show_spinner=False, max_entries=8)
def load_sweep(run_dir: str, token: str) -> tuple[pd.DataFrame, int, int | None]:
    return pipeline.load_sweep(RunStore(run_dir))


@st.cache_data(show_spinner=False, max_entries=64)
def load_labels(run_dir: str, token: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels and distances at k (the sweep cached every swept k; others take ~1 s)."""
    clustering = pipeline.cluster(RunStore(run_dir), KMeansConfig(k=k), write_table=False)
    return clustering.labels, clustering.distances


@st.cache_data(show_spinner=False, max_entries=16)
def load_quality(run_dir: str, token: str, scorer: str = "heuristic",
                 model: str | None = None) -> np.ndarray:
    return pipeline.quality(RunStore(run_dir), ScorerConfig(name=scorer, model=model))


@st.cache_resource(show_spinner=False, max_entries=4)
def load_term_counts(run_dir: str, token: str) -> TermCounts:
    return term_counts(pipeline.load_run_pool(RunStore(run_dir))["prompt"].tolist())


@st.cache_data(show_spinner=False, max_entries=64)
def load_terms(run_dir: str, token: str, k: int) -> list[list[str]]:
    labels, _ = load_labels(run_dir, token, k)
    return distinctive_terms(load_term_counts(run_dir, token), labels)


@dataclass
class RunView:
    """What most pages need about the current run at the current k."""

    store: RunStore
    token: str
    pool: pd.DataFrame
    k: int
    labels: np.ndarray
    distances: np.ndarray
    quality: np.ndarray
    recommended_k: int

    @property
    def run_dir(self) -> str:
        return str(self.store.root)


def current_k(store: RunStore, token: str) -> int:
    table, recommended, _ = load_sweep(str(store.root), token)
    k = st.session_state.get("k")
    return int(k) if k else int(recommended)


def run_view(store: RunStore) -> RunView:
    token = run_token(store)
    run_dir = str(store.root)
    k = current_k(store, token)
    labels, distances = load_labels(run_dir, token, k)
    _, recommended, _ = load_sweep(run_dir, token)
    return RunView(store, token, load_pool(run_dir, token), k, labels, distances,
                   load_quality(run_dir, token), recommended)


# --------------------------------------------------------------------------- selections
def selections(store: RunStore) -> dict[str, NamedSelection]:
    """The selections made in this session for the current run, by name."""
    per_run = st.session_state.setdefault("selections", {})
    return per_run.setdefault(str(store.root), {})


def export_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    return frame.to_csv(index=False).encode("utf-8")


def show_error(exc: SelectionError) -> None:
    st.error(str(exc), icon="⚠️")


def file_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")[:80]


def assets_path(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / name
