"""Self-contained HTML reports (and PNG figures) for stakeholders.

A report is one HTML file: plotly.js is inlined once, every figure stays interactive, tables are
plain HTML, and the configuration and package versions are listed — it opens offline, in any
browser, years later. PNG export renders the same figures through kaleido (which drives a local
Chrome/Chromium; where none is installed the error says so).
"""
from __future__ import annotations

import html
import io
import threading
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..select import stages as pipeline
from ..spine.config import KMeansConfig, ScorerConfig, UMAPConfig
from ..spine.errors import ConfigError, InputError, SelectionError
from ..evaluate.base import read_jsonl, require
from ..spine.store import RunStore

TEMPLATE_PATH = Path(__file__).resolve().parent / "report_template.html"  # package data


@dataclass
class ReportSection:
    """A heading with optional prose, tables (caption, frame) and figures (name, figure)."""

    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)


def _table_html(frame: pd.DataFrame) -> str:
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return formatted.to_html(index=False, escape=True, border=0, classes="table")


def render_report(title: str, sections: Sequence[ReportSection],
                  metadata: Mapping[str, Any] | None = None) -> str:
    """The report as one HTML string (figures interactive, plotly.js inlined once)."""
    from plotly.offline import get_plotlyjs

    parts = []
    for number, section in enumerate(sections, start=1):
        parts.append(f'<section id="s{number}"><h2>{html.escape(section.title)}</h2>')
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for caption, frame in section.tables:
            parts.append(f"<figure class='tbl'><figcaption>{html.escape(caption)}</figcaption>"
                         f"{_table_html(frame)}</figure>")
        for _, figure in section.figures:
            parts.append(figure.to_html(full_html=False, include_plotlyjs=False,
                                        config={"displaylogo": False}))
        parts.append("</section>")
    toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>'
                  for i, s in enumerate(sections, start=1))
    meta_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in (metadata or {}).items())
    return Template(TEMPLATE_PATH.read_text(encoding="utf-8")).substitute(
        title=html.escape(title), generated=time.strftime("%Y-%m-%d %H:%M"), toc=toc,
        metadata=meta_rows, body="\n".join(parts), plotlyjs=get_plotlyjs())


_PNG_EXPORT = threading.Lock()  # kaleido's server is one per process


def figures_png_zip(figures: Mapping[str, go.Figure], width: int = 1200, scale: float = 2.0
                    ) -> bytes:
    """All figures as PNG files in one zip (kaleido; needs a local Chrome or Chromium).

    One kaleido server (one browser) renders them all: the browser starts once (seconds), each
    figure then takes a fraction of a second."""
    import kaleido

    buffer = io.BytesIO()
    with _PNG_EXPORT, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        try:
            kaleido.start_sync_server(silence_warnings=True)
            for name, figure in figures.items():
                with warnings.catch_warnings():  # "kopts ignored with a server": we pass none
                    warnings.simplefilter("ignore", UserWarning)
                    image = figure.to_image(format="png", width=width, scale=scale)
                archive.writestr(f"{_file_name(name)}.png", image)
        except Exception as exc:  # kaleido raises various errors when no browser is found
            raise SelectionError(
                f"PNG export failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "kaleido needs Chrome or Chromium installed (e.g. apt-get install chromium)"
            ) from None
        finally:
            kaleido.stop_sync_server(silence_warnings=True)
    return buffer.getvalue()


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_") or "figure"


@dataclass
class NamedSelection:
    """A selection as the app and reports see it: row positions, the config behind them and,
    when the method recorded one, each row's rationale (`select.rationale`; for an influence
    selection, `select.bids.explain_on_matrix`), one row per selected row in `rows`' order."""

    name: str
    rows: np.ndarray
    config: dict[str, Any]
    rationale: pd.DataFrame | None = None


RATIONALE_FIELDS = ("cluster", "cluster_size", "cluster_budget", "quality", "quality_rank",
                    "p_select", "p_select_kind", "p_select_draws", "round", "round_weight",
                    "round_budget", "order", "val_index", "task", "utility", "why")


def rationale_of(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The rationale fields a file of selected rows carries (None when it has no `why`)."""
    if "why" not in frame.columns:
        return None
    return frame[[c for c in RATIONALE_FIELDS if c in frame.columns]].reset_index(drop=True)


def describe_selection(config: Mapping[str, Any]) -> str:
    """A static selection's display name from its config (`SelectionConfig.to_dict()`), the
    same in the app and in reports: "kmq · k=8 · 300 rows · τ=1 · seed 0". Configs stored before
    issue 13 name the temperature and seed `tau` and `seed`."""
    method = config["method"]
    name = f"{method} · k={config['k']} · {config['budget']} rows"
    if method == "kmq":
        tau = config.get("sample_tau", config.get("tau"))
        name += f" · τ={float(tau):g}" + (" · top" if config.get("top") else "")
    if method in ("kmq", "kmeans-random", "random"):
        name += f" · seed {config.get('sample_seed', config.get('seed'))}"
    if config.get("scorer", "heuristic") != "heuristic":
        name += f" · {config['scorer']}"
    return name


def stored_selections(store: RunStore, pool: pd.DataFrame) -> dict[str, NamedSelection]:
    """The selections `select` saved in the run (`selections/<name>.csv`), by that name."""
    found = {}
    for stage, info in store.manifest()["stages"].items():
        path = store.path("selections", f"{stage.removeprefix('select:')}.csv")
        if stage.startswith("select:") and info.get("status") == "done" and path.exists():
            config = {**info["config"], "scorer_model": (info.get("scorer") or {}).get("model")}
            frame = pd.read_csv(path, dtype={"id": str})
            found[path.stem] = NamedSelection(describe_selection(config),
                                              row_positions(pool, frame["id"], path), config,
                                              rationale_of(frame))
    return found


def selection_from_file(path: str | Path, pool: pd.DataFrame) -> NamedSelection:
    """A selection given as a file of selected rows with an `id` field: the JSONL that `select
    --out` writes (.jsonl, .jsonl.gz) or a CSV."""
    path = Path(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        records = list(read_jsonl(path))
        if records and "id" not in records[0][1] and "row" in records[0][1]:
            return _explained_influence_selection(path, records, len(pool))
        ids = pd.Series([str(require(record, "id", (str, int), path, number))
                         for number, record in records], dtype=str)
        frame = pd.DataFrame([record for _, record in records])
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"id": str})
        if "id" not in frame.columns:
            raise InputError("a selection CSV needs an id column", path=str(path), field="id")
        ids = frame["id"]
    else:
        raise InputError("a selection file is .jsonl, .jsonl.gz or .csv with an id per row",
                         path=str(path))
    return NamedSelection(path.name.split(".")[0], row_positions(pool, ids, path),
                          {"file": str(path)}, rationale_of(frame))


def _explained_influence_selection(path: Path, records: list[tuple[int, dict[str, Any]]],
                                   n_rows: int) -> NamedSelection:
    """An `influence select --explain` file: pool row positions in selection order, each with
    what picked it."""
    rows = []
    for number, record in records:
        row = require(record, "row", int, path, number)
        if not 0 <= row < n_rows:
            raise InputError(f"row {row} is outside the run's pool of {n_rows} rows",
                             path=str(path), line=number, field="row")
        rows.append(row)
    frame = pd.DataFrame([record for _, record in records])
    return NamedSelection(path.name.split(".")[0], np.asarray(rows, dtype=np.int64),
                          {"file": str(path)}, rationale_of(frame))


def row_positions(pool: pd.DataFrame, ids: pd.Series, path: Path) -> np.ndarray:
    positions = pd.Index(pool["id"].astype(str)).get_indexer(ids)
    if (positions < 0).any():
        missing = ids[positions < 0].iloc[0]
        raise InputError(f"row id '{missing}' is not in the run's pool "
                         f"({int((positions < 0).sum())} of {len(ids)} ids missing)",
                         path=str(path), field="id")
    return positions.astype(np.int64)


def report_selections(store: RunStore, pool: pd.DataFrame,
                      wanted: Sequence[str] | None = None) -> list[NamedSelection]:
    """The selections a report covers: `wanted` names of selections saved in the run, or files
    of selected rows; by default every selection saved in the run."""
    saved = stored_selections(store, pool)
    if wanted is None:
        return list(saved.values())
    chosen = []
    for item in wanted:
        if item in saved:
            chosen.append(saved[item])
        elif Path(item).is_file():
            chosen.append(selection_from_file(item, pool))
        else:
            raise ConfigError(f"'{item}' is neither a selection saved in {store.root} (saved: "
                              f"{', '.join(saved) or 'none — run `select` first'}) nor a file")
    return chosen


def selection_sections(pool: pd.DataFrame, labels: np.ndarray, quality: np.ndarray,
                       selections: Sequence[NamedSelection]) -> list[ReportSection]:
    """Sections comparing selections: summary, composition, overlap, quality, configs."""
    from ..select.compare import jaccard_matrix, selection_summary
    from ..viz.figures import overlap_heatmap, quality_distribution, selection_composition

    if not selections:
        return [ReportSection("Selections", "No selection was run for this report.")]
    by_name = {s.name: s.rows for s in selections}
    configs = pd.DataFrame([{"selection": s.name, **s.config} for s in selections])
    sections = [
        ReportSection("Selections compared", tables=[
            ("One row per selection; the last row is the whole pool.",
             selection_summary(pool, by_name, labels, quality)),
            ("How each selection was made.", configs)]),
        ReportSection("Composition", figures=[
            ("composition_by_cluster", selection_composition(labels, by_name, by="cluster")),
            ("composition_by_source", selection_composition(pool["source"], by_name,
                                                            by="source"))]),
    ]
    figures = [("quality_distribution", quality_distribution(quality, by_name))]
    if len(selections) > 1:
        figures.insert(0, ("overlap", overlap_heatmap(jaccard_matrix(by_name))))
    sections.append(ReportSection("Overlap and quality", figures=figures))
    return sections


def how_chosen_section(pool: pd.DataFrame, selection: NamedSelection,
                       examples: int = 5) -> ReportSection:
    """"How the subset was chosen" (issue 16): the method and its parameters, the budget per
    cluster (kMQ family) or per task (influence selections), and `examples` rows with their
    rationale — the numbers the method computed, as recorded with the selection."""
    from ..select.rationale import cluster_budget_table, example_positions, task_budget_table, \
        tasks_served_over_order
    from ..select.registry import description
    from ..viz.rationale import budget_vs_pool_share, tasks_served

    config = selection.config
    method = config.get("method") or ("iterative" if selection.rationale is not None and
                                      "round" in selection.rationale.columns else None)
    parameters = ", ".join(f"{key}={value}" for key, value in config.items()
                           if value is not None and key != "method")
    text = (f"Method: {method} — {description(method)}. " if method else
            "Method: not recorded with this file. ") + f"Parameters: {parameters}."
    section = ReportSection(f"How the subset was chosen — {selection.name}", text)
    why = selection.rationale
    if why is None:
        section.text += (" This selection carries no per-row rationale (a file of ids, or saved "
                         "before rationales were recorded): run `select` again to record one.")
        return section
    if "cluster_budget" in why.columns:
        table = cluster_budget_table(why, len(pool))
        section.tables.append((f"Budget per cluster: {len(table)} clusters contribute "
                               f"{int(table['budget'].sum())} rows", table))
        section.figures.append((f"budget_by_cluster_{_file_name(selection.name)}",
                                budget_vs_pool_share(table)))
    elif "task" in why.columns and why["task"].notna().any():
        section.tables.append(("Picks per task", task_budget_table(why)))
        section.figures.append((f"tasks_served_{_file_name(selection.name)}",
                                tasks_served(tasks_served_over_order(why))))
    picked = example_positions(why, examples)
    rows = selection.rows[picked]
    sample = pd.DataFrame({"id": pool["id"].iloc[rows].to_numpy(),
                           "prompt": [_clip(t) for t in pool["prompt"].iloc[rows]],
                           "response": [_clip(t) for t in pool["response"].iloc[rows]],
                           "why": why["why"].iloc[picked].to_numpy()})
    section.tables.append((f"{len(sample)} example rows and why each was chosen", sample))
    return section


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_report(store: RunStore, kmeans: KMeansConfig, scorer: ScorerConfig,
               selections: Sequence[NamedSelection], umap_config: UMAPConfig = UMAPConfig(),
               title: str | None = None) -> tuple[str, dict[str, go.Figure]]:
    """The report of a run at one k: pool, choice of k, clusters, selections.

    Returns the HTML and the figures by name (for PNG export).
    """
    from ..cluster.terms import cluster_overview, distinctive_terms, term_counts
    from ..viz.figures import cluster_bars, cluster_map, k_sweep_figure, length_histograms, \
        source_counts

    pool = pipeline.load_run_pool(store)
    clustering = pipeline.cluster(store, kmeans, write_table=False)
    scores = pipeline.quality(store, scorer)
    coords = pipeline.projection(store, umap_config)
    labels = clustering.labels
    terms = distinctive_terms(term_counts(pool["prompt"].tolist()), labels)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "id": pool["id"],
                          "prompt": pool["prompt"], "cluster": labels, "source": pool["source"],
                          "quality": scores})
    sections = [ReportSection(
        "The pool", f"{len(pool)} rows from {pool['source'].nunique()} source(s).",
        figures=[("rows_by_source", source_counts(pool["source"])),
                 ("lengths", length_histograms(pool))])]
    if pipeline.has_sweep(store):
        table, recommended, knee = pipeline.load_sweep(store)
        sections.append(ReportSection(
            "Choosing k", f"Silhouette optimum (recommended): k={recommended}; knee of the "
                          f"inertia curve: k={knee}; chosen for this report: k={kmeans.k}.",
            tables=[("k sweep", table)],
            figures=[("k_sweep", k_sweep_figure(table, recommended, knee))]))
    overview = cluster_overview(pool["prompt"].tolist(), labels, scores, terms)
    sections.append(ReportSection(
        f"Clusters (k={kmeans.k})", "The map is a 2-D UMAP projection of the embeddings; "
                                    "hover a point to read its prompt.",
        tables=[("Clusters, largest first", overview.sort_values("size", ascending=False))],
        figures=[("cluster_map", cluster_map(frame, "cluster", title="Clusters")),
                 ("cluster_sizes", cluster_bars(labels, scores))]))
    sections.extend(selection_sections(pool, labels, scores, selections))
    sections.extend(how_chosen_section(pool, selection) for selection in selections)
    embed = store.stage_info("embed") or {}
    metadata = {"run directory": store.root, "rows": len(pool),
                "embedding model": (embed.get("config") or {}).get("model", "?"),
                "text embedded": (embed.get("config") or {}).get("text", "?"),
                "k-means": kmeans.to_dict(), "quality scorer": scorer.to_dict(),
                "versions": store.manifest().get("versions", {})}
    figures = {name: fig for section in sections for name, fig in section.figures}
    return render_report(title or f"Data selection report — {store.root.name}", sections,
                         metadata), figures
