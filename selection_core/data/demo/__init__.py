"""The built-in demo pool: a synthetic instruction-tuning pool whose ground truth is known.

Why it exists: to show that data selection works, we need a pool where the answer is known. Every
row has a `skill` (clustering should recover it), machine-checkable `gold`, and an `is_noise` /
`noise_type` label (quality-based selection should avoid those rows), and comes from a `source`
with its own noise rate and skill mix, like real pools assembled from several places.

Everything is generated here from templates and word lists (no copied data) with seeded
`random.Random` streams, so a given (n, seed, noise_rate) always yields the same pool. Held-out
evaluation items come from a disjoint slice of the item space (a hash partition of the normalised
prompt), so no pool of any seed ever contains an evaluation prompt.

Layout: one module per skill (its generator and its checker), `skills` (the registry and
`check_answer`), `noise` (the noise kinds), `pool` (sources, the evaluation partition, assembly).
"""
from __future__ import annotations

from .noise import NOISE_TYPES
from .pool import SOURCES, generate_demo_eval, generate_demo_pool, write_demo_pool
from .skills import SKILLS, check_answer

__all__ = ["NOISE_TYPES", "SKILLS", "SOURCES", "check_answer", "generate_demo_eval",
           "generate_demo_pool", "write_demo_pool"]
