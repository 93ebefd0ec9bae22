"""The built-in selection methods' registry entries (`select.registry`): kMQ and its baselines,
iterative kMQ, and the influence methods. Imported by `selection_core.select`, so importing any
selection module registers them."""
from __future__ import annotations

from ..spine.config import IterativeConfig
from . import rationale
from .baselines import random_select, top_rows
from .bids import InfluenceSelectConfig, select_on_matrix
from .kmq import kmeans_closest_select, kmeans_random_select, kmq_select
from .registry import Method, register


def _influence(name: str, description: str, order: int) -> Method:
    return Method(name, description, order, family="influence", config=InfluenceSelectConfig,
                  select=select_on_matrix)


for _method in (
    Method("random", "uniform over the whole pool", 10,
           select=lambda config, labels, quality, distances: random_select(
               len(labels), config.budget, config.sample_seed),
           inclusion=rationale.uniform_inclusion, how=rationale.random_how,
           reads=frozenset({"seed"})),
    Method("kmeans-random", "budget ∝ cluster size, uniform sampling in each cluster", 20,
           select=lambda config, labels, quality, distances: kmeans_random_select(
               labels, config.budget, config.sample_seed),
           clustered=True, inclusion=rationale.within_cluster_inclusion,
           how=rationale.kmeans_random_how, reads=frozenset({"clusters", "seed"})),
    Method("kmeans-closest", "budget ∝ cluster size, the rows nearest each centroid", 30,
           select=lambda config, labels, quality, distances: kmeans_closest_select(
               labels, distances, config.budget),
           clustered=True, how=rationale.closest_how, ranks=rationale.distance_ranks,
           reads=frozenset({"clusters"})),
    Method("quality-top", "the highest-quality rows overall (no diversity)", 40,
           select=lambda config, labels, quality, distances: top_rows(quality, config.budget),
           needs_quality=True, how=rationale.quality_top_how, ranks=rationale.pool_ranks,
           reads=frozenset({"scorer"})),
    Method("kmq", "k-means + quality: budget ∝ cluster size, softmax(quality/τ) sampling in "
                  "each cluster", 50,
           select=lambda config, labels, quality, distances: kmq_select(
               labels, quality, config.budget, config.sample_tau, config.sample_seed,
               config.top),
           clustered=True, inclusion=rationale.kmq_inclusion, how=rationale.kmq_how,
           reads=frozenset({"clusters", "scorer", "tau", "seed"})),
    Method("iterative-kmq", "iterative kMQ: each round's budget ∝ cluster weight × remaining "
                            "rows, quality-weighted sampling inside clusters, weights moved by "
                            "how well the model trained so far does on each cluster", 60,
           family="iterative", config=IterativeConfig, clustered=True,
           reads=frozenset({"clusters", "scorer", "tau", "seed", "training"})),
    _influence("task-max", "LESS: top rows by their best task's mean influence", 70),
    _influence("instance-max", "top rows by their largest influence on a single validation "
                               "instance", 80),
    _influence("sum", "top rows by their total influence over all validation instances", 90),
    Method("rds", "RDS: top rows by hidden-state cosine similarity to any validation instance",
           100, family="influence", config=None),
    _influence("bids", "BIDS: z-score every validation column, then greedily add the row that "
                       "most raises the instance it helps most above the selection's current "
                       "average", 110),
    _influence("instance-max-norm", "instance-max on the column-normalised Â (BIDS ablation: "
                                    "no greedy balancing)", 120),
):
    register(_method)


