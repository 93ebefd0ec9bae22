"""Ingestion memory against file size: the streamed loader's peak memory stays flat while the
file grows; the baseline (the whole file decompressed and decoded in memory, as loading worked
before streaming) grows with it. Each measurement runs in a fresh interpreter (peak RSS above an
interpreter that has imported the same libraries), on the same generated gzip files.

    python benchmarks/bench_ingest.py [--rows 100000,400000]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MEASURE = """
import resource, sys
import pandas, pyarrow.parquet
from selection_core.data import loaders
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
{work}
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
STREAMED = "loaders.ingest_pool([sys.argv[1]], sys.argv[2])"
WHOLE = "import gzip\ntext = gzip.decompress(open(sys.argv[1], 'rb').read()).decode()"


def write_pool(path: Path, rows: int) -> int:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(rows):
            handle.write(json.dumps({"prompt": f"Question {i}: " + "word " * 40,
                                     "response": f"Answer {i}: " + "text " * 80}) + "\n")
    with gzip.open(path, "rb") as handle:
        return sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))


def peak_mb(work: str, *args: str) -> float:
    out = subprocess.run([sys.executable, "-c", MEASURE.format(work=work), *args], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,400000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    rows_out = []
    with tempfile.TemporaryDirectory() as folder:
        for rows in sizes:
            data = Path(folder, f"pool-{rows}.jsonl.gz")
            inflated = write_pool(data, rows)
            streamed = peak_mb(STREAMED, str(data), str(Path(folder, "pool.parquet")))
            whole = peak_mb(WHOLE, str(data))
            rows_out.append((rows, inflated / 1024 ** 2, streamed, whole))
            print(f"{rows:>9,} rows, {inflated / 1024 ** 2:7.1f} MB decompressed: streamed "
                  f"ingest +{streamed:6.1f} MB peak, whole file in memory +{whole:6.1f} MB")
    (r0, s0, m0, w0), (r1, s1, m1, w1) = rows_out[0], rows_out[-1]
    print(f"file grew {s1 / s0:.1f}x: streamed peak grew {m1 / max(m0, 1e-9):.2f}x, "
          f"whole-file peak grew {w1 / max(w0, 1e-9):.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
