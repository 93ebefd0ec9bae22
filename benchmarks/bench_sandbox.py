"""The sandbox's cost per program: HumanEval's 164 canonical solutions judged under bubblewrap
and on the unsandboxed path (the same wrapper, token and rlimits in a plain subprocess, as the
code ran before bubblewrap), both in this process, same programs, same order.

Sequential runs (one program at a time) give the per-program latency, a parallel run the
throughput the benchmarks see.

    python benchmarks/bench_sandbox.py [--data PATH] [--repeats 2] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core.evaluate.humaneval import HumanEval  # noqa: E402
from selection_core.spine.sandbox import require_sandbox, run_many  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="HumanEval file (default: ../shared copy)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    require_sandbox()
    benchmark = HumanEval()
    items = benchmark.load(args.data)
    programs = [benchmark.build_program(item, benchmark.extract(item, item.gold_response))
                for item in items]
    print(f"HumanEval canonical solutions: {len(programs)} programs, {args.repeats} repeats")
    per_program: dict[str, list[float]] = {"bwrap": [], "none": []}
    for _ in range(args.repeats):
        for isolation in ("none", "bwrap"):  # alternate, so load drifts hit both alike
            started = time.perf_counter()
            results = run_many(programs, timeout_s=30.0, workers=1, isolation=isolation)
            seconds = time.perf_counter() - started
            assert all(r.passed for r in results), [r.stderr for r in results if not r.passed][:1]
            per_program[isolation].append(seconds / len(programs) * 1000)
    for isolation, label in (("none", "unsandboxed subprocess"), ("bwrap", "bubblewrap")):
        values = per_program[isolation]
        print(f"  {label:<24} {statistics.median(values):7.1f} ms per program (sequential, "
              f"median of {len(values)}: {', '.join(f'{v:.1f}' for v in values)})")
    sandboxed, plain = (statistics.median(per_program[k]) for k in ("bwrap", "none"))
    print(f"  sandbox overhead         {sandboxed - plain:7.1f} ms per program "
          f"(ratio {sandboxed / plain:.2f})")
    for isolation in ("none", "bwrap"):
        started = time.perf_counter()
        run_many(programs, timeout_s=30.0, workers=args.workers, isolation=isolation)
        print(f"  {isolation:<5} parallel ({args.workers} workers): "
              f"{time.perf_counter() - started:.2f} s for all {len(programs)}")


if __name__ == "__main__":
    main()
