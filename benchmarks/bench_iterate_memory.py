"""Peak RSS of the iterative kMQ loop with a real model (issue 15 §5): the `iterate` command on a
small prepared run, once per code tree (e.g. main's and this branch's), each in its own process,
so each peak RSS (the kernel's ru_maxrss of that process) is its own; the rounds' scores of the
runs are compared (allclose).

    python benchmarks/bench_iterate_memory.py --run PREPARED_RUN [--code DIR ...]

`--code` names source trees (default: this one); every tree runs the same command on its own copy
of PREPARED_RUN (a run that `prepare` has finished: embeddings, sweep, heuristic scores).
Defaults are bounded for 2 CPU cores (SmolLM2-135M-Instruct, 2 rounds, 24 rows, 8 scored prompts
per round, 48 new tokens): a few minutes per tree.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_tree(code: Path, run: Path, args: argparse.Namespace) -> dict:
    """`iterate` with the sources in `code` on a copy of `run`: peak RSS, time, the scores."""
    copy = Path(tempfile.mkdtemp(prefix="bench-iterate-")) / "run"
    shutil.copytree(run, copy)
    command = [sys.executable, "-m", "selection_core", "iterate", "--run", str(copy),
               "--k", str(args.k), "--budget", str(args.budget), "--rounds", str(args.rounds),
               "--eval-per-round", str(args.eval_per_round), "--model", args.model,
               "--max-new-tokens", str(args.max_new_tokens), "--batch-size",
               str(args.batch_size), "--max-length", str(args.max_length), "--device", "cpu",
               "--out", str(copy.parent / "iterative.jsonl")]
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise SystemExit(f"iterate failed with the code in {code}:\n{stderr[-3000:]}")
    scores = []
    rounds = sorted(copy.rglob("round-*/generations.jsonl"),  # wherever the tree files rounds
                    key=lambda path: path.parent.name)
    for path in rounds:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        scores += [[row["gold_score"], row["generated_score"]] for row in rows]
    selected = [json.loads(line)["id"] for line in
                (copy.parent / "iterative.jsonl").read_text().splitlines()]
    shutil.rmtree(copy.parent)
    if not scores:
        raise SystemExit(f"no round's generations.jsonl under the run iterated by {code}")
    return {"code": str(code), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "seconds": round(seconds, 1), "scores": scores, "selected": selected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a prepared run (copied)")
    parser.add_argument("--code", type=Path, nargs="+", default=[ROOT])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--eval-per-round", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args(argv)
    results = []
    for code in args.code:
        result = run_tree(code.resolve(), args.run, args)
        results.append(result)
        print(f"  {result['code']}: peak RSS {result['peak_rss_mib']} MiB, "
              f"{result['seconds']} s, {len(result['scores'])} scored items", flush=True)
    first = np.array(results[0]["scores"])
    for other in results[1:]:
        scores = np.array(other["scores"])
        same = first.shape == scores.shape and np.allclose(first, scores, rtol=1e-5, atol=1e-4)
        delta = np.abs(first - scores).max() if first.shape == scores.shape else float("nan")
        print(f"  peak RSS {results[0]['peak_rss_mib']} → {other['peak_rss_mib']} MiB "
              f"(×{results[0]['peak_rss_mib'] / other['peak_rss_mib']:.2f}); scores allclose: "
              f"{same} (max |Δ| {delta:.2e}); same selection: "
              f"{other['selected'] == results[0]['selected']} ({len(other['selected'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
