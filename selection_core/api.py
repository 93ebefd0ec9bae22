"""The library's public API for notebooks and pipelines: selectors in scikit-learn's style over
numpy arrays (or pandas), built on the same configs and math as the CLI and the app, so for the
same inputs and seeds they return exactly the CLI's rows.

Parameters go to `__init__` (their defaults are the configs' own), `fit` returns self, learned
attributes end in `_`. Bad shapes get one clear `ConfigError`.

>>> import numpy as np
>>> from selection_core import KMQSelector
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(c, 0.1, size=(50, 4)) for c in (0.0, 3.0)])
>>> selector = KMQSelector(k=2, budget=10, seed=0).fit(X, quality=rng.random(100))
>>> len(selector.selected_), int(selector.cluster_budgets_.sum())
(10, 10)
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cluster.kmeans import FaissKMeans, as_float32_matrix
from .cluster.sweep import sweep_k as _sweep
from .spine.config import (EmbedConfig, IterativeConfig, KMeansConfig, SelectionConfig, SweepConfig,
                           field_default)
from .spine.errors import ConfigError
from .features.embed import TextEmbedder
from .select.bids import InfluenceSelectConfig, select_on_matrix
from .select.kmq import select_static
from .select.registry import get_method, method_names
from .spine.store import RunStore, write_jsonl

_SELECTION = SelectionConfig()  # the declared defaults, read once here


def _budget(budget: Any, n_rows: int) -> int:
    """The CLI's budget rules for the library: a count (`500`) or a share (`"10%"`) of `n_rows`;
    a fractional count is refused with a ConfigError, never truncated."""
    from .select.stages import parse_budget

    if isinstance(budget, float | np.floating) and float(budget).is_integer():
        budget = int(budget)
    return parse_budget(budget, n_rows, size="the number of rows")
_KMEANS = KMeansConfig(k=_SELECTION.k)
_EMBED = EmbedConfig()


def _vector(values: Any, n_rows: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_rows,):
        raise ConfigError(f"{name} must hold one value per row ({n_rows}), got shape "
                          f"{array.shape}")
    return array


def _available(exclude: Any, n_rows: int, budget: int) -> np.ndarray:
    """The row indices a selector may choose: all but `exclude` (a boolean mask, or row
    indices, of rows to leave out — a clean result's flagged rows: `clean.exclusion`)."""
    mask = np.zeros(n_rows, dtype=bool)
    if exclude is not None:
        values = np.asarray(exclude)
        if values.dtype == bool:
            if values.shape != (n_rows,):
                raise ConfigError(f"exclude must be one flag per row ({n_rows}) or row indices, "
                                  f"got shape {values.shape}")
            mask = values
        else:
            mask[values.astype(np.int64)] = True
    available = np.flatnonzero(~mask)
    if budget > len(available):
        raise ConfigError(f"budget {budget} is larger than the {len(available)} rows not "
                          "excluded")
    return available


class KMQSelector:
    """Static selection on k-means clusters of `X` (kMQ, Yu et al. 2024, and its baselines).

    `method`: a static method of `select.registry` (`KMQSelector.methods()`: "kmq", budget
    proportional to cluster size and softmax(quality/tau) sampling inside each cluster,
    `top=True` taking each cluster's best; its baselines). `seed` seeds the sampling,
    `kmeans_seed` the clustering.
    Learned: `selected_` (row indices, sorted), `labels_`, `cluster_centers_`,
    `cluster_budgets_` (selected rows per cluster; they sum to the budget).

    >>> import numpy as np
    >>> X = np.repeat(np.eye(3), 20, axis=0) + 0.01 * np.arange(60)[:, None]
    >>> KMQSelector(k=3, budget=6, method="kmeans-random").fit(X).cluster_budgets_.tolist()
    [2, 2, 2]
    """

    def __init__(self, k: int = _SELECTION.k, budget: int | str = _SELECTION.budget,
                 method: str = _SELECTION.method, tau: float = _SELECTION.sample_tau,
                 top: bool = _SELECTION.top, seed: int = _SELECTION.sample_seed,
                 kmeans_seed: int = _KMEANS.seed, niter: int = _KMEANS.niter,
                 nredo: int = _KMEANS.nredo) -> None:
        self.k = k
        self.budget = budget
        self.method = method
        self.tau = tau
        self.top = top
        self.seed = seed
        self.kmeans_seed = kmeans_seed
        self.niter = niter
        self.nredo = nredo

    @staticmethod
    def methods() -> dict[str, str]:
        """The methods `method` takes, with their descriptions (the registry's)."""
        return {name: get_method(name).description for name in method_names()}

    def selection_config(self, n_rows: int | None = None) -> SelectionConfig:
        """The CLI's config for these parameters (`select --method … --k … --tau …`); a share
        budget ("10%") needs the number of rows."""
        budget = int(self.budget) if n_rows is None else _budget(self.budget, n_rows)
        return SelectionConfig(method=self.method, budget=budget, k=int(self.k),
                               sample_tau=float(self.tau), top=bool(self.top),
                               sample_seed=int(self.seed))

    def kmeans_config(self) -> KMeansConfig:
        return KMeansConfig(k=int(self.k), seed=int(self.kmeans_seed), niter=int(self.niter),
                            nredo=int(self.nredo))

    def fit(self, X: Any, quality: Any = None, exclude: Any = None) -> KMQSelector:
        """Cluster `X` (one embedding per row) and select `budget` rows. `quality` (one score
        per row, higher is better) drives kmq and quality-top; without it every row scores the
        same, so kmq draws uniformly inside each cluster. `exclude` (a boolean mask or row
        indices) leaves rows out of the selection, not of the clustering: a clean result's
        flagged rows, `~clean.exclusion(store, ids).available`."""
        X = as_float32_matrix(np.asarray(X))
        config = self.selection_config(len(X))
        if get_method(config.method).needs_quality and quality is None:
            raise ConfigError(f"{config.method} needs quality: one score per row")
        scores = np.zeros(len(X)) if quality is None else _vector(quality, len(X), "quality")
        model = FaissKMeans.from_config(self.kmeans_config()).fit(X)
        self.labels_ = model.labels_
        self.cluster_centers_ = model.cluster_centers_
        rows = _available(exclude, len(X), config.budget)
        self.selected_ = rows[select_static(config, model.labels_[rows], scores[rows],
                                            model.distances_[rows])]
        self.cluster_budgets_ = np.bincount(model.labels_[self.selected_], minlength=config.k)
        return self


class IterativeKMQ:
    """Iterative kMQ (Yu et al. 2024) over arrays, with your own model and training loop: each
    round draws by kMQ with cluster weights, trains `model` on everything drawn so far, generates
    answers for a sample of the drawn prompts, scores them against the gold responses and moves
    the weights toward the clusters the model is bad at.

    `model` is any object with the methods of `selection_core.iterative.loop.RoundModel` — `name`,
    `train(prompts, responses, out_dir, previous, seed)`, `generate(prompts)`, `truncate(texts)`
    and `response_log_likelihood(prompts, responses)` — so your own trainer plugs in. Rounds are
    kept in `work_dir` (a new temporary folder when None): a rerun there with the same inputs
    resumes after the last finished round. It is the same loop, on the same inputs, as
    `python -m selection_core iterate`. Learned: `selected_` (rows in selection order),
    `weights_` (cluster weights after the last update), `labels_`, `rounds_` (per round and
    cluster: weight, mean score, rows selected, weight entropy), `work_dir_`.
    """

    def __init__(self, k: int, budget: int | str, model: Any,
                 rounds: int = field_default(IterativeConfig, "rounds"),
                 weight_tau: float = field_default(IterativeConfig, "weight_tau"),
                 sample_tau: float = field_default(IterativeConfig, "sample_tau"),
                 scorer: str = field_default(IterativeConfig, "scorer"),
                 quality: str = field_default(IterativeConfig, "quality"),
                 eval_per_round: int = field_default(IterativeConfig, "eval_per_round"),
                 seed: int = field_default(IterativeConfig, "round_seed"),
                 kmeans_seed: int = _KMEANS.seed,
                 work_dir: str | Path | None = None) -> None:
        self.k = k
        self.budget = budget
        self.model = model
        self.rounds = rounds
        self.weight_tau = weight_tau
        self.sample_tau = sample_tau
        self.scorer = scorer
        self.quality = quality
        self.eval_per_round = eval_per_round
        self.seed = seed
        self.kmeans_seed = kmeans_seed
        self.work_dir = work_dir

    def iterative_config(self, n_rows: int | None = None) -> IterativeConfig:
        budget = int(self.budget) if n_rows is None else _budget(self.budget, n_rows)
        return IterativeConfig(k=int(self.k), budget=budget, rounds=int(self.rounds),
                               weight_tau=float(self.weight_tau),
                               sample_tau=float(self.sample_tau), scorer=self.scorer,
                               quality=self.quality, eval_per_round=int(self.eval_per_round),
                               seed=int(self.seed), model=str(self.model.name))

    def fit(self, X: Any, prompts: Sequence[str], responses: Sequence[str]) -> IterativeKMQ:
        """`X`: one embedding per row; `prompts` and `responses`: the rows' text (the gold
        responses the model is trained on and its answers are scored against)."""
        from .select import stages as pipeline
        from .iterative.loop import RefinementLoop, rounds_table

        X = as_float32_matrix(np.asarray(X))
        prompts, responses = [str(p) for p in prompts], [str(r) for r in responses]
        if not len(prompts) == len(responses) == len(X):
            raise ConfigError(f"X, prompts and responses must have one entry per row; got "
                              f"{len(X)}, {len(prompts)} and {len(responses)}")
        config = self.iterative_config(len(X))
        folder = Path(self.work_dir) if self.work_dir is not None else \
            Path(tempfile.mkdtemp(prefix="selection-core-iterative-"))
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"work_dir {folder} is a file; give a folder (new or one an "
                              "earlier fit used, to resume)")
        folder.mkdir(parents=True, exist_ok=True)
        store = RunStore(folder / "run")
        rows = [{"id": str(i), "prompt": p, "response": r}
                for i, (p, r) in enumerate(zip(prompts, responses, strict=True))]
        pipeline.ingest(store, [str(write_jsonl(folder / "pool.jsonl", rows))])
        np.save(folder / "vectors.npy", X, allow_pickle=False)
        pipeline.embed_vectors(store, folder / "vectors.npy")
        loop = RefinementLoop(config, self.model).fit(store, KMeansConfig(k=config.k,
                                                                 seed=int(self.kmeans_seed)))
        self.selected_, self.weights_, self.labels_ = loop.selected_, loop.weights_, loop.labels_
        self.rounds_ = rounds_table(loop.rounds_)
        self.work_dir_ = folder
        return self


class BIDSSelector:
    """Selection on an attribution matrix `A` (training rows × validation instances) with each
    column's task: "bids" (Dai et al. 2025: column z-scores, greedy for the least-served task),
    or the baselines "task-max" (LESS), "instance-max", "instance-max-norm", "sum", "random".
    Learned: `selected_` (row indices in selection order).

    >>> import numpy as np
    >>> A = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8]])
    >>> BIDSSelector(budget=2).fit(A, tasks=["math", "code"]).selected_.tolist()
    [2, 0]
    """

    def __init__(self, budget: int | str, method: str = "bids", seed: int = 0) -> None:
        self.budget = budget
        self.method = method
        self.seed = seed

    def fit(self, A: Any, tasks: Sequence[str], exclude: Any = None) -> BIDSSelector:
        """Select on `A`; `exclude` (a boolean mask or row indices) leaves rows out, as
        `KMQSelector.fit`'s."""
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2:
            raise ConfigError(f"A must be a matrix (training rows × validation instances), "
                              f"got shape {A.shape}")
        tasks = np.asarray(tasks, dtype=str)
        if tasks.shape != (A.shape[1],):
            raise ConfigError(f"tasks must name one task per column of A ({A.shape[1]}), got "
                              f"{tasks.shape[0] if tasks.ndim == 1 else tasks.shape}")
        InfluenceSelectConfig(self.method, str(self.budget), int(self.seed))  # the declared check
        budget = _budget(self.budget, len(A))
        rows = _available(exclude, len(A), budget)
        self.selected_ = rows[np.asarray(select_on_matrix(A[rows], tasks, self.method, budget,
                                                          seed=int(self.seed)),
                                         dtype=np.int64)]
        return self


def embed(texts: Sequence[str], model: str = _EMBED.model, batch_size: int = _EMBED.batch_size,
          device: str = _EMBED.device) -> np.ndarray:
    """One L2-normalised float32 vector per text, as the CLI's `embed` computes them (no cache).

    >>> vectors = embed(["write a haiku", "add 2 and 3"])  # doctest: +SKIP
    """
    config = EmbedConfig(model=model, batch_size=batch_size, device=device)
    return TextEmbedder.from_config(config).encode(list(texts))


def sweep_k(X: Any, ks: Sequence[int], seed: int = _KMEANS.seed) -> pd.DataFrame:
    """k-means at each k with inertia, silhouette (exact on a sample) and simplified silhouette,
    as the CLI's `sweep`; `attrs` holds the recommended k and the knee of the inertia curve.

    >>> import numpy as np
    >>> X = np.repeat(np.eye(3), 20, axis=0) + 0.01 * np.arange(60)[:, None]
    >>> table = sweep_k(X, [2, 3, 4])
    >>> table["k"].tolist(), table.attrs["recommended_k"]
    ([2, 3, 4], 3)
    """
    result = _sweep(np.asarray(X), SweepConfig(ks=tuple(int(k) for k in ks), seed=seed))
    table = result.table[["k", "inertia", "silhouette", "simplified_silhouette"]].copy()
    table.attrs.update(recommended_k=result.recommended_k, knee_k=result.knee_k)
    return table
