"""Embedding throughput (all-MiniLM-L6-v2, offline) and the cost of a cached second run.

Cold run: a fresh cache directory, the model loaded and every row encoded. Warm run: the same
texts again, answered from the content-keyed cache. Both in this process, same texts.

    python benchmarks/bench_embed.py [--n 3000] [--data FILE]   (default: the demo pool)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core.spine.config import EmbedConfig  # noqa: E402
from selection_core.data.demo import generate_demo_pool  # noqa: E402
from selection_core.data.loaders import fingerprint, load_pool  # noqa: E402
from selection_core.features.embed import embed_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--data", default=None, help="a pool file instead of the demo pool")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.data:
        texts = load_pool(args.data)["prompt"].tolist()[: args.n]
        label = args.data
    else:
        texts = [row["prompt"] for row in generate_demo_pool(args.n)]
        label = "demo pool"
    config = EmbedConfig(batch_size=args.batch_size)
    content = fingerprint(texts)
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        vectors = embed_texts(texts, config, content, cache_dir=cache)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        embed_texts(texts, config, content, cache_dir=cache)
        warm = time.perf_counter() - started
    chars = sum(len(t) for t in texts) / len(texts)
    print(f"{len(texts)} prompts from {label} (mean {chars:.0f} chars) → {vectors.shape}")
    print(f"  cold (model load + encode): {cold:7.2f} s  = {len(texts) / cold:7.1f} rows/s")
    print(f"  cached second run:          {warm:7.3f} s  = ×{cold / warm:.0f} faster")


if __name__ == "__main__":
    main()
