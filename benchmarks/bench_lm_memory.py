"""Peak RSS of response log-likelihood scoring (issue 15 §5): the bounded path (decoder hidden
states, output head over chunks of scored positions) against the full forward it replaced
(batch × length × vocabulary float32 logits), in the same run on the same rows.

Each path runs in a fresh subprocess, so each peak RSS (the kernel's VmHWM) is its own; the
scores of the two are compared (allclose). Defaults: SmolLM2-135M-Instruct (49K vocabulary),
32 demo rows padded to long responses, batch 8 × up to 512 tokens — bounded for 2 CPU cores.

    python benchmarks/bench_lm_memory.py [--model smollm2-135m-instruct] [--rows 32]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rows(n: int) -> tuple[list[str], list[str]]:
    from selection_core.data.demo import generate_demo_pool

    pool = generate_demo_pool(n=max(n, 50), seed=0)[:n]
    # long responses: the full-forward path's logits grow with length × vocabulary
    return [row["prompt"] for row in pool], [(row["response"] + " ") * 12 for row in pool]


def score(path: str, model_name: str, n: int, batch_size: int, max_length: int) -> dict:
    from selection_core.lm import formatting
    from selection_core.lm.loading import load_causal_lm

    if path == "full":  # the pre-issue-15 computation: whole logits tensor
        formatting._output_head = lambda model: None
    model, tokenizer = load_causal_lm(model_name, device="cpu", cache=False)
    prompts, responses = rows(n)
    started = time.perf_counter()
    sums, counts = formatting.response_log_likelihood(model, tokenizer, prompts, responses,
                                                      batch_size=batch_size,
                                                      max_length=max_length)
    seconds = time.perf_counter() - started
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
                .splitlines() if line.startswith("VmHWM:")) / 1024
    return {"path": path, "peak_rss_mib": round(peak), "seconds": round(seconds, 1),
            "tokens": int(counts.sum()), "sums": sums.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--child", choices=("full", "chunked"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(score(args.child, args.model, args.rows, args.batch_size,
                               args.max_length)))
        return 0
    results = {}
    for path in ("full", "chunked"):
        out = subprocess.run([sys.executable, __file__, "--child", path, "--model", args.model,
                              "--rows", str(args.rows), "--batch-size", str(args.batch_size),
                              "--max-length", str(args.max_length)],
                             capture_output=True, text=True, check=True)
        results[path] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {path:<8} peak RSS {results[path]['peak_rss_mib']:6d} MiB   "
              f"{results[path]['seconds']:6.1f} s   {results[path]['tokens']} response tokens",
              flush=True)
    full, chunked = (np.array(results[p]["sums"]) for p in ("full", "chunked"))
    print(f"  peak RSS ratio full/chunked ×{results['full']['peak_rss_mib'] / results['chunked']['peak_rss_mib']:.2f}; "
          f"scores allclose: {np.allclose(full, chunked, rtol=1e-5, atol=1e-3)} "
          f"(max |Δ| {np.abs(full - chunked).max():.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
