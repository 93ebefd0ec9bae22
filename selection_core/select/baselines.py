"""The baselines both selection families end in: the top-b rows by a score, and b random rows.

kMQ's quality-top and the influence methods' task-max / instance-max / sum all rank rows by one
score and take a prefix (`top_rows`); both families compare against random rows.

Two random draws stay, because each family's published selections are made with its own:
`random_select` (kMQ's random baseline, `Generator.choice` without replacement) and
`random_rows` (the influence baseline, a prefix of one seeded permutation, so the rows for a
smaller budget are a prefix of those for a larger one — one run serves a budget sweep). The
same seed gives different rows in the two, so merging them would change one family's results.
"""
from __future__ import annotations

import numpy as np

from ..spine.errors import ConfigError


def check_budget(budget: int, n_rows: int) -> None:
    if not 0 <= budget <= n_rows:
        raise ConfigError(f"budget {budget} must be between 0 and the pool size ({n_rows})")


def top_rows(scores: np.ndarray, budget: int) -> np.ndarray:
    """The `budget` highest-scoring rows, best first; ties go to the lower row index, so the
    ranking is total and a smaller budget is a prefix."""
    scores = np.asarray(scores, dtype=np.float64)
    check_budget(budget, len(scores))
    return np.argsort(-scores, kind="stable")[:budget].astype(np.int64)


def random_rows(n: int, budget: int, seed: int) -> np.ndarray:
    """A seeded random permutation's first `budget` rows (a prefix of the same permutation for
    every budget)."""
    check_budget(budget, n)
    return np.random.default_rng(seed).permutation(n)[:budget].astype(np.int64)


def random_select(n_rows: int, budget: int, seed: int = 0) -> np.ndarray:
    """kMQ's random baseline: `budget` distinct rows drawn uniformly with `seed`."""
    check_budget(budget, n_rows)
    return np.random.default_rng(seed).choice(n_rows, budget, replace=False).astype(np.int64)
