"""How fast the Clusters page reacts on the demo pool (3000 rows), on this machine.

1. Changing k, core path (what a rerun of the Clusters + Selection pages computes): clustering at
   k (cached by the sweep, or computed for an unswept k), distinctive terms, the cluster table,
   a kMQ selection and the three figures — UMAP coordinates cached. Baseline, same run: the
   uncached path (k-means + UMAP recomputed). Goal: under 2 s.
2. First load of the Clusters page (Streamlit's AppTest, fresh caches, prepared run) and, where
   Debian's chromium is installed, in a real browser: from navigation to the map drawn.

    python benchmarks/bench_app.py [--n 3000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core import pipeline, workspace  # noqa: E402
from selection_core.cluster.kmeans import FaissKMeans  # noqa: E402
from selection_core.cluster.projection import umap_2d  # noqa: E402
from selection_core.cluster.terms import cluster_overview, distinctive_terms, \
    term_counts  # noqa: E402
from selection_core.config import KMeansConfig, ScorerConfig, SelectionConfig, \
    UMAPConfig  # noqa: E402
from selection_core.select.static import select_static  # noqa: E402
from selection_core.viz.figures import cluster_bars, cluster_map, k_sweep_figure  # noqa: E402


def k_change(store, k: int, terms, coords, table, recommended, knee) -> float:
    started = time.perf_counter()
    pool = pipeline.load_run_pool(store)
    clustering = pipeline.cluster(store, KMeansConfig(k=k), write_table=False)
    quality = pipeline.quality(store, ScorerConfig())
    words = distinctive_terms(terms, clustering.labels)
    cluster_overview(pool["prompt"].tolist(), clustering.labels, quality, words)
    select_static(SelectionConfig(method="kmq", budget=300, k=k), clustering.labels, quality,
                  clustering.distances)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "id": pool["id"],
                          "prompt": pool["prompt"], "cluster": clustering.labels,
                          "source": pool["source"], "quality": quality})
    cluster_map(frame, "cluster").to_json()
    k_sweep_figure(table, recommended, knee, stacked=True).to_json()
    cluster_bars(clustering.labels, quality).to_json()
    return time.perf_counter() - started


def cold_path(store, k: int) -> float:
    started = time.perf_counter()
    X = pipeline.load_embeddings(store)
    FaissKMeans(k).fit(X)
    umap_2d(X, UMAPConfig())
    return time.perf_counter() - started


def apptest_first_load() -> float:
    from streamlit.testing.v1 import AppTest

    started = time.perf_counter()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    elapsed = time.perf_counter() - started
    assert not at.exception and len(at.get("plotly_chart")) >= 3, "the page did not render"
    return elapsed


def browser_first_load() -> float | None:
    chromium = shutil.which("chromium")
    if not chromium:
        return None
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                               "--server.headless", "true", "--server.port", str(port)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        time.sleep(4)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            started = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}")
            page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(timeout=120_000)
            page.get_by_text("drag a lasso").wait_for(timeout=120_000)
            elapsed = time.perf_counter() - started
            browser.close()
        return elapsed
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        os.environ["SELECTION_CORE_WORKSPACE"] = str(Path(root) / "workspace")
        os.environ["SELECTION_CORE_DEMO_N"] = str(args.n)
        store = workspace.demo_run()
        started = time.perf_counter()
        pipeline.ingest_demo(store, n=args.n)
        pipeline.prepare(store)
        print(f"prepare (embed, sweep {pipeline.default_ks(args.n)}, UMAP, scores) on {args.n} "
              f"rows: {time.perf_counter() - started:.1f} s (embeddings may come from the cache)")
        pool = pipeline.load_run_pool(store)
        terms = term_counts(pool["prompt"].tolist())
        coords = pipeline.projection(store)
        table, recommended, knee = pipeline.load_sweep(store)
        swept = [int(k) for k in table["k"]]
        warm = [k_change(store, k, terms, coords, table, recommended, knee) for k in swept]
        unswept = [k for k in (7, 13, 29, 50) if k not in swept]
        fresh = [k_change(store, k, terms, coords, table, recommended, knee) for k in unswept]
        cold = cold_path(store, recommended)
        print(f"\nchanging k (core path, cached UMAP) over {len(swept)} swept k: "
              f"median {np.median(warm):.3f} s, max {max(warm):.3f} s  (goal < 2 s: "
              f"×{2 / max(warm):.0f} margin)")
        print(f"changing to an unswept k {unswept} (k-means computed): median "
              f"{np.median(fresh):.3f} s, max {max(fresh):.3f} s")
        print(f"baseline, nothing cached (k-means + UMAP): {cold:.2f} s → cached path "
              f"×{cold / np.median(warm):.0f} faster")
        print(f"\nClusters page first load, AppTest (fresh Streamlit caches): "
              f"{apptest_first_load():.2f} s")
        seconds = browser_first_load()
        if seconds is None:
            print("browser first load: skipped (no chromium)")
        else:
            print(f"Clusters page first load in headless Chromium, navigation → map drawn: "
                  f"{seconds:.2f} s")


if __name__ == "__main__":
    main()
