"""Iterative kMQ refinement: the math of each round (METHODS §1.4), pure and seeded.

The loop that trains, generates and persists rounds lives in `selection_core.iterate`; here are only
the decisions it makes, so each can be tested on its own:
- how the budget splits over rounds (exact, the first rounds take the remainder);
- which new rows a round draws (per-cluster budget ∝ w_j · |remaining X_j|, quality-weighted);
- which selected prompts are generated for (a seeded, cluster-balanced sample);
- how cluster scores move the weights (w_j ← w_j · exp(s_j / τ), renormalised; clusters without
  scored items keep their weight — the reference code used softmax(s), dropped w and crashed there).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..config import HashedConfig, speed_only
from ..errors import ConfigError
from .static import allocate_budget, kmq_select

GapScorer = Literal["reward", "perplexity", "heuristic"]
GAP_SCORERS: tuple[str, ...] = ("reward", "perplexity", "heuristic")


@dataclass(frozen=True)
class IterativeConfig(HashedConfig):
    """One iterative kMQ run; its hash names the run's folder, so changing anything starts over
    while rerunning the same config resumes."""

    k: int
    budget: int
    rounds: int = 3
    tau: float = 1.0  # temperature of the weight update exp(s_j / τ)
    sample_tau: float = 1.0  # temperature of the in-cluster quality softmax (as static kMQ)
    scorer: GapScorer = "perplexity"
    scorer_model: str | None = None  # the reward model for scorer="reward"
    quality: str = "heuristic"  # the run's quality scorer used inside clusters (as `select`)
    quality_model: str | None = None
    eval_per_round: int = 64  # selected prompts generated for and scored each round
    continue_training: bool = True  # False: every round trains the base model from scratch
    low_quality_threshold: float = 0.3  # on the 0–1 normalised quality (paper Figure 4)
    seed: int = 0
    model: str = ""  # the trained model (name or path)
    training: str = ""  # the trainer's own config hash (LoRA settings, generation length)
    device: str = field(default="auto", metadata=speed_only())

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be at least 1, got {self.rounds}")
        if self.budget < self.rounds:
            raise ConfigError(f"budget {self.budget} is smaller than the {self.rounds} rounds: "
                              "every round must add at least one item")
        if self.tau <= 0 or self.sample_tau <= 0:
            raise ConfigError("temperatures must be > 0")
        if self.scorer not in GAP_SCORERS:
            raise ConfigError(f"unknown scorer '{self.scorer}'; use {', '.join(GAP_SCORERS)}")
        if self.scorer == "reward" and not self.scorer_model:
            raise ConfigError("the reward scorer needs a reward model (--scorer-model NAME_OR_PATH)")
        if self.eval_per_round < 1:
            raise ConfigError(f"eval_per_round must be at least 1, got {self.eval_per_round}")


def round_sizes(budget: int, rounds: int) -> list[int]:
    """b/R items a round, exactly b in all; the first b mod R rounds take one more."""
    base, extra = divmod(int(budget), int(rounds))
    return [base + (t < extra) for t in range(rounds)]


def round_seed(seed: int, round_number: int, purpose: int) -> np.random.SeedSequence:
    """Independent seeded streams per round and purpose, so a resumed run draws what an
    uninterrupted one would have drawn."""
    return np.random.SeedSequence([seed, round_number, purpose])


def draw_round(labels: np.ndarray, quality: np.ndarray, weights: np.ndarray,
               selected: np.ndarray, n_items: int, sample_tau: float, seed: int,
               round_number: int) -> np.ndarray:
    """The n_items new rows of one round: per-cluster budget ∝ w_j · |remaining X_j| (exact
    total), softmax(q/τ) sampling without replacement inside each cluster."""
    available = np.ones(len(labels), dtype=bool)
    available[selected] = False
    if n_items > available.sum():
        raise ConfigError(f"round {round_number} needs {n_items} new items but only "
                          f"{int(available.sum())} remain unselected")
    sampling_seed = int(round_seed(seed, round_number, 0).generate_state(1)[0])
    return kmq_select(labels, quality, n_items, tau=sample_tau, seed=sampling_seed,
                      weights=weights, available=available)


def evaluation_sample(labels: np.ndarray, selected: np.ndarray, n_items: int, seed: int,
                      round_number: int) -> np.ndarray:
    """A seeded sample of the selected rows to generate for: as even over clusters as their
    counts allow, so every cluster that has items gets a score estimate."""
    selected = np.asarray(selected, dtype=np.int64)
    k = int(labels.max()) + 1
    counts = np.bincount(labels[selected], minlength=k)
    per_cluster = allocate_budget(counts, min(n_items, len(selected)),
                                  weights=np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0))
    rng = np.random.default_rng(round_seed(seed, round_number, 1))
    chosen = [rng.choice(selected[labels[selected] == j], int(n), replace=False)
              for j, n in enumerate(per_cluster) if n > 0]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def cluster_means(clusters: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster mean of `values` (NaN where a cluster has none) and the counts."""
    clusters = np.asarray(clusters, dtype=np.int64)
    counts = np.bincount(clusters, minlength=k)
    sums = np.bincount(clusters, weights=np.asarray(values, dtype=np.float64), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


def update_weights(weights: np.ndarray, cluster_scores: np.ndarray, tau: float) -> np.ndarray:
    """w_j ← w_j · exp(s_j / τ), renormalised; NaN scores (no scored items) leave w_j as it was.

    Computed in log space so large s/τ cannot overflow; zero weights stay zero.
    """
    weights = np.asarray(weights, dtype=np.float64)
    scores = np.asarray(cluster_scores, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ConfigError("one score per cluster weight is needed")
    if tau <= 0:
        raise ConfigError(f"temperature tau must be > 0, got {tau}")
    with np.errstate(divide="ignore"):
        log_w = np.log(weights) + np.where(np.isnan(scores), 0.0, scores / tau)
    finite = np.isfinite(log_w)
    if not finite.any():
        raise ConfigError("every cluster weight is zero")
    new = np.where(finite, np.exp(log_w - log_w[finite].max()), 0.0)
    return new / new.sum()


def low_quality_share(cluster_quality: np.ndarray, threshold: float) -> float:
    """The share of scored clusters whose mean normalised quality is below `threshold`."""
    scored = cluster_quality[~np.isnan(cluster_quality)]
    return float((scored < threshold).mean()) if len(scored) else float("nan")
