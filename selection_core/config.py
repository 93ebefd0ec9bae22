"""One frozen config dataclass per method; its hash names caches and run artefacts.

Configs are the API: each parameter and its default is declared once, here, with `param(...)`
metadata (help text, choices, bounds, CLI flag and its old aliases); the CLI flags
(`config_args.add_config_arguments`), the experiment TOML's defaults and the app's widgets
(`widget`) are derived from these declarations, so they cannot drift.

Fields marked `hash=False` (batch sizes, devices) change how fast a result is computed, not what
it is, so they are left out of the hash: a cache filled on a GPU with batch 256 is reused on a
laptop with batch 16.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from .errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TextField = Literal["prompt", "prompt+response"]
Pooling = Literal["auto", "mean", "last", "cls"]
SELECTION_METHODS = ("kmq", "kmeans-random", "kmeans-closest", "random", "quality-top")
SCORERS = ("heuristic", "perplexity", "reward")
KEEP_CHOICES = ("none", "duplicates", "contaminated", "all")  # flagged rows a selection keeps
KMeansInit = Literal["k-means++", "random"]
KMEANS_INITS = ("k-means++", "random")


def speed_only() -> Any:
    return {"hash": False}


def param(default: Any = MISSING, *, help: str = "", choices: Sequence[Any] | None = None,
          low: float | None = None, positive: bool = False, flag: str | None = None,
          aliases: Sequence[str] = (), hash: bool = True) -> Any:
    """A config field with the metadata every front end derives from: `help`, `choices`, `low`
    (inclusive minimum), `positive` (> 0), the CLI `flag` (default `--field-name`) and old flag
    `aliases` kept working, and `hash=False` for fields that change speed, not results."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None,
                "low": low, "positive": positive, "flag": flag, "aliases": tuple(aliases),
                "hash": hash}
    return field(default=default, metadata=metadata)


class Widget(NamedTuple):
    """What a page widget needs from a field: its default, bounds, choices and help."""

    default: Any
    min_value: float | None
    choices: tuple[Any, ...] | None
    help: str


def widget(config_type: type, name: str) -> Widget:
    """The widget settings of one config field (pages read defaults and bounds from here)."""
    spec = {f.name: f for f in dataclasses.fields(config_type)}[name]
    low = spec.metadata.get("low")
    return Widget(spec.default, low, spec.metadata.get("choices"), spec.metadata.get("help", ""))


def value_problem(config_type: type, name: str, value: Any) -> str | None:
    """Why `value` breaks field `name`'s declared bounds or choices, or None: the one check the
    CLI flags and the experiment TOML both apply."""
    meta = {f.name: f for f in dataclasses.fields(config_type)}[name].metadata
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        choices = meta.get("choices")
        if choices and value not in choices:
            return f"must be one of {', '.join(map(str, choices))}, got {value!r}"
        return None
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every range check
        return f"must be a finite number, got {value}"
    if meta.get("positive") and value <= 0:
        return f"must be positive, got {value}"
    low = meta.get("low")
    if low is not None and value < low:
        return f"must be at least {low:g}, got {value}"
    return None


def field_default(config_type: type, name: str) -> Any:
    """The one declared default of a config field."""
    return widget(config_type, name).default


class _Renamed:
    """An old field name kept readable: the value on an instance, the default on the class."""

    def __init__(self, new: str) -> None:
        self.new = new

    def __get__(self, obj: Any, owner: type) -> Any:
        return getattr(owner if obj is None else obj, self.new)


C = TypeVar("C")


def renamed(**old_to_new: str) -> Callable[[type[C]], type[C]]:
    """Class decorator: a renamed field's old keyword and attribute keep working (callers and
    stored configs written before the rename), while the declaration exists once."""

    def wrap(cls: type[C]) -> type[C]:
        init = cls.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"give {new} or its old name {old}, not both")
                    kwargs[new] = kwargs.pop(old)
            init(self, *args, **kwargs)

        __init__.__doc__ = init.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign]
        for old, new in old_to_new.items():
            setattr(cls, old, _Renamed(new))
        cls.renamed_fields = dict(old_to_new)  # type: ignore[attr-defined]
        return cls

    return wrap


class HashedConfig:
    """Mixin: a stable short hash of the fields that change results."""

    def hash_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.metadata.get("hash", True)}

    def config_hash(self) -> str:
        payload = json.dumps({"type": type(self).__name__, **self.hash_fields()}, sort_keys=True,
                             default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class EmbedConfig(HashedConfig):
    """Text embeddings (METHODS §1.1)."""

    model: str = DEFAULT_EMBEDDING_MODEL
    text: TextField = "prompt"
    pooling: Pooling = "auto"  # auto: the model's own (sentence-transformers) or mean
    max_length: int = 256
    normalize: bool = True
    batch_size: int = field(default=32, metadata=speed_only())
    device: str = field(default="auto", metadata=speed_only())


def kmeans_init_param() -> Any:
    """The `init` field of the k-means and sweep configs (one declaration, two configs). It is
    in the hash, so clusters cached under faiss' random start are never taken for k-means++'s."""
    return param("k-means++", choices=KMEANS_INITS, flag="--kmeans-init",
                 help="how each k-means restart starts: k-means++ seeds drawn on the training "
                      "sample (as scikit-learn and cuML), or faiss' random rows (the clusters of "
                      "versions before k-means++)")


@dataclass(frozen=True)
class KMeansConfig(HashedConfig):
    """faiss k-means (METHODS §1.2; reference settings niter=300, nredo=5, L2), started from
    k-means++ seeds."""

    k: int
    seed: int = 0
    niter: int = 300
    nredo: int = 5
    spherical: bool = False
    max_points_per_centroid: int = 256
    init: KMeansInit = kmeans_init_param()
    use_gpu: bool | None = field(default=None, metadata=speed_only())  # None: when available


@dataclass(frozen=True)
class SweepConfig(HashedConfig):
    """k sweep: inertia, exact silhouette on a seeded sample, simplified silhouette on all."""

    ks: tuple[int, ...]
    sample_size: int = 10_000
    metric: Literal["euclidean", "cosine"] = "euclidean"
    seed: int = 0
    niter: int = 300
    nredo: int = 5
    spherical: bool = False
    max_points_per_centroid: int = 256
    init: KMeansInit = kmeans_init_param()

    def kmeans(self, k: int) -> KMeansConfig:
        return KMeansConfig(k=k, seed=self.seed, niter=self.niter, nredo=self.nredo,
                            spherical=self.spherical,
                            max_points_per_centroid=self.max_points_per_centroid,
                            init=self.init)


@dataclass(frozen=True)
class UMAPConfig(HashedConfig):
    """2-D projection for the map; seeded, computed once per embedding."""

    # More neighbours than umap's default 15 keep global structure (related islands sit together)
    # and a larger min_dist gives readable blobs rather than specks; computed once per pool.
    n_neighbors: int = 100
    min_dist: float = 0.5
    metric: str = "cosine"
    seed: int = 0
    # Million-row pools (cluster/projection.py): UMAP fits a seeded sample, the rest is placed.
    fit_rows: int = param(20_000, help="UMAP fits on at most this many rows (a seeded sample); "
                                       "every other row is placed by its sampled neighbours",
                          low=4)
    placement_neighbors: int = param(10, help="sampled neighbours whose 2-D positions place a "
                                              "row not in the fitted sample", low=1)


@dataclass(frozen=True)
class ScorerConfig(HashedConfig):
    """A quality scorer: one float per example, higher is better (METHODS §1.3)."""

    name: Literal["heuristic", "perplexity", "reward"] = "heuristic"
    model: str | None = None  # HF name or local path for perplexity / reward
    max_length: int = 512
    batch_size: int = field(default=8, metadata=speed_only())
    device: str = field(default="auto", metadata=speed_only())


@renamed(tau="sample_tau", seed="sample_seed")
@dataclass(frozen=True)
class SelectionConfig(HashedConfig):
    """Static selection on one clustering (METHODS §1.3). `k` is the clustering's k: the
    selection refuses a clustering of another k (`check_clustering`)."""

    method: Literal["kmq", "kmeans-random", "kmeans-closest", "random", "quality-top"] = param(
        "kmq", help="selection method", choices=SELECTION_METHODS)
    budget: int = param(1000, help="rows to select", low=1)
    k: int = param(8, help="clusters (k-means k)", low=1)
    sample_tau: float = param(1.0, help="kMQ softmax temperature over quality inside a cluster",
                              positive=True, flag="--tau")
    top: bool = param(False, help="kMQ: take the top b_j per cluster instead of sampling")
    sample_seed: int = param(0, help="seed of the sampling (kmq, kmeans-random, random)",
                             flag="--seed")
    scorer: str = param("heuristic", help="quality scorer", choices=SCORERS)

    def check_clustering(self, k: int) -> None:
        if k != self.k:
            raise ConfigError(f"the selection asks for k={self.k} but the clustering has k={k}")


@dataclass(frozen=True)
class LoRAConfig(HashedConfig):
    """LoRA SFT hyper-parameters (the trainer is `train.lora.LoRATrainer`; declared here, free of
    torch, so the CLI can show its defaults without loading torch)."""

    r: int = param(8, help="LoRA rank", positive=True)
    alpha: int = param(16, help="LoRA scaling alpha", positive=True)
    dropout: float = param(0.05, help="LoRA dropout", low=0)
    target_modules: tuple[str, ...] | None = param(
        None, help="adapted modules; None: q/k/v/o projections, else all linear layers")
    epochs: int = param(1, help="epochs over the training rows", low=1)
    max_steps: int | None = param(None, help="stop after this many optimizer steps (CPU demos); "
                                             "None: all epochs", low=1)
    learning_rate: float = param(2e-4, help="peak learning rate", positive=True, flag="--lr")
    weight_decay: float = param(0.0, help="AdamW weight decay", low=0)
    warmup_ratio: float = param(0.03, help="share of the steps with a linear learning-rate "
                                           "warm-up", low=0)
    lr_scheduler: Literal["linear", "cosine"] = param(
        "linear", help="decay after the warm-up", choices=("linear", "cosine"))
    batch_size: int = param(8, help="examples per forward pass", low=1)
    grad_accumulation: int = param(1, help="forward passes per optimizer step", low=1)
    max_length: int = param(512, help="tokens per example (prompt + response)", low=1)
    seed: int = param(0, help="the training's seed (data order, adapter initialisation)")
    chat_template: bool | None = param(None, help="None: the tokenizer's template when it has "
                                                  "one")
    device: str = param("auto", help="auto, cpu, cuda, cuda:1 …", hash=False)
    dtype: str | None = param(None, help="weights' dtype (None: the model's own)", hash=False)
    processes: int = param(1, positive=True, hash=False,
                           help="training processes: >1 trains with DDP, one per GPU (torchrun)")
    activation_checkpointing: Literal["auto", "on", "off"] = param(
        "auto", hash=False, choices=("auto", "on", "off"),
        help="recompute each layer's activations in the backward instead of keeping them (the "
             "same numbers, a fraction of the memory, about a sixth more time); auto: on when "
             "training on CPU")


# --------------------------------------------------------------------------- iterative kMQ
GapScorer = Literal["reward", "perplexity", "heuristic"]
GAP_SCORERS: tuple[str, ...] = ("reward", "perplexity", "heuristic")
MAX_NEW_TOKENS = 512  # a round model's generation cap (the reference implementation's); gold is
#                       cut by the same rule before scoring, so S compares like with like


@renamed(tau="weight_tau", seed="round_seed")
@dataclass(frozen=True)
class IterativeConfig(HashedConfig):
    """One iterative kMQ run (METHODS §1.4); its hash names the run's folder, so changing
    anything starts over while rerunning the same config resumes.

    Two temperatures, two meanings: `weight_tau` scales the cluster-weight update
    exp(s_j / τ); `sample_tau` is the in-cluster quality softmax (as static kMQ's). Its seed is
    `round_seed` (the k-means seed is `KMeansConfig.seed`, the static selection's
    `SelectionConfig.sample_seed`); the old name `seed` is still read."""

    k: int = param(help="clusters (k-means k)", low=1)
    budget: int = param(help="rows in all, over every round", low=1)
    rounds: int = param(3, help="rounds", low=1)
    weight_tau: float = param(1.0, help="weight-update temperature, in standard deviations of S "
                                        "(the same for every scorer)", positive=True,
                              aliases=("--tau",))
    sample_tau: float = param(1.0, help="in-cluster quality softmax temperature", positive=True)
    scorer: GapScorer = param("perplexity", help="how gold and generated answers are compared",
                              choices=GAP_SCORERS)
    scorer_model: str | None = param(None, help="reward model for --scorer reward")
    quality: str = param("heuristic", help="in-cluster quality scorer", choices=SCORERS)
    quality_model: str | None = param(None, help="model of the in-cluster quality scorer")
    eval_per_round: int = param(64, help="prompts generated for and scored each round (more "
                                         "when k needs them: see min_scored_per_cluster)", low=1)
    min_scored_per_cluster: int = param(2, help="scored items per cluster with selected items: "
                                                "two show a cluster's own spread, which the "
                                                "shrinkage of s_j needs", low=1)
    continue_training: bool = param(True, help="False: every round trains the base model")
    low_quality_threshold: float = param(0.3, help="on the 0–1 normalised quality (paper "
                                                   "Figure 4)")
    round_seed: int = param(0, help="the rounds' seed: draws, evaluation sample, training "
                                    "(seed + round)", flag="--seed")
    model: str = param("", help="the trained model (name or path)")
    training: str = param("", help="the trainer's own config hash (LoRA, generation length)")
    device: str = param("auto", help="auto, cpu, cuda, cuda:1 …", hash=False)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be at least 1, got {self.rounds}")
        if self.budget < self.rounds:
            raise ConfigError(f"budget {self.budget} is smaller than the {self.rounds} rounds: "
                              "every round must add at least one item")
        if self.weight_tau <= 0 or self.sample_tau <= 0:
            raise ConfigError("temperatures must be > 0")
        if self.scorer not in GAP_SCORERS:
            raise ConfigError(f"unknown scorer '{self.scorer}'; use {', '.join(GAP_SCORERS)}")
        if self.scorer == "reward" and not self.scorer_model:
            raise ConfigError("the reward scorer needs a reward model (--scorer-model NAME_OR_PATH)")
        if self.eval_per_round < 1:
            raise ConfigError(f"eval_per_round must be at least 1, got {self.eval_per_round}")
        if self.min_scored_per_cluster < 1:
            raise ConfigError("min_scored_per_cluster must be at least 1, got "
                              f"{self.min_scored_per_cluster}")
