"""Streamlit glue shared by the pages: the app frame (navigation, page config, sidebar), the
current run, cached loaders, background jobs, empty states. Everything computational lives in
`selection_core`; this module only wires it to the UI.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages import _access as auth
from selection_core import __version__
from selection_core.frontends import jobs, workspace
from selection_core.select import stages as pipeline
from selection_core.cluster.terms import TermCounts, cluster_overview, distinctive_terms, \
    term_counts
from selection_core.spine.config import KMeansConfig, ScorerConfig, UMAPConfig
from selection_core.spine.errors import MissingStageError, SelectionError
from selection_core.frontends.report import NamedSelection
from selection_core.spine.store import RunStore
from selection_core.viz.figures import MapHover, map_hover
from selection_core.viz.map_view import MapWindow, density_grid, draw_priority, visible_rows

PREPARE_JOB = "prepare"
READY_STAGES = ("embed", "sweep", "umap", "quality:heuristic")
APP_NAME = "selection_core"
ABOUT = f"""**{APP_NAME} {__version__}** — choose which instruction-tuning data an LLM should be
fine-tuned on, and show why.

Diversity (kMQ: embed, cluster, quality-weighted sampling, iterative refinement) and influence
(LESS features + BIDS) selection, with their evaluation. The same results are available from the
command line: `python -m selection_core --help`."""


# --------------------------------------------------------------------------- the app frame
# Streamlit treats a `pages/` folder beside the entrypoint as the legacy multipage layout until
# some session calls st.navigation (documented: from then on it ignores `pages/` in every
# session). So the very first request of a server process, when it is a deep link (/selection),
# runs pages/selection.py directly under an auto-generated file list, without app.py. Every page
# therefore starts with `require_app_frame()`: outside the frame it runs the frame itself —
# declaring the real navigation switches the whole server over — and the framed page inside it.
_frame = threading.local()


PAGES = [("pages/data.py", "Data", ":material/table_view:"),
         ("pages/clean.py", "Clean", ":material/cleaning_services:"),
         ("pages/clusters.py", "Clusters", ":material/scatter_plot:"),  # the default: /
         ("pages/selection.py", "Selection", ":material/checklist:"),
         ("pages/iterative.py", "Iterative refinement", ":material/autorenew:"),
         ("pages/influence.py", "Influence", ":material/hub:"),
         ("pages/report.py", "Report", ":material/description:"),
         ("pages/results.py", "Results", ":material/leaderboard:")]
DEFAULT_PAGE = "pages/clusters.py"


def run_app() -> None:
    """The frame around every page (app.py's body): navigation, title and menu, sidebar —
    behind the login gate: a visitor who is not logged in gets the login page alone, at every
    page's address (a deep link opens its page once logged in)."""
    if auth.gate() is None:
        login = st.navigation([st.Page(auth.login_page, title="Log in", icon=":material/lock:",
                                       url_path=Path(path).stem, default=path == DEFAULT_PAGE)
                               for path, _, _ in PAGES], position="hidden")
        st.set_page_config(page_title=f"Log in · {APP_NAME}",
                           page_icon=str(assets_path("favicon.png")),
                           menu_items={"About": ABOUT, "Get help": None, "Report a bug": None})
        login.run()
        return
    page = st.navigation([st.Page(path, title=title, icon=icon, default=path == DEFAULT_PAGE)
                          for path, title, icon in PAGES])
    st.set_page_config(page_title=f"{page.title} · {APP_NAME} {__version__}",
                       page_icon=str(assets_path("favicon.png")), layout="wide",
                       menu_items={"About": ABOUT, "Get help": None, "Report a bug": None})
    sidebar()
    presented = auth.view_run()
    if presented is not None and not is_ready(current_store()):
        st.error(f"{presented} is not a finished run: `make view` presents a run whose "
                 "preparation is done (`python -m selection_core status --run …` says).")
        st.stop()
    _frame.active = True
    try:
        page.run()
    finally:
        _frame.active = False


def require_app_frame() -> None:
    """First line of every page: run by Streamlit without app.py's frame, run the frame (and
    this page inside it) instead, then stop this unframed run."""
    if not getattr(_frame, "active", False):
        run_app()
        st.stop()


# --------------------------------------------------------------------------- the current run
def current_store() -> RunStore:
    """The run the pages show: chosen on the Data page or in the sidebar; the demo by default;
    the presented one with `make view RUN=…`."""
    presented = auth.view_run()
    if presented is not None:
        return RunStore(presented, create=False)
    if "run_dir" not in st.session_state:
        st.session_state.run_dir = str(workspace.demo_run().root)
    return RunStore(st.session_state.run_dir)


def use_run(store: RunStore, prepare: pipeline.PrepareConfig | None = None) -> None:
    """Switch the app to `store`, starting its preparation job when it is not ready yet."""
    st.session_state.run_dir = str(store.root)
    st.session_state.pop("k", None)
    if prepare is not None and not is_ready(store):
        start_prepare(store, prepare)


def start_prepare(store: RunStore, config: pipeline.PrepareConfig) -> None:
    auth.start_job(store, PREPARE_JOB, [jobs.link(pipeline.PREPARE.name, config)])


def is_demo(store: RunStore) -> bool:
    return store.root.name.startswith("demo-")


def is_ready(store: RunStore) -> bool:
    """Everything the app shows is prepared (the full k sweep and the UMAP map included)."""
    stages = store.stages()
    return all(stages.get(name, {}).get("status") == "done" for name in READY_STAGES)


def shows_first_view(store: RunStore) -> bool:
    """Enough is prepared to show the pool while the rest is computed: embeddings, heuristic
    scores, a first k sweep and a map (the quick placement or UMAP) of these embeddings."""
    stages = store.stages()
    return all(stages.get(name, {}).get("status") == "done"
               for name in ("embed", "quality:heuristic")) \
        and pipeline.has_sweep(store) and pipeline.map_kind(store) is not None


def run_token(store: RunStore) -> str:
    """Changes whenever what the loaders below read changes — the embeddings, the sweep, the
    map: their cache key."""
    stages = store.stages()
    embed = stages.get("embed", {})
    parts = [embed.get("key"), embed.get("finished")] + [
        stages.get(name, {}).get("finished") for name in ("sweep", "quick_map", "umap")]
    return "-".join(str(part) for part in parts)


def require_ready_run(first_view: bool = False) -> RunStore | None:
    """The current run if it is prepared; otherwise show progress or the one action to fix it.

    With `first_view`, a run whose preparation has got far enough (`shows_first_view`) is
    returned while the rest is computed, under a progress bar that refreshes the page as the
    full k sweep and the UMAP map land."""
    store = current_store()
    if is_ready(store):
        return store
    status = jobs.job_status(store, PREPARE_JOB)
    if status.running:
        if first_view and shows_first_view(store):
            _refine_panel(str(store.root), run_token(store))
            return store
        _progress_panel(str(store.root), first_view)
    elif not auth.is_operator():  # a viewer looks at prepared runs; an operator prepares them
        st.info(f"{store.root.name} is not prepared yet"
                + (f" (its preparation failed: {status.message})" if status.state == "failed"
                   else "") + ". Choose a prepared run in the sidebar.")
    elif status.state == "failed":
        st.error(f"Preparing this pool failed: {status.message}")
        with st.expander("Log"):
            st.code(status.log_tail or "(empty)")
        if st.button("Try again", type="primary"):
            start_prepare(store, _prepare_config(store))
            st.rerun()
    elif is_demo(store):  # the built-in demo prepares itself: nothing to click on first visit
        start_prepare(store, _prepare_config(store))
        _progress_panel(str(store.root), first_view)
    else:
        st.info("This pool has not been embedded and clustered yet.")
        if st.button("Prepare this pool (embed, sweep k, map, score)", type="primary"):
            start_prepare(store, _prepare_config(store))
            st.rerun()
    return None


def _prepare_config(store: RunStore) -> pipeline.PrepareConfig:
    if is_demo(store):
        n, seed = store.root.name.removeprefix("demo-").split("-")
        return pipeline.PrepareConfig(demo_n=int(n.removeprefix("n")),
                                      demo_seed=int(seed.removeprefix("s")))
    return pipeline.PrepareConfig()


STEP_LABELS = {"embed": "embedding prompts", "quality": "scoring quality",
               "sweep": f"clustering at k = 2, 4, … {pipeline.FIRST_PASS_MAX_K} first",
               "quick_map": "placing the quick map (PCA)",
               "sweep_rest": "clustering at every k",
               "umap": "projecting the map (UMAP)"}


def _preparation_progress(store: RunStore, status: jobs.JobStatus) -> tuple[float, str]:
    """The preparation job's overall fraction done and a line saying what it is doing."""
    steps = len(pipeline.PREPARE_STEPS)
    overall = store.progress("prepare") or {"done": 0, "total": steps, "message": "loading"}
    stage = overall.get("message") or "starting"
    detail = store.progress(stage) if stage in ("embed", "quality", "sweep", "sweep_rest") \
        else None
    fraction = overall["done"] / max(overall["total"], 1)
    text = STEP_LABELS.get(stage, stage)
    if detail and detail["total"]:
        fraction += detail["done"] / detail["total"] / max(overall["total"], 1)
        text += f" — {detail['done']}/{detail['total']}"
    elapsed = time.time() - (status.started or time.time())
    return min(fraction, 1.0), (f"Step {min(overall['done'] + 1, overall['total'])} of "
                                f"{overall['total']}: {text} ({elapsed:.0f} s)")


@st.fragment(run_every=1.0)
def _progress_panel(run_dir: str, first_view: bool) -> None:
    """Polls the preparation job's progress files; reruns the page when the job ends (or, for a
    page that shows the first view, when the first results are in)."""
    store = RunStore(run_dir)
    status = jobs.job_status(store, PREPARE_JOB)
    if not status.running or (first_view and shows_first_view(store)):
        st.rerun(scope="app")
    if status.queued:
        queue_note()
        return
    st.info(f"Preparing {store.root.name}: embedding, scores, k sweep and map run once in the "
            "background and are cached. The map and the k curves appear as soon as the first "
            "results are in; the full sweep and the UMAP map follow.")
    fraction, text = _preparation_progress(store, status)
    st.progress(fraction, text=text)


@st.fragment(run_every=1.0)
def _refine_panel(run_dir: str, token: str) -> None:
    """While the rest of a shown run is prepared: progress, and a rerun of the page when new
    results (the full sweep, the UMAP map) land or the job ends."""
    store = RunStore(run_dir)
    status = jobs.job_status(store, PREPARE_JOB)
    if not status.running or run_token(store) != token:
        st.rerun(scope="app")
    fraction, text = _preparation_progress(store, status)
    st.progress(fraction, text=f"Still preparing in the background — {text}. The page updates "
                               "by itself.")


def _switch_run(runs: dict[str, Path]) -> None:
    """on_change of the run switcher: callbacks may reset their own widget, the script may not."""
    choice = st.session_state.switch_run
    if choice in runs:
        use_run(RunStore(runs[choice]))
    st.session_state.switch_run = "—"


def queue_note() -> None:
    """A queued job's place: heavy jobs run one at a time (`jobs.heavy_slot`)."""
    waiting = jobs.queue()
    running = [f"{job['name']} on {Path(job['run']).name}" for job in waiting
               if job["state"] == "running"]
    st.info("Waiting for the running heavy job to finish"
            + (f" ({running[0]})" if running else "") + f": {len(waiting)} in the queue, one "
            "at a time. It starts by itself.")


def _job_queue() -> None:
    """The workspace's heavy jobs (running, then queued), with Stop for an operator."""
    waiting = jobs.queue()
    if not waiting:
        return
    st.caption("Background jobs (one at a time)")
    for number, job in enumerate(waiting):
        text, stop = st.columns([4, 1], vertical_alignment="center")
        text.markdown(f"{'▶' if job['state'] == 'running' else f'{number}.'} {job['name']} · "
                      f"{Path(job['run']).name}")
        if auth.is_operator() and stop.button("Stop", key=f"stop_job_{job['pid']}",
                                              help="End this job (finished stages are kept)"):
            auth.stop_job(RunStore(job["run"], create=False), job["name"])
            st.rerun()


def sidebar() -> None:
    """Run picker, a short description of the current run, the job queue, who is logged in."""
    store = current_store()
    presenting = auth.view_run() is not None
    with st.sidebar:
        st.caption("Presenting (read only)" if presenting else "Current pool")
        st.markdown(f"**{store.root.name}**")
        runs = {p.name: p for p in workspace.list_runs() if p != store.root}
        if runs and not presenting:
            st.selectbox("Switch to", ["—", *runs], key="switch_run", on_change=_switch_run,
                         args=(runs,))
        st.caption(f"Run directory: `{store.root}`")
        _job_queue()
        if auth.shows_logout():
            st.caption(f"Logged in as {auth.role().value}")
            st.button("Log out", on_click=auth.logout, icon=":material/logout:")


# --------------------------------------------------------------------------- cached loaders
@st.cache_resource(show_spinner=False, max_entries=4)
def load_pool(run_dir: str, token: str) -> pd.DataFrame:
    """The run's pool, one shared frame (cache_data would copy a million-row frame on every
    call, seconds per rerun): read it, never write into it."""
    return pipeline.load_run_pool(RunStore(run_dir))


@st.cache_data(show_spinner=False, max_entries=8)
def load_coords(run_dir: str, token: str) -> tuple[np.ndarray, str]:
    """The best map computed so far and its kind ("umap", or the quick "pca" placement)."""
    found = pipeline.map_coordinates(RunStore(run_dir), UMAPConfig())
    if found is None:
        raise MissingStageError(f"no map of {run_dir} yet: prepare the pool first")
    return found


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


TERM_ROWS = 100_000  # clusters' distinctive terms are counted on at most this many rows


@functools.lru_cache(maxsize=4)
def term_rows(n: int) -> np.ndarray:
    """The rows whose words are counted: all of a small pool, a seeded sample of a large one
    (counting words and bigrams of a million prompts takes minutes; the top terms of a cluster
    show as well in a sample). Drawn once per pool size (every new k reads it), read only."""
    rows = np.arange(n) if n <= TERM_ROWS else \
        np.sort(np.random.default_rng(0).choice(n, TERM_ROWS, replace=False))
    rows.setflags(write=False)
    return rows


@st.cache_resource(show_spinner=False, max_entries=4)
def load_term_counts(run_dir: str, token: str) -> TermCounts:
    prompts = load_pool(run_dir, token)["prompt"]
    return term_counts(prompts.iloc[term_rows(len(prompts))].tolist())


@st.cache_data(show_spinner=False, max_entries=64)
def load_terms(run_dir: str, token: str, k: int) -> list[list[str]]:
    labels, _ = load_labels(run_dir, token, k)
    terms = distinctive_terms(load_term_counts(run_dir, token), labels[term_rows(len(labels))])
    return terms + [[] for _ in range(k - len(terms))]  # a cluster the sample missed


@st.cache_data(show_spinner=False, max_entries=64)
def load_overview(run_dir: str, token: str, k: int) -> pd.DataFrame:
    """One row per cluster at k (`cluster_overview`), largest first."""
    labels, _ = load_labels(run_dir, token, k)
    overview = cluster_overview(load_pool(run_dir, token)["prompt"], labels,
                                load_quality(run_dir, token), load_terms(run_dir, token, k))
    return overview.sort_values("size", ascending=False)


@st.cache_data(show_spinner=False, max_entries=8)
def load_flagged(run_dir: str, token: str, clean_key: str) -> pd.DataFrame:
    """Per pool row (in pool order), whether the clean result `clean_key` flags it as a
    duplicate and as contaminated (the map's colour, the cluster table's columns)."""
    from selection_core.select import clean

    store = RunStore(run_dir)
    flags = clean.read_result(store.stage_dir(clean.CLEAN.name, clean_key)).flags
    ids = load_pool(run_dir, token)["id"].astype(str)
    return pd.DataFrame({
        "duplicate": ids.isin(flags.loc[flags["kind"].isin(clean.DUPLICATE_KINDS), "id"]),
        "contaminated": ids.isin(flags.loc[flags["kind"] == "contaminated", "id"])})


def current_flags(store: RunStore) -> pd.DataFrame | None:
    """`load_flagged` of the run's current clean result, or None when it has none."""
    from selection_core.select import clean

    result = clean.latest_clean(store)
    return None if result is None else \
        load_flagged(str(store.root), run_token(store), result.folder.name)


@dataclass(frozen=True)
class MapPoints:
    """The points a map view draws and all of them that do not change with k or colour: the
    pool rows (ascending), how many rows the view holds, their frame (x, y, row, id, prompt,
    source, quality) and hover texts. Shared by every rerun (cache_resource): read only."""

    rows: np.ndarray
    held: int
    frame: pd.DataFrame
    hover: MapHover


@st.cache_resource(show_spinner=False, max_entries=8)
def load_map_points(run_dir: str, token: str, window: MapWindow | None) -> MapPoints:
    """Built once per view: a k change only adds the cluster column and line (at 1M rows the
    rest took most of a k change's second)."""
    coords, _ = load_coords(run_dir, token)
    rows, held = visible_rows(coords, window, draw_priority(len(coords)))
    picked = load_pool(run_dir, token).iloc[rows]  # the drawn rows only, never whole columns
    frame = pd.DataFrame({"x": coords[rows, 0], "y": coords[rows, 1], "row": rows,
                          "id": picked["id"].to_numpy(), "prompt": picked["prompt"].to_numpy(),
                          "source": picked["source"].to_numpy(),
                          "quality": load_quality(run_dir, token)[rows]})
    return MapPoints(rows, held, frame, map_hover(frame))


@st.cache_data(show_spinner=False, max_entries=16)
def load_density(run_dir: str, token: str, window: MapWindow | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coords, _ = load_coords(run_dir, token)
    window = window or MapWindow.around(coords)
    return density_grid(coords[window.contains(coords)], window)


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


PAGE_ROWS = 100  # rows of a large table sent to the browser at once


def paged_table(frame: pd.DataFrame, key: str, height: int = 300,
                search: tuple[str, ...] = ("id", "prompt", "response"), **dataframe_args) -> None:
    """`frame` one page at a time, searched here (case-insensitive text in the `search`
    columns): the browser gets PAGE_ROWS rows, never a million-row frame."""
    search_col, page_col, count_col = st.columns([3, 1, 2], vertical_alignment="bottom")
    query = search_col.text_input("Search these rows", key=f"{key}_search",
                                  placeholder="text in " + ", ".join(
                                      c for c in search if c in frame.columns))
    shown = frame
    if query:
        mask = np.zeros(len(frame), dtype=bool)
        for column in (c for c in search if c in frame.columns):
            mask |= frame[column].astype(str).str.contains(query, case=False,
                                                           regex=False).to_numpy()
        shown = frame[mask]
    pages = max(1, -(-len(shown) // PAGE_ROWS))
    if st.session_state.get(f"{key}_page", 1) > pages:  # fewer pages after a new search
        st.session_state[f"{key}_page"] = pages
    page = int(page_col.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages,
                                     step=1, key=f"{key}_page"))
    start = (page - 1) * PAGE_ROWS
    stop = min(start + PAGE_ROWS, len(shown))
    count_col.caption(f"rows {start + 1 if len(shown) else 0:,}–{stop:,} of {len(shown):,}"
                      + (f" ({len(shown):,} of {len(frame):,} rows match “{query}”)"
                         if query else ""))
    st.dataframe(shown.iloc[start:stop], hide_index=True, height=height, **dataframe_args)


def export_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    return frame.to_csv(index=False).encode("utf-8")


def show_error(exc: SelectionError) -> None:
    st.error(str(exc), icon="⚠️")


def rationale_panel(row: pd.Series, why: Mapping[str, object], title: str | None = None) -> None:
    """One selected row's rationale (issue 16): the sentence, the numbers behind it, and the
    prompt and response it is about."""
    with st.container(border=True):
        st.markdown(f"**{title or row['id']}**")
        st.markdown(str(why["why"]))
        numbers = {k: v for k, v in why.items() if k != "why" and not pd.isna(v)}
        st.caption(" · ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                              for k, v in numbers.items()))
        prompt_col, response_col = st.columns(2)
        prompt_col.markdown("Prompt")
        prompt_col.text(str(row["prompt"]))
        response_col.markdown("Response")
        response_col.text(str(row["response"]))


def file_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")[:80]


def assets_path(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / name


if __name__ == "__main__":  # Streamlit runs this file as a page when /ui is the first request
    from pages import _ui  # the imported module, whose frame the pages check

    _ui.require_app_frame()
