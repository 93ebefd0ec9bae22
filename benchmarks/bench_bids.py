"""BIDS: the exact fast greedy vs the naive O(b·N·M) greedy, then BIDS, task-max and
instance-max at the paper's scale (288K × 350, METHODS §2.2).

A is a seeded Gaussian float32 matrix (the dtype `influence.pipeline.attribution_matrix`
writes) with a random offset per task, 7 tasks over the M columns. It is generated once and
saved; every measurement then runs in a fresh process that loads it, so runs share no caches
and memory is that process's peak resident size (`resource.getrusage(...).ru_maxrss`). The
selection's own peak is reported as the growth of that peak after A was loaded, i.e. apart
from generating and holding A. Timings cover the whole call (normalisation, checks, ranking,
greedy) and are taken with nothing else running in the worker.

    python benchmarks/bench_bids.py [--n 100000] [--m 350] [--budget 0.15]
                                    [--paper-n 288000] [--skip-naive]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selection_core.select.baselines import top_rows  # noqa: E402
from selection_core.select.bids import bids_select, bids_select_naive, instance_max_scores, \
    task_max_scores  # noqa: E402

TASKS = 7


def task_labels(m: int) -> np.ndarray:
    """7 contiguous, near-equal groups of columns (50 each for M=350)."""
    return np.array([f"task{t}" for t in np.arange(m) * TASKS // m])


def make_matrix(n: int, m: int, seed: int = 0, chunk_rows: int = 32_768) -> np.ndarray:
    """Gaussian influence with a per-task offset, float32, generated in row chunks."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 0.5, size=TASKS).astype(np.float32)[np.arange(m) * TASKS // m]
    A = np.empty((n, m), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        A[start:stop] = rng.standard_normal((stop - start, m), dtype=np.float32) + offsets
    return A


METHODS = {
    "bids": lambda A, b: bids_select(A, b),
    "naive": lambda A, b: bids_select_naive(A, b),
    "task-max": lambda A, b: top_rows(task_max_scores(A, task_labels(A.shape[1])), b),
    "instance-max": lambda A, b: top_rows(instance_max_scores(A), b),
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def worker(method: str, matrix: str, budget: int, out: str) -> None:
    """One measurement, in its own process: load A, then time and measure the selection."""
    A = np.load(matrix, allow_pickle=False)
    before = _peak_mib()
    started = time.perf_counter()
    rows = METHODS[method](A, budget)
    seconds = time.perf_counter() - started
    np.save(out, rows)
    print(json.dumps({"seconds": seconds, "peak_mib": _peak_mib(), "loaded_mib": before}))


def measure(method: str, matrix: Path, budget: int) -> tuple[dict, np.ndarray]:
    out = matrix.with_name(f"{method}.npy")
    done = subprocess.run([sys.executable, __file__, "--worker", method, str(matrix),
                           str(budget), str(out)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


def report(name: str, result: dict) -> None:
    print(f"    {name:<13} {result['seconds']:9.2f} s   peak RSS {result['peak_mib']:7,.0f} MiB "
          f"(+{result['peak_mib'] - result['loaded_mib']:,.0f} MiB over the process with A "
          f"loaded, {result['loaded_mib']:,.0f} MiB)")


def with_matrix(n: int, m: int, folder: Path) -> Path:
    started = time.perf_counter()
    A = make_matrix(n, m)
    path = folder / f"A_{n}x{m}.npy"
    np.save(path, A)
    print(f"    generated A {n:,}×{m} float32 ({A.nbytes / 2**20:,.0f} MiB) in "
          f"{time.perf_counter() - started:.1f} s, in the parent process")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows for fast vs naive")
    parser.add_argument("--m", type=int, default=350, help="validation instances (columns)")
    parser.add_argument("--budget", type=float, default=0.15, help="share of the rows")
    parser.add_argument("--paper-n", type=int, default=288_000, help="rows at paper scale")
    parser.add_argument("--skip-naive", action="store_true", help="skip part (a)")
    args = parser.parse_args()
    print(f"BIDS benchmark: numpy {np.__version__}, {os.cpu_count()} CPU cores; each "
          f"measurement in a fresh process; memory = ru_maxrss of that process")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_naive:
            budget = round(args.budget * args.n)
            print(f"(a) fast vs naive BIDS: N={args.n:,}, M={args.m} ({TASKS} tasks), "
                  f"budget {budget:,} ({args.budget:.0%})")
            matrix = with_matrix(args.n, args.m, folder)
            fast, fast_rows = measure("bids", matrix, budget)
            report("fast BIDS", fast)
            naive, naive_rows = measure("naive", matrix, budget)
            report("naive BIDS", naive)
            print(f"    speed-up ×{naive['seconds'] / fast['seconds']:,.0f} (goal ≥ ×100); "
                  f"identical selections: {'yes' if np.array_equal(fast_rows, naive_rows) else 'NO'}")
            matrix.unlink()
        budget = round(args.budget * args.paper_n)
        print(f"(b) paper scale: N={args.paper_n:,}, M={args.m}, budget {budget:,} "
              f"({args.budget:.0%}); Â alone is {args.paper_n * args.m * 8 / 2**20:,.0f} MiB")
        matrix = with_matrix(args.paper_n, args.m, folder)
        for method, label in (("bids", "fast BIDS"), ("task-max", "task-max"),
                              ("instance-max", "instance-max")):
            result, _ = measure(method, matrix, budget)
            report(label, result)
            if method == "bids":
                print(f"    {'':<13} goal < 30 s: {'met' if result['seconds'] < 30 else 'MISSED'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
