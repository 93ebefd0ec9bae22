"""Past one machine: the per-row model stages (embedding, quality scoring, LESS gradient and RDS
features) as Ray Data `map_batches` over class workers that load their model once.

The math stays where it is: a worker calls the same function the single-process path calls on
the same row ranges (the stage's resume chunks), and the driver writes each finished shard
atomically where the single-process path keeps its chunks, so a Ray run, a single-process run and
any mix of the two (a resumed run) assemble the same artefacts.
"""
from __future__ import annotations

from .config import ScaleConfig
from .shards import ShardedArray, run_shards

__all__ = ["ScaleConfig", "ShardedArray", "run_shards"]
