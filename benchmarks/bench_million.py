"""A million rows on one machine (issue 15 §3): every stage after embedding on a 1M × 384 pool.

Generates a pool with known cluster structure (unit vectors around `--clusters` centres of
Dirichlet-distributed sizes, MiniLM's shape), then runs in one process, timing each stage and
its peak RSS (the kernel's high-water mark, reset before each stage through /proc/self/clear_refs):

  pool      ingest of the pool's text rows (JSONL → pool.parquet), the stage `--vectors` needs
  vectors   `embed --vectors` import of the .npy (checked, fingerprinted, written as float32)
  sweep     the k sweep over `--ks` (exact silhouette on 10,000 rows, simplified on all)
  cluster   k-means at `--k`; NMI against the generating clusters
  kmq       kMQ at 10 % of the pool
  map       UMAP fitted on `UMAPConfig.fit_rows` rows, every other row placed by its neighbours

`--clean` then times each test of the clean stage (issue 26) on `--clean-rows` rows (default: the
pool's n) of 60 random words each, 1% of them exact and 1% near copies: exact, near (MinHash
LSH), semantic (SemDeDup's k-means and in-cluster comparison, on the vectors), the 8-gram check
against the nine benchmarks' local items, and the paraphrase search (random item vectors of the
pool's dimension: the search's cost, not its findings).

`--compare-placement` then places `--compare-rows` of the other rows both ways — UMAP's
`transform` and the nearest-neighbour placement — and prints rows/s for each and how faithful
each map is: the share of placed rows whose nearest fitted point on the map is of the row's own
generating cluster (the same share for fitted points, against the other fitted points, is the
ceiling a placement can reach).

k-means runs `--niter` iterations and `--nredo` restarts (faiss' defaults, 20 and 1): the
paper's 300 × 5 costs 75× the training time (the assignment of all rows is the same).

    python benchmarks/bench_million.py [--n 1000000] [--compare-placement]
    python benchmarks/bench_million.py --quick      # 100K × 64, small sweep: CI (tests/)
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selection_core.select import stages as pipeline  # noqa: E402
from selection_core.spine import runner
from selection_core.cluster import FaissKMeans, sweep_k  # noqa: E402
from selection_core.cluster.projection import fit_map_sample  # noqa: E402
from selection_core.spine.config import SweepConfig, UMAPConfig  # noqa: E402
from selection_core.spine.runner import Stage, StageContext  # noqa: E402
from selection_core.select.kmq import kmq_select  # noqa: E402
from selection_core.spine.store import RunStore, write_npy  # noqa: E402

CHUNK = 65_536


def make_pool(folder: Path, n: int, dim: int, clusters: int, seed: int = 0
              ) -> tuple[Path, Path, np.ndarray]:
    """(pool JSONL, vectors .npy, generating cluster of each row), written chunk by chunk."""
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(clusters, 2.0))  # unequal clusters, none tiny
    truth = rng.choice(clusters, size=n, p=sizes).astype(np.int64)
    # centres spread as at d = 384 whatever the dimension: the same separation, relative to noise
    means = rng.normal(scale=0.5 * np.sqrt(384 / dim), size=(clusters, dim)).astype(np.float32)
    vectors = folder / "vectors.npy"
    out = np.lib.format.open_memmap(vectors, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        block = means[truth[start:start + CHUNK]] + rng.normal(
            size=(len(truth[start:start + CHUNK]), dim)).astype(np.float32)
        out[start:start + CHUNK] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    data = folder / "pool.jsonl"
    with open(data, "w") as handle:
        for start in range(0, n, CHUNK):
            handle.write("".join(
                f'{{"id": "r{i}", "prompt": "Question {i} of topic {t}?", '
                f'"response": "Answer {i}."}}\n'
                for i, t in zip(range(start, min(n, start + CHUNK)), truth[start:start + CHUNK])))
    return data, vectors, truth


def app_run(store: RunStore, n: int, dim: int = 32, clusters: int = 50,
            ks: tuple[int, ...] = (10, 20, 40), seed: int = 0) -> RunStore:
    """A run the app opens as prepared, on a `make_pool` pool of n rows: the pool ingested, the
    vectors imported, a real k sweep (10 k-means iterations) and heuristic scores. Its map is
    the PCA placement (`pipeline.quick_map`) filed where the app reads the UMAP map: UMAP at
    this size costs minutes (the `map` stage above measures it), and what the app's browser
    test and figures exercise is a map of n points, not how UMAP placed them."""
    from selection_core.spine.config import ScorerConfig

    with tempfile.TemporaryDirectory() as tmp:
        data, vectors, _ = make_pool(Path(tmp), n, dim, clusters, seed)
        pipeline.ingest(store, [str(data)])
        pipeline.embed_vectors(store, vectors)
    pipeline.sweep(store, SweepConfig(ks=ks, niter=10, nredo=1, sample_size=2_000))
    pipeline.quality(store, ScorerConfig())
    # the umap stage's key (same name, config and inputs) computed with the PCA placement
    runner.run(store, Stage("umap", UMAPConfig, _pca_placement, pipeline.UMAP.inputs),
               UMAPConfig())
    return store


def _pca_placement(ctx: StageContext, config: UMAPConfig, progress: object) -> dict[str, str]:
    write_npy(ctx.folder / "coords.npy", pipeline.quick_map(ctx.store))
    return {"placement": "pca (synthetic app run)"}


def peak_rss_mib() -> float:
    """The process's peak RSS since the last reset (VmHWM), else since it started."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Stages:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.resettable = reset_peak()

    def run(self, name: str, fn, **extra):
        reset_peak()
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
        row = {"stage": name, "seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib()),
               **extra}
        self.rows.append(row)
        print(f"  {name:<8} {seconds:8.1f} s   peak RSS {row['peak_rss_mib']:6d} MiB"
              + "".join(f"   {k} {v}" for k, v in extra.items()), flush=True)
        return value


def clean_texts(n: int, seed: int = 0, words: int = 60) -> list[str]:
    """`n` rows of `words` random words (a 5,000-word vocabulary), 1% exact and 1% near copies
    (one word changed) of earlier rows."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    texts = [" ".join(row) for start in range(0, n, CHUNK)
             for row in vocab[rng.integers(0, len(vocab), size=(min(CHUNK, n - start), words))]]
    copies = rng.choice(np.arange(n // 2, n), size=2 * (n // 100), replace=False)
    for j, row in enumerate(copies):
        source = texts[int(rng.integers(0, n // 2))]
        texts[row] = source if j % 2 == 0 else source.replace(" ", " changed ", 1)
    return texts


def clean_stages(stages: Stages, X: np.ndarray) -> None:
    """Each test of the clean stage, timed and its peak RSS measured (`--clean`)."""
    from selection_core.select.clean import CleanConfig, NgramIndex, all_benchmarks, \
        exact_duplicates, load_benchmark_items, near_duplicates, nearest_items, \
        semantic_clusters, semantic_duplicates
    from selection_core.spine.config import KMeansConfig

    n = len(X)
    config = CleanConfig()
    texts = clean_texts(n)
    exact = stages.run("exact", lambda: exact_duplicates(texts, [""] * n))
    stages.rows[-1]["found"] = int((exact >= 0).sum())
    near, _ = stages.run("near", lambda: near_duplicates(texts, config.near_threshold,
                                                         skip=exact >= 0))
    stages.rows[-1]["found"] = int((near >= 0).sum())

    def semantic():
        model = FaissKMeans.from_config(KMeansConfig(k=semantic_clusters(config, n), niter=20,
                                                     nredo=1)).fit(X)
        return semantic_duplicates(X, model.labels_, model.distances_, "easy")

    stages.run("semantic", semantic)
    items = stages.run("items", lambda: load_benchmark_items(all_benchmarks(),
                                                             config.template_share))
    index = stages.run("index", lambda: NgramIndex(items.content, items.benchmark, config.ngram,
                                                   config.min_item_words,
                                                   config.template_share),
                       items=len(items.content))
    stages.run("ngram", lambda: [index.best_item(text) for text in texts])
    item_vectors = np.random.default_rng(2).normal(size=(len(items.content), X.shape[1]))
    stages.run("paraphrase", lambda: nearest_items(X, item_vectors.astype(np.float32)))


def nearest_fitted_agreement(coords_fitted: np.ndarray, fitted_truth: np.ndarray,
                             coords: np.ndarray, truth: np.ndarray,
                             exclude_self: bool = False) -> float:
    """Share of rows whose nearest fitted point on the 2-D map has the row's generating cluster."""
    import faiss

    index = faiss.IndexFlatL2(2)
    index.add(np.ascontiguousarray(coords_fitted, dtype=np.float32))
    _, nearest = index.search(np.ascontiguousarray(coords, dtype=np.float32),
                              2 if exclude_self else 1)
    return float((fitted_truth[nearest[:, -1]] == truth).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=300, help="generating clusters")
    parser.add_argument("--ks", default="100,200,300,400", help="the sweep's k values")
    parser.add_argument("--k", type=int, default=300, help="the clustering's k")
    parser.add_argument("--niter", type=int, default=20)
    parser.add_argument("--nredo", type=int, default=1)
    parser.add_argument("--silhouette-sample", type=int, default=SweepConfig.sample_size)
    parser.add_argument("--fit-rows", type=int, default=UMAPConfig.fit_rows)
    parser.add_argument("--neighbors", type=int, default=UMAPConfig.n_neighbors)
    parser.add_argument("--compare-placement", action="store_true")
    parser.add_argument("--compare-rows", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true",
                        help="CI: 100K × 64, 30 clusters, k sweep 10..40, silhouette and UMAP on "
                             "2,000 rows")
    parser.add_argument("--clean", action="store_true", help="time the clean stage's tests")
    parser.add_argument("--clean-rows", type=int, default=None,
                        help="rows the clean tests run on (default: --n)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--workdir", default=None, help="where the pool and run go (temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.dim, args.clusters, args.ks, args.k = 100_000, 64, 30, "10,20,30,40", 30
        args.niter, args.fit_rows, args.neighbors, args.silhouette_sample = 10, 2_000, 15, 2_000
        args.compare_rows = min(args.compare_rows, 2_000)
    ks = tuple(int(k) for k in args.ks.split(","))

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        data, vectors_file, truth = make_pool(folder, args.n, args.dim, args.clusters)
        print(f"{args.n:,} × {args.dim} pool, {args.clusters} generating clusters "
              f"(generated in {time.perf_counter() - started:.0f} s, not counted)", flush=True)
        print(f"peak RSS per stage {'(reset before each)' if reset_peak() else '(cumulative)'}")
        stages = Stages()
        store = RunStore(folder / "run")
        stages.run("pool", lambda: pipeline.ingest(store, [str(data)]) is not None)
        stages.run("vectors", lambda: pipeline.embed_vectors(store, vectors_file))
        X = np.load(store.path(pipeline.EMBEDDINGS), mmap_mode="r", allow_pickle=False)
        config = SweepConfig(ks=ks, niter=args.niter, nredo=args.nredo,
                             sample_size=args.silhouette_sample)
        result = stages.run("sweep", lambda: sweep_k(X, config))
        table = result.table
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        result = None  # the sweep's models: free before the next stage is measured
        model = stages.run("cluster", lambda: FaissKMeans.from_config(config.kmeans(args.k)).fit(X))
        from sklearn.metrics import normalized_mutual_info_score

        nmi = normalized_mutual_info_score(truth, model.labels_)
        stages.rows[-1]["nmi"] = round(nmi, 4)
        print(f"           NMI against the generating clusters: {nmi:.4f}")
        quality = np.random.default_rng(1).normal(size=args.n)
        chosen = stages.run("kmq", lambda: kmq_select(model.labels_, quality, args.n // 10))
        assert len(chosen) == args.n // 10
        umap_config = UMAPConfig(n_neighbors=args.neighbors, fit_rows=args.fit_rows)

        split: dict[str, float] = {}

        def map_stage():
            started = time.perf_counter()
            fitted = fit_map_sample(X, umap_config,
                                    transformable=args.compare_placement)
            split["fit_seconds"] = round(time.perf_counter() - started, 2)
            started = time.perf_counter()
            coords = np.empty((len(X), 2), dtype=np.float32)
            coords[fitted.rows] = fitted.coords
            coords[fitted.rest_rows(len(X))] = fitted.place(X, fitted.rest_rows(len(X)),
                                                            "neighbours")
            split["place_seconds"] = round(time.perf_counter() - started, 2)
            return fitted, coords

        fitted, coords = stages.run("map", map_stage)
        stages.rows[-1].update(split)
        print(f"           UMAP fit on {len(fitted.rows):,} rows {split['fit_seconds']:.1f} s, "
              f"neighbour placement of the other {len(X) - len(fitted.rows):,} "
              f"{split['place_seconds']:.1f} s")
        if args.clean:
            clean_stages(stages, X[:args.clean_rows or args.n])
        total = sum(row["seconds"] for row in stages.rows)
        peak = max(row["peak_rss_mib"] for row in stages.rows)
        print(f"  end to end {total:.1f} s ({total / 60:.1f} min), peak RSS {peak} MiB "
              f"({peak / 1024:.2f} GiB)")
        figures = {"n": args.n, "dim": args.dim, "clusters": args.clusters, "ks": ks, "k": args.k,
                   "niter": args.niter, "nredo": args.nredo, "fit_rows": args.fit_rows,
                   "stages": stages.rows, "total_seconds": round(total, 1),
                   "peak_rss_mib": peak, "nmi": round(nmi, 4),
                   "sweep": json.loads(table.to_json(orient="records"))}
        if args.compare_placement:
            figures["placement"] = compare_placement(X, truth, fitted, coords, args.compare_rows)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


def compare_placement(X: np.ndarray, truth: np.ndarray, fitted, coords: np.ndarray,
                      n_rows: int) -> dict:
    """UMAP transform vs the neighbour placement on the same placed rows: speed and faithfulness."""
    rest = fitted.rest_rows(len(X))
    rows = np.sort(np.random.default_rng(2).choice(rest, size=min(n_rows, len(rest)),
                                                   replace=False))
    fitted_truth = truth[fitted.rows]
    ceiling = nearest_fitted_agreement(fitted.coords, fitted_truth, fitted.coords, fitted_truth,
                                       exclude_self=True)
    report = {"rows": len(rows), "fitted_rows_agreement": round(ceiling, 4)}
    print(f"placement of {len(rows):,} rows (of {len(rest):,} placed; fitted rows' own "
          f"agreement {ceiling:.4f}):")
    fitted.place(X, rows[:200], "transform")  # numba compiles on the first call: not timed
    for placement in ("neighbours", "transform"):
        started = time.perf_counter()
        placed = fitted.place(X, rows, placement)
        seconds = time.perf_counter() - started
        agreement = nearest_fitted_agreement(fitted.coords, fitted_truth, placed, truth[rows])
        report[placement] = {"seconds": round(seconds, 2),
                             "rows_per_second": round(len(rows) / seconds),
                             "agreement": round(agreement, 4)}
        # (the neighbour placement's time is mostly its index over the sample, built once: its
        # time for all placed rows is the map stage's `place_seconds`, not a scaled-up figure)
        print(f"  {placement:<10} {seconds:7.1f} s  ({len(rows) / seconds:,.0f} rows/s)  "
              f"agreement {agreement:.4f}", flush=True)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
