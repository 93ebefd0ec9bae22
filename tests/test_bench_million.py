"""benchmarks/bench_million.py in its quick mode (100K rows), so the million-row benchmark cannot
rot: every stage runs through the bounded paths (vectors import, sweep, k-means, kMQ, sampled
map), reports its time and peak RSS, and k-means recovers the generating clusters."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_million.py"


def test_quick_million_benchmark_runs_every_stage(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_million", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figures.json"
    assert module.main(["--quick", "--json", str(out), "--workdir", str(tmp_path)]) == 0
    figures = json.loads(out.read_text())
    assert figures["n"] == 100_000
    assert [row["stage"] for row in figures["stages"]] == ["pool", "vectors", "sweep", "cluster",
                                                           "kmq", "map"]
    assert all(row["seconds"] >= 0 and row["peak_rss_mib"] > 0 for row in figures["stages"])
    assert [row["k"] for row in figures["sweep"]] == [10, 20, 30, 40]
    assert figures["nmi"] >= 0.9
    assert figures["peak_rss_mib"] < 6 * 1024
