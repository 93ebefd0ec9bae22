"""faiss k-means vs scikit-learn KMeans on 100K×384, and an 8-k sweep with silhouettes.

Both sides run in this process on the same data with the same k and the same number of Lloyd
iterations (one restart), so the printed ratios compare like with like. The data are Gaussian
clusters of unit-normalised 384-d vectors (the shape of MiniLM embeddings).

    python benchmarks/bench_kmeans.py [--n 100000] [--k 100] [--niter 20]

`--init` measures the k-means start instead (issue 25 §5): k-means++ seeds (ours now) against
faiss' random start (ours before) and scikit-learn's `KMeans(init="k-means++")`, each at its
defaults (ours: 300 iterations, 5 restarts, 256 training points per centroid; scikit-learn: all
points, `n_init="auto"`, i.e. one k-means++ run, and `n_init=5` beside it), by inertia on all
rows, for every k and seed; then the 5-blob case (5 × 150 points, centres 4 σ apart in each of
64 coordinates): cluster sizes and NMI per seed. `--vectors` names the embeddings, e.g. a run's
`embeddings.npy` (the README's figures: Alpaca 9k + Dolly 3k + Code Alpaca 2k from ../shared/data,
`python -m selection_core embed --run DIR --data …`, default model, prompts):

    python benchmarks/bench_kmeans.py --init --vectors DIR/embeddings.npy [--init-ks 32,256]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selection_core.cluster import FaissKMeans  # noqa: E402
from selection_core.cluster.sweep import exact_silhouette, simplified_silhouette, \
    sweep_k  # noqa: E402
from selection_core.spine.config import SweepConfig  # noqa: E402


def make_data(n: int, dim: int, centers: int, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """Overlapping Gaussian clusters, unit-normalised (easy data lets sklearn stop after a few
    iterations, which would not compare like with like)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dim)).astype(np.float32)
    X = means[rng.integers(0, centers, size=n)] + noise * rng.normal(size=(n, dim)).astype(
        np.float32)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def kmeans_comparison(X: np.ndarray, k: int, niter: int, reference: bool) -> None:
    from sklearn.cluster import KMeans

    n = len(X)
    print(f"k-means on {n}×{X.shape[1]}, k={k}")
    print(f"  (a) same work: all points, {niter} Lloyd iterations, 1 restart")
    sk = KMeans(n_clusters=k, n_init=1, max_iter=niter, tol=0.0, algorithm="lloyd",
                init="random", random_state=0)
    _, t_sk = timed(lambda: sk.fit(X))
    full = FaissKMeans(k, seed=0, niter=niter, nredo=1, max_points_per_centroid=n // k + 1)
    _, t_full = timed(lambda: full.fit(X))
    per_sk, per_faiss = t_sk / sk.n_iter_, t_full / niter
    print(f"    sklearn KMeans   {t_sk:7.2f} s for {sk.n_iter_} iterations "
          f"({per_sk * 1000:.0f} ms/iter)  inertia {sk.inertia_:.1f}")
    print(f"    faiss            {t_full:7.2f} s for {niter} iterations "
          f"({per_faiss * 1000:.0f} ms/iter)  inertia {full.inertia_:.1f}")
    print(f"    ratio sklearn/faiss per iteration: ×{per_sk / per_faiss:.2f}")
    if not reference:
        return
    print("  (b) reference settings (METHODS §1.2): niter=300, nredo=5; faiss trains on 256 "
          "points per centroid, sklearn on all points with its default tolerance")
    sk5 = KMeans(n_clusters=k, n_init=5, max_iter=300, algorithm="lloyd", init="random",
                 random_state=0)
    _, t_sk5 = timed(lambda: sk5.fit(X))
    ref = FaissKMeans(k, seed=0, niter=300, nredo=5)
    _, t_ref = timed(lambda: ref.fit(X))
    print(f"    sklearn KMeans   {t_sk5:7.2f} s  inertia {sk5.inertia_:.1f}")
    print(f"    faiss            {t_ref:7.2f} s  inertia {ref.inertia_:.1f} (on all points)")
    print(f"    speed-up ×{t_sk5 / t_ref:.1f}, inertia ratio faiss/sklearn "
          f"{ref.inertia_ / sk5.inertia_:.4f}")


def sweep_comparison(X: np.ndarray, ks: tuple[int, ...], niter: int, sample: int) -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    config = SweepConfig(ks=ks, niter=niter, nredo=1, sample_size=sample)
    result, t_ours = timed(lambda: sweep_k(X, config))

    def baseline() -> list[int]:
        iterations = []
        for k in ks:
            model = KMeans(n_clusters=k, n_init=1, max_iter=niter, tol=0.0, algorithm="lloyd",
                           init="random", random_state=0).fit(X)
            silhouette_score(X, model.labels_, sample_size=sample, random_state=0)
            iterations.append(int(model.n_iter_))
        return iterations

    iterations, t_base = timed(baseline)
    print(f"\n{len(ks)}-k sweep on {len(X)} points, k={list(ks)}, {niter} iterations, "
          f"exact silhouette on {sample} sampled rows")
    print(f"  sklearn KMeans (all points) + silhouette_score {t_base:8.2f} s "
          f"(iterations run: {iterations})")
    print(f"  selection_core sweep (faiss, 256 points/centroid, + simplified silhouette on all "
          f"points) {t_ours:8.2f} s   speed-up ×{t_base / t_ours:.1f}")
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"  recommended k={result.recommended_k}, knee k={result.knee_k}")

    model = result.models[ks[len(ks) // 2]]
    (d1, d2), t_simple = timed(lambda: model.two_nearest_distances(X))
    _, t_exact = timed(lambda: exact_silhouette(X, model.labels_, sample, 0))
    print(f"  one k: simplified silhouette on all {len(X)} rows {t_simple:.2f} s "
          f"({simplified_silhouette(d1, d2):.4f}); exact on {sample} rows {t_exact:.2f} s")


def init_comparison(X: np.ndarray, ks: tuple[int, ...], seeds: tuple[int, ...],
                    sklearn_runs: tuple[int, ...] = (1, 5)) -> None:
    """Inertia on all rows and seconds per fit: ours with k-means++ and with faiss' random start,
    scikit-learn k-means++ with one run (its default) and with more; ratios to its default."""
    from sklearn.cluster import KMeans

    print(f"k-means starts on {len(X)}×{X.shape[1]}: inertia on all rows (seconds per fit)")
    for k in ks:
        fits = {
            "ours, k-means++": lambda s: FaissKMeans(k, seed=s),
            "ours, faiss random (before)": lambda s: FaissKMeans(k, seed=s, init="random"),
            **{f"sklearn k-means++, n_init={runs}":
               lambda s, runs=runs: KMeans(k, init="k-means++", n_init=runs, random_state=s)
               for runs in sklearn_runs},
        }
        inertia: dict[str, list[float]] = {name: [] for name in fits}
        seconds: dict[str, list[float]] = {name: [] for name in fits}
        seeding: list[float] = []
        for seed in seeds:
            for name, make in fits.items():
                model, took = timed(lambda: make(seed).fit(X))
                inertia[name].append(float(model.inertia_))
                seconds[name].append(took)
                if name == "ours, k-means++":
                    seeding.append(model.init_seconds_)
        reference_name = f"sklearn k-means++, n_init={sklearn_runs[0]}"
        reference = np.mean(inertia[reference_name])
        print(f"  k={k}, seeds {list(seeds)}")
        for name in fits:
            values = ", ".join(f"{v:.2f}" for v in inertia[name])
            print(f"    {name:30s} mean {np.mean(inertia[name]):10.2f} "
                  f"({np.mean(inertia[name]) / reference - 1:+.2%} vs {reference_name}; "
                  f"{values})  {np.mean(seconds[name]):6.1f} s")
        print(f"    (ours, k-means++: {np.mean(seeding):.1f} s of each fit draw the seeds)")


def blob_comparison(seeds: tuple[int, ...]) -> None:
    """The 5-blob case: sizes and NMI of each start at every seed (k-means++ finds all five)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    centres = 4.0 * rng.normal(size=(5, 64))
    X = np.concatenate([c + rng.normal(size=(150, 64)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(5), 150)
    print("\n5 blobs × 150 points, centres 4 σ apart in each of 64 coordinates, k=5")
    for name, make in (("ours, faiss random (before)", lambda s: FaissKMeans(5, seed=s,
                                                                            init="random")),
                       ("ours, k-means++", lambda s: FaissKMeans(5, seed=s)),
                       ("sklearn k-means++", lambda s: KMeans(5, random_state=s))):
        scores, wrong = [], []
        for seed in seeds:
            labels = make(seed).fit(X).labels_
            scores.append(normalized_mutual_info_score(truth, labels))
            if scores[-1] < 1 - 1e-9:
                sizes = "/".join(map(str, np.bincount(labels, minlength=5)))
                wrong.append(f"seed {seed}: {sizes} NMI {scores[-1]:.3f}")
        print(f"  {name:30s} NMI 1.0 at {sum(s > 1 - 1e-9 for s in scores)}/{len(seeds)} seeds"
              f"{'; ' + '; '.join(wrong) if wrong else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--niter", type=int, default=20)
    parser.add_argument("--ks", default="8,16,32,64,128,256,512,1024")
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--skip-reference", action="store_true",
                        help="skip the slow niter=300/nredo=5 comparison")
    parser.add_argument("--init", action="store_true",
                        help="compare k-means starts (k-means++, faiss random, scikit-learn)")
    parser.add_argument("--vectors", type=Path, help="--init: an .npy of embeddings")
    parser.add_argument("--init-ks", default="32,256", help="--init: the k values")
    parser.add_argument("--seeds", default="0,1,2", help="--init: the seeds")
    parser.add_argument("--sklearn-n-init", default="1,5",
                        help="--init: scikit-learn's n_init values (1 is its default)")
    args = parser.parse_args()
    if args.init:
        seeds = tuple(int(s) for s in args.seeds.split(","))
        if args.vectors:
            X = np.load(args.vectors, allow_pickle=False).astype(np.float32)
            init_comparison(X, tuple(int(k) for k in args.init_ks.split(",")), seeds,
                            tuple(int(n) for n in args.sklearn_n_init.split(",")))
        blob_comparison(tuple(range(20)))
        return
    X = make_data(args.n, args.dim, centers=200)
    kmeans_comparison(X, args.k, args.niter, reference=not args.skip_reference)
    sweep_comparison(X, tuple(int(k) for k in args.ks.split(",")), args.niter, args.sample)


if __name__ == "__main__":
    main()
