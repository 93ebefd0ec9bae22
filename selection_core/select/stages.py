"""Stages of the diversity pipeline over one run directory: pool → embeddings → clusters → scores
→ selection. The pool and its embedding are the run's inputs (one of each, fingerprinted);
k-means, UMAP and quality scores are stages of the one runner (`runner.py`), keyed by their
config and the fingerprint of what they read (the embedding's key, the pool's content), so
nothing is computed twice — not by the CLI, not by the app — and nothing stale is returned.
`prepare` is the composite stage the app's preparation job runs.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..cluster.kmeans import FaissKMeans
from ..cluster.projection import pca_2d, umap_2d
from ..cluster.sweep import SweepResult, knee_point, recommend_k, sweep_k
from ..spine import runner
from ..spine.config import EmbedConfig, HashedConfig, KMeansConfig, ScorerConfig, SelectionConfig, \
    SweepConfig, UMAPConfig
from ..data.loaders import FINGERPRINT_KEY, DataSpec, IngestLimits, fingerprint, ingest_pool, \
    pool_texts
from ..spine.errors import ConfigError, MissingStageError, StaleStageError
from ..features.embed import embed_texts, embedding_cache_key
from ..features.vectors import import_vectors
from ..quality.scorers import loaded_scorer, make_scorer, score_shard
from ..scale import ScaleConfig, ShardedArray, run_shards
from .kmq import select_static
from ..spine.progress import Progress, fan_out
from ..spine.runner import Stage, StageContext
from ..spine.store import RunStore, atomic_path, chunked_compute, now_text, read_json, read_npy, \
    write_csv, write_json, write_jsonl, write_npy

POOL = "pool.parquet"
EMBEDDINGS = "embeddings.npy"
SWEEP = "sweep.csv"


# --------------------------------------------------------------------------- pool
def ingest(store: RunStore, inputs: Sequence[str | DataSpec], limit: int | None = None,
           limits: IngestLimits = IngestLimits(), vectors: str | Path | None = None,
           vectors_column: str | None = None) -> pd.DataFrame:
    """Stream the inputs into the run's pool (bounded memory; see `IngestLimits`).

    The run's record of its pool changes only when the new pool is in place: a failed load
    leaves the previous pool and its record as they were, and notes the failure beside them.
    With `vectors` (`embed --data … --vectors …`) the pool and its imported embeddings are one
    change: the pool is staged beside the run's until the vectors are checked and written, so
    a bad vectors file leaves the run's pool, embeddings and records as they were (issue 29).
    """
    config = {"inputs": [str(i) for i in inputs], "limit": limit,
              "max_rows": limits.max_rows, "max_line_bytes": limits.max_line_bytes}
    started = time.time()
    with store.lock("ingest"):
        try:
            with atomic_path(store.path(POOL), suffix=".parquet") as staged:
                summary = ingest_pool(inputs, staged, limit=limit, limits=limits)
                if vectors is not None:
                    imported = import_vectors(vectors, store.path(EMBEDDINGS), summary.rows,
                                              summary.fingerprint, vectors_column)
        except BaseException as exc:
            store.set_stage("pool", last_failure={"config": config, "time": now_text(),
                                                  "error": f"{type(exc).__name__}: {exc}"})
            raise
        store.set_stage("pool", status="done", config=config, started=now_text(started),
                        finished=now_text(), seconds=round(time.time() - started, 3), error=None,
                        last_failure=None, rows=summary.rows, fingerprint=summary.fingerprint,
                        sources=summary.sources)
        if vectors is not None:
            _record_vectors(store, vectors, vectors_column, imported, summary.rows,
                            summary.fingerprint, time.time() - started)
    return load_run_pool(store)


def ingest_demo(store: RunStore, n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Generate the demo pool into the run's inputs and load it as the run's pool."""
    from ..data.demo import write_demo_pool

    data = write_demo_pool(store.path("inputs", f"demo-n{n}-s{seed}.jsonl"), n=n, seed=seed)
    return ingest(store, [f"demo={data}"])


def has_pool(store: RunStore) -> bool:
    return store.exists(POOL)


def pool_version(store: RunStore) -> str | None:
    """Changes whenever the run's pool file is replaced (a cache token for the app); None
    while there is no pool."""
    return str(store.path(POOL).stat().st_mtime_ns) if has_pool(store) else None


def load_run_pool(store: RunStore) -> pd.DataFrame:
    """The run's pool, checked against the run's record of it."""
    path = _checked_pool_path(store)
    return pd.read_parquet(path)


def run_pool_fingerprint(store: RunStore) -> str:
    """The content fingerprint of the run's pool.parquet, from its metadata (cheap)."""
    path = store.require(POOL, hint="load data first with `embed --data FILE --run DIR`")
    value = (pq.read_schema(path).metadata or {}).get(FINGERPRINT_KEY)
    return value.decode() if value else pool_fingerprint(pd.read_parquet(path))  # older runs


def _checked_pool_path(store: RunStore) -> Path:
    path = store.require(POOL, hint="load data first with `embed --data FILE --run DIR`")
    recorded = (store.stage_info("pool") or {}).get("fingerprint")
    if recorded and run_pool_fingerprint(store) != recorded:
        raise StaleStageError(f"{path} is not the pool this run recorded (another process "
                              "replaced it?); load the data again with `embed --data FILE "
                              f"--run {store.root}`")
    return path


def pool_fingerprint(pool: pd.DataFrame) -> str:
    return fingerprint(f"{i}\x1f{p}\x1f{r}" for i, p, r in
                       zip(pool["id"], pool["prompt"], pool["response"], strict=True))


# --------------------------------------------------------------------------- embeddings
def embed(store: RunStore, config: EmbedConfig, cache_dir: str | Path | None = None,
          progress: Progress | None = None, scale: ScaleConfig | None = None) -> np.ndarray:
    """Embed the pool (cached by content + model + text field + pooling) into embeddings.npy;
    on Ray workers with `scale.ray`."""
    with store.lock("embed"):
        pool = load_run_pool(store)
        pool_key = run_pool_fingerprint(store)
        texts = pool_texts(pool, config.text)
        content = fingerprint(texts)
        key = embedding_cache_key(config, content)
        with store.stage("embed", config.to_dict(), config.config_hash()) as info:
            started = time.perf_counter()
            vectors = embed_texts(texts, config, content, cache_dir=cache_dir, progress=progress,
                                  scale=scale)
            seconds = time.perf_counter() - started
            write_npy(store.path(EMBEDDINGS), vectors)
            info.update(key=key, rows=len(vectors), dim=int(vectors.shape[1]),
                        pool_fingerprint=pool_key, embed_seconds=round(seconds, 3),
                        rows_per_second=round(len(vectors) / max(seconds, 1e-9), 1))
    return vectors


def embed_vectors(store: RunStore, source: str | Path, column: str | None = None) -> int:
    """Import precomputed vectors as the run's embeddings (issue 15 §1; `features.vectors`).
    Checked and written before the stage is recorded: a bad file leaves the run as it was."""
    with store.lock("embed"):
        _checked_pool_path(store)
        pool_key = run_pool_fingerprint(store)
        rows = int((store.stage_info("pool") or {}).get("rows") or len(load_run_pool(store)))
        started = time.perf_counter()
        imported = import_vectors(source, store.path(EMBEDDINGS), rows, pool_key, column)
        _record_vectors(store, source, column, imported, rows, pool_key,
                        time.perf_counter() - started)
    return rows


def _record_vectors(store: RunStore, source: str | Path, column: str | None,
                    imported: tuple[str, int], rows: int, pool_key: str, seconds: float) -> None:
    """The embed stage's record of imported vectors (`import_vectors`' key and dimension)."""
    key, dim = imported
    with store.stage("embed", {"vectors": str(source), "column": column}, key) as info:
        info.update(key=key, rows=rows, dim=dim, pool_fingerprint=pool_key,
                    embed_seconds=round(seconds, 3))


def embedding_key(store: RunStore) -> str:
    """The key of the run's embeddings, once checked to be of the pool the run holds now."""
    info = store.stage_info("embed")
    if not info or info.get("status") != "done":
        raise MissingStageError(f"no embeddings in {store.root}: run `python -m selection_core "
                                f"embed --data FILE --run {store.root}` first")
    recorded = info.get("pool_fingerprint")
    if recorded and recorded != run_pool_fingerprint(store):
        raise StaleStageError(f"the embeddings in {store.root} were computed from another pool "
                              f"than it holds now; run `python -m selection_core embed --run "
                              f"{store.root}` again")
    return str(info["key"])


def load_embeddings(store: RunStore) -> np.ndarray:
    """The run's embeddings as a read-only memmap: a million-row pool is read page by page by
    the chunked k-means / sweep / map, never copied whole (1.5 GB at 1M × 384 float32)."""
    key = embedding_key(store)
    vectors = read_npy(store.path(EMBEDDINGS), mmap=True)
    rows = (store.stage_info("embed") or {}).get("rows")
    if rows is not None and len(vectors) != rows:
        raise StaleStageError(f"{store.path(EMBEDDINGS)} holds {len(vectors)} rows, not the "
                              f"{rows} its embedding ({key[:10]}) recorded; run `embed --run "
                              f"{store.root}` again")
    return vectors


# --------------------------------------------------------------------------- clustering
@dataclass
class Clustering:
    """One k-means result over the run's embeddings."""

    config: KMeansConfig
    labels: np.ndarray
    centroids: np.ndarray
    distances: np.ndarray  # each row to its own centroid
    inertia: float

    @property
    def k(self) -> int:
        return self.config.k


def _embedding_input(store: RunStore, config: Any) -> dict[str, Any]:
    return {"embedding": embedding_key(store)}


@dataclass(frozen=True)
class ClusterResources:
    """Speed only, never in the key: the model a sweep fitted under this very config."""

    fitted: FaissKMeans


def _run_cluster(ctx: StageContext, config: KMeansConfig, progress: Progress) -> dict[str, Any]:
    """k-means on the run's embeddings, or the model a sweep fitted (`ClusterResources`)."""
    model = ctx.resources.fitted if ctx.resources else FaissKMeans.from_config(config).fit(
        load_embeddings(ctx.store))
    write_npy(ctx.folder / "labels.npy", model.labels_)
    write_npy(ctx.folder / "centroids.npy", model.cluster_centers_)
    write_npy(ctx.folder / "distances.npy", model.distances_)
    return {"k": config.k, "inertia": float(model.inertia_), "used_gpu": model.used_gpu_}


CLUSTER = runner.register(Stage("cluster", KMeansConfig, _run_cluster, _embedding_input,
                                resources=ClusterResources))


def _clustering(folder: Path, config: KMeansConfig) -> Clustering:
    return Clustering(config, read_npy(folder / "labels.npy"), read_npy(folder / "centroids.npy"),
                      read_npy(folder / "distances.npy"),
                      read_json(folder / runner.RECORD)["summary"]["inertia"])


def cached_clustering(store: RunStore, config: KMeansConfig) -> Clustering | None:
    folder = runner.finished(store, CLUSTER, config)
    return None if folder is None else _clustering(folder, config)


def cluster(store: RunStore, config: KMeansConfig, write_table: bool = True) -> Clustering:
    """k-means at one k (reusing a sweep's or an earlier run's result); writes clusters.csv."""
    clustering = _clustering(runner.run(store, CLUSTER, config), config)
    if write_table:
        pool = load_run_pool(store)
        write_csv(store.path("clusters.csv"), pd.DataFrame({"id": pool["id"],
                                                            "cluster": clustering.labels}))
    return clustering


def sweep(store: RunStore, config: SweepConfig, progress: Progress | None = None) -> SweepResult:
    """k sweep into sweep.csv (+ sweep.json with the recommendation); every k's clustering is
    cached so choosing any swept k afterwards is instant."""
    with store.stage("sweep", config.to_dict(), config.config_hash()) as info:
        result = sweep_k(load_embeddings(store), config, progress=progress,
                         fitted=lambda k, model: runner.run(store, CLUSTER, config.kmeans(k),
                                                            ClusterResources(model)))
        write_csv(store.path(SWEEP),
                  result.table[["k", "inertia", "silhouette", "simplified_silhouette", "seconds"]])
        write_json(store.path("sweep.json"), {"recommended_k": result.recommended_k,
                                              "knee_k": result.knee_k,
                                              "config": config.to_dict()})
        info.update(recommended_k=result.recommended_k, knee_k=result.knee_k)
    return result


def has_sweep(store: RunStore) -> bool:
    return store.exists(SWEEP)


def load_sweep(store: RunStore) -> tuple[pd.DataFrame, int, int | None]:
    table = pd.read_csv(store.require(SWEEP, hint="run `sweep --run DIR --k 2,4,8,16`"))
    summary = read_json(store.path("sweep.json")) if store.exists("sweep.json") else {}
    recommended = summary.get("recommended_k", recommend_k(table))
    knee = summary.get("knee_k", knee_point(table["k"], table["inertia"]))
    return table, int(recommended), knee


# --------------------------------------------------------------------------- UMAP
def _run_umap(ctx: StageContext, config: UMAPConfig, progress: Progress) -> dict[str, Any]:
    write_npy(ctx.folder / "coords.npy", umap_2d(load_embeddings(ctx.store), config))
    return {}


UMAP = runner.register(Stage("umap", UMAPConfig, _run_umap, _embedding_input))


def projection(store: RunStore, config: UMAPConfig = UMAPConfig()) -> np.ndarray:
    """2-D UMAP coordinates, computed once per embedding and UMAP config."""
    return read_npy(runner.run(store, UMAP, config) / "coords.npy")


# --------------------------------------------------------------------------- quality
def _pool_input(store: RunStore, config: Any) -> dict[str, Any]:
    _checked_pool_path(store)
    return {"pool": run_pool_fingerprint(store)}


def _run_quality(ctx: StageContext, config: ScorerConfig, progress: Progress) -> dict[str, Any]:
    """Scores per chunk of rows (LM scorers: 512), saved as they finish so an interrupted
    scoring run resumes."""
    pool = load_run_pool(ctx.store)
    scorer = make_scorer(config)
    prompts, responses = pool["prompt"].tolist(), pool["response"].tolist()
    chunk = len(pool) if config.name == "heuristic" else 512
    if ctx.resources is not None:  # the same chunk files, computed on Ray workers
        scale = ctx.resources.scale
        run_shards({"quality": ShardedArray(ctx.folder / "chunks",
                                            {"prompts": prompts, "responses": responses}, chunk)},
                   loaded_scorer, (replace(config, device=scale.worker_device),), score_shard,
                   scale, progress)
    scores = chunked_compute(ctx.folder / "chunks", len(pool), chunk,
                             lambda a, b: scorer.score(prompts[a:b], responses[a:b]), progress)
    if not np.isfinite(scores).all():
        raise ConfigError(f"the {config.name} scorer returned non-finite scores")
    write_npy(ctx.folder / "scores.npy", scores.astype(np.float64))
    return {"mean": float(scores.mean()), "std": float(scores.std())}


@dataclass(frozen=True)
class QualityResources:
    """Speed only, never in the key: score the same chunks on Ray workers."""

    scale: ScaleConfig


QUALITY = runner.register(Stage("quality", ScorerConfig, _run_quality, _pool_input,
                                resumable=True, record=lambda config: f"quality:{config.name}",
                                resources=QualityResources))


def has_quality(store: RunStore, config: ScorerConfig) -> bool:
    """The scorer's scores of the run's pool are computed (computes nothing)."""
    return runner.finished(store, QUALITY, config) is not None


def quality(store: RunStore, config: ScorerConfig, progress: Progress | None = None,
            scale: ScaleConfig | None = None) -> np.ndarray:
    """Quality scores for every pool row (one stage key per scorer config and pool content;
    on Ray workers with `scale.ray`: speed only, the same chunks and key)."""
    resources = QualityResources(scale) if scale is not None and scale.enabled else None
    return read_npy(runner.run(store, QUALITY, config, progress, resources) / "scores.npy")


# --------------------------------------------------------------------------- selection
def parse_budget(text: str | int, n_rows: int, size: str = "the pool size") -> int:
    """`500` rows or `10%` of the pool; a clear error when it does not fit the pool (`size`:
    how the message names the row count)."""
    value = str(text).strip()
    try:
        budget = round(float(value[:-1]) / 100 * n_rows) if value.endswith("%") else int(value)
    except (ValueError, OverflowError):  # round(inf) overflows, round(nan) is a ValueError
        raise ConfigError(f"budget '{text}' is neither a count nor a finite percentage") \
            from None
    if not 1 <= budget <= n_rows:
        given = f"{value} ({budget} rows)" if value.endswith("%") else str(budget)
        raise ConfigError(f"budget {given} must be between 1 and {size} ({n_rows})")
    return budget


@dataclass(frozen=True)
class Exclusion:
    """The pool rows a selection may not use (`clean.exclusion` makes one from the run's clean
    result): a mask of the available rows, one sentence saying how many rows were excluded and
    why (the rationale and the results tables show it), and the benchmarks the pool was
    decontaminated against (empty: it was not)."""

    available: np.ndarray
    text: str
    benchmarks: tuple[str, ...] = ()

    @classmethod
    def nothing(cls, n_rows: int) -> Exclusion:
        return cls(np.ones(n_rows, dtype=bool), "the pool was not cleaned: no rows excluded")


def select_rows(store: RunStore, config: SelectionConfig, kmeans: KMeansConfig,
                scorer: ScorerConfig, exclude: Exclusion | None = None
                ) -> tuple[np.ndarray, Clustering, np.ndarray]:
    """Row positions of one static selection, with the clustering and scores it used; the
    rows `exclude` marks unavailable (flagged by `clean`) are left out."""
    rows, clustering, scores, _ = _select_available(store, config, kmeans, scorer, exclude)
    return rows, clustering, scores


def _select_available(store: RunStore, config: SelectionConfig, kmeans: KMeansConfig,
                      scorer: ScorerConfig, exclude: Exclusion | None
                      ) -> tuple[np.ndarray, Clustering, np.ndarray,
                                 tuple[Exclusion, np.ndarray, np.ndarray]]:
    """`select_rows`, and what the rationale needs: the exclusion, the available rows and the
    chosen positions among them."""
    pool = load_run_pool(store)
    n = len(pool)
    config.check_clustering(kmeans.k)
    if not 1 <= config.k <= n:
        raise ConfigError(f"k must be between 1 and the pool size ({n}), got {config.k}")
    if not 1 <= config.budget <= n:
        raise ConfigError(f"budget {config.budget} must be between 1 and the pool size ({n})")
    excluded = exclude or Exclusion.nothing(n)
    if len(excluded.available) != n:
        raise StaleStageError(f"the exclusion covers {len(excluded.available)} rows, the pool "
                              f"{n}: clean the run's current pool again")
    available = np.flatnonzero(excluded.available)
    if config.budget > len(available):
        raise ConfigError(f"budget {config.budget} is larger than the {len(available)} rows "
                          f"left after cleaning ({excluded.text}); lower it or keep the "
                          "flagged rows (--keep)")
    clustering = cluster(store, kmeans, write_table=False)
    scores = quality(store, scorer)
    chosen = select_static(config, clustering.labels[available], scores[available],
                           clustering.distances[available])
    return available[chosen], clustering, scores, (excluded, available, chosen)


def selected_frame(pool: pd.DataFrame, rows: np.ndarray, labels: np.ndarray,
                   scores: np.ndarray, rationale: pd.DataFrame | None = None) -> pd.DataFrame:
    """The selected pool rows with their `cluster` and `quality` (the JSONL/CSV export shape),
    and the rationale's fields when given (`select.rationale`, one row per selected row)."""
    selected = pool.iloc[rows].copy()
    selected["cluster"] = labels[rows]
    selected["quality"] = scores[rows]
    if rationale is not None:
        for column in rationale.columns.drop(["row", "cluster", "quality"], errors="ignore"):
            selected[column] = rationale[column].to_numpy()
    return selected


def select(store: RunStore, config: SelectionConfig, kmeans: KMeansConfig,
           scorer: ScorerConfig, out: str | Path | None = None,
           exclude: Exclusion | None = None) -> pd.DataFrame:
    """Run one static selection; returns (and optionally writes as JSONL) the selected rows with
    their `cluster`, `quality` and rationale (`select.rationale.static_rationale`, computed on
    the rows left after cleaning; each `why` ends with what was excluded and why)."""
    from .rationale import static_rationale

    rows, clustering, scores, (excluded, available, chosen) = _select_available(
        store, config, kmeans, scorer, exclude)
    rationale = static_rationale(config, clustering.labels[available], scores[available],
                                 clustering.distances[available], chosen)
    rationale["why"] = rationale["why"] + f"; {excluded.text}"
    selected = selected_frame(load_run_pool(store), rows, clustering.labels, scores, rationale)
    if out is not None:
        write_jsonl(out, selected.to_dict(orient="records"))
    name = f"{config.method}-{config.config_hash()}"
    write_csv(store.path("selections", f"{name}.csv"),
              selected[["id", *rationale.columns]])
    store.set_stage(f"select:{name}", status="done", config=config.to_dict(),
                    kmeans=kmeans.to_dict(), scorer=scorer.to_dict(), rows=len(rows),
                    excluded=int(len(excluded.available) - len(available)),
                    exclusion=excluded.text, decontaminated=list(excluded.benchmarks))
    return selected


# --------------------------------------------------------------------------- everything the app shows
K_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)


def default_ks(n_rows: int) -> tuple[int, ...]:
    """The k values swept when nobody asks for specific ones: up to n/20 (at least 20 rows per
    cluster on average), at most 256."""
    upper = max(2, min(256, n_rows // 20))
    return tuple(k for k in K_GRID if k <= min(upper, n_rows - 1))


def quick_map_path(store: RunStore) -> Path:
    return store.path("quick_map", f"{embedding_key(store)[:10]}.npy")


def quick_map(store: RunStore) -> np.ndarray:
    """The instant 2-D placement (PCA) of the current embeddings, cached; the app shows it until
    the UMAP map is ready."""
    path = quick_map_path(store)
    if path.exists():
        return read_npy(path)
    with store.stage("quick_map", {"method": "pca"}):
        coords = pca_2d(load_embeddings(store))
        write_npy(path, coords)
    return coords


def map_kind(store: RunStore, config: UMAPConfig = UMAPConfig()) -> str | None:
    """Which map of the current embeddings is computed: "umap", else "pca" (`quick_map`), else
    None. Computes nothing, so the app can ask while a preparation job is running."""
    info = store.stage_info("embed")
    if not info or info.get("status") != "done":
        return None
    if runner.finished(store, UMAP, config) is not None:
        return "umap"
    return "pca" if quick_map_path(store).exists() else None


def map_coordinates(store: RunStore, config: UMAPConfig = UMAPConfig()
                    ) -> tuple[np.ndarray, str] | None:
    """The best map already computed (`map_kind`) and its kind, or None; computes nothing."""
    kind = map_kind(store, config)
    if kind is None:
        return None
    return (projection(store, config) if kind == "umap" else quick_map(store)), kind


FIRST_PASS_MAX_K = 32
PREPARE_STEPS = ("embed", "quality", "sweep", "quick_map", "sweep_rest", "umap")


def first_pass_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The k values swept first: the common small ones, powers of two up to FIRST_PASS_MAX_K.

    k-means costs grow with k (the 3000-row demo: these 5 of its 16 k take a quarter to a third
    of the sweep's time), so they give the first curves and a recommended k within seconds."""
    ks = tuple(sorted(set(int(k) for k in ks)))
    return tuple(k for k in ks if k <= FIRST_PASS_MAX_K and k & (k - 1) == 0) or ks[:1]


def prepare(store: RunStore, embed_config: EmbedConfig = EmbedConfig(),
            ks: Sequence[int] | None = None, umap_config: UMAPConfig = UMAPConfig(),
            scorer: ScorerConfig = ScorerConfig(), cache_dir: str | Path | None = None,
            progress: Progress | None = None) -> None:
    """Embed, score, sweep k and map the run's pool — all the app needs to show it, soonest first.

    The steps (PREPARE_STEPS) are ordered so the app can show the pool early: after the first
    four — embeddings, quality scores, the sweep's first pass (`first_pass_ks`) and the instant
    PCA placement — it draws the map, the curves and the clusters; the full sweep
    (which settles the recommended k) and the UMAP map then replace the partial curves and the
    placement. The final files are those of a one-pass preparation (the full sweep refits the
    first pass's k — a second or two, in the background — so sweep.csv comes from one run).

    `progress(done, total, step)` is called per row (embedding), per k (sweep) or per map, with
    the step's name as its message; the overall step is written to `progress/prepare.json`.
    """
    n_rows = len(load_run_pool(store))
    ks = tuple(ks) if ks else default_ks(n_rows)
    first = first_pass_ks(ks)

    def step(name: str) -> Progress:
        store.write_progress("prepare", PREPARE_STEPS.index(name), len(PREPARE_STEPS), name)
        per_stage = store.progress_callback(name)

        return fan_out(per_stage, (lambda done, total, message="": progress(done, total, name))
                       if progress else None)

    with store.lock("prepare"):
        embed(store, embed_config, cache_dir=cache_dir, progress=step("embed"))
        quality(store, scorer, progress=step("quality"))
        sweep(store, SweepConfig(ks=first), progress=step("sweep"))
        step("quick_map")
        quick_map(store)
        if set(first) != set(ks):
            sweep(store, SweepConfig(ks=ks), progress=step("sweep_rest"))
        umap_progress = step("umap")
        umap_progress(0, 1)
        projection(store, umap_config)
        umap_progress(1, 1)
    store.write_progress("prepare", len(PREPARE_STEPS), len(PREPARE_STEPS), "done")


@dataclass(frozen=True)
class PrepareConfig(HashedConfig):
    """What the app's preparation job does: load a pool (the demo's `demo_n` rows of
    `demo_seed`, or `data` inputs; neither: the run's pool), then `prepare` it."""

    demo_n: int | None = None
    demo_seed: int = 0
    data: tuple[str, ...] = ()
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    ks: tuple[int, ...] = ()  # empty: `default_ks` of the pool's size


def _run_prepare(ctx: StageContext, config: PrepareConfig, progress: Progress) -> dict[str, Any]:
    if config.demo_n is not None:
        ingest_demo(ctx.store, n=config.demo_n, seed=config.demo_seed)
    elif config.data:
        ingest(ctx.store, list(config.data))
    prepare(ctx.store, config.embed, ks=config.ks or None, progress=progress)
    return {}


PREPARE = runner.register(Stage("prepare", PrepareConfig, _run_prepare, composite=True))
