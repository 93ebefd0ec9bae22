"""Embedding rows/s on Ray with 1 vs 2 workers, against the single process in the same run.

Each Ray run starts its workers (a process each: imports torch and the model, once), then
streams shards; the figures split the wall time into that start-up and the steady rate after
the first shard, since start-up is paid once per run while the steady rate is what scales.

    python benchmarks/bench_ray.py [--rows 2000] [--ray local|ADDRESS] [--workers 1 2] [--quick]

What limits it here: the cluster's CPU cores (each worker runs torch on --cpus-per-worker
threads, default 1) and whatever else runs on them: the load average is printed with the
figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core.spine.config import EmbedConfig  # noqa: E402
from selection_core.data.demo import generate_demo_pool  # noqa: E402
from selection_core.data.loaders import fingerprint  # noqa: E402
from selection_core.features.embed import embed_texts  # noqa: E402
from selection_core.scale import ScaleConfig  # noqa: E402


def timed_embed(texts: list[str], config: EmbedConfig, scale: ScaleConfig | None) -> dict:
    """Wall time, time to the first finished shard, and the rate after it (fresh cache)."""
    marks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        embed_texts(texts, config, fingerprint(texts), cache_dir=cache, scale=scale,
                    progress=lambda done, total: marks.append((time.perf_counter(), done)))
        wall = time.perf_counter() - started
    done_marks = [(t, d) for t, d in marks if d > 0]
    (first_t, first_d), (last_t, last_d) = done_marks[0], done_marks[-1]
    steady = (last_d - first_d) / (last_t - first_t) if last_t > first_t else float("nan")
    return {"wall_s": round(wall, 2), "rows_per_s": round(len(texts) / wall, 1),
            "first_shard_s": round(first_t - started, 2),
            "steady_rows_per_s": round(steady, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--ray", default="local", help="local, or a running cluster's address")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to measure (the steady rates are compared with the "
                             "first)")
    parser.add_argument("--quick", action="store_true",
                        help="a few shards only: checks that the benchmark runs (CI)")
    args = parser.parse_args(argv)
    rows = 150 if args.quick else args.rows
    texts = [row["prompt"] for row in generate_demo_pool(rows)]
    config = EmbedConfig(device="cpu")
    print(f"embedding {rows} demo prompts (all-MiniLM-L6-v2, CPU), {os.cpu_count()} cores here; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    results = {"single process": timed_embed(texts, config, None)}
    names = [f"{workers} worker{'s' if workers > 1 else ''}" for workers in args.workers]
    for name, workers in zip(names, args.workers):
        results[name] = timed_embed(texts, config, ScaleConfig(ray=args.ray, workers=workers))
    base = results["single process"]["rows_per_s"]
    first = results[names[0]]["steady_rows_per_s"]
    for name, figures in results.items():
        ratio = f", steady {figures['steady_rows_per_s'] / first:.2f}× {names[0]}" \
            if name != "single process" and first == first and first > 0 else ""
        print(f"{name:>15}: {figures['rows_per_s']} rows/s overall "
              f"({figures['rows_per_s'] / base:.2f}× single process), "
              f"{figures['steady_rows_per_s']} rows/s after the first shard{ratio}; wall "
              f"{figures['wall_s']} s, first shard after {figures['first_shard_s']} s")
    print(json.dumps({"rows": rows, "load_average_after": round(os.getloadavg()[0], 2),
                      **results}))
    return results


if __name__ == "__main__":
    main()
