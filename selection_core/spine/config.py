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
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar, get_args

from .errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TextField = Literal["prompt", "prompt+response"]
Pooling = Literal["auto", "mean", "last", "cls"]
SweepMetric = Literal["euclidean", "cosine"]
ScorerName = Literal["heuristic", "perplexity", "reward"]
SCORERS: tuple[str, ...] = get_args(ScorerName)
KEEP_CHOICES = ("none", "duplicates", "contaminated", "all")  # flagged rows a selection keeps
KMeansInit = Literal["k-means++", "random"]
KMEANS_INITS: tuple[str, ...] = get_args(KMeansInit)
C = TypeVar("C")
T = TypeVar("T")
Choices = Sequence[Any] | Callable[[], Sequence[Any]]


def speed_only() -> Any:
    """Metadata of a field left out of the hash (a plain dataclass field, not a `param`)."""
    return {"hash": False}


def param(default: Any = MISSING, *, help: str = "", choices: Choices | None = None,
          low: float | None = None, positive: bool = False, flag: str | None = None,
          aliases: Sequence[str] = (), hash: bool = True) -> Any:
    """A config field with the metadata every front end derives from: `help`, `choices` (a
    sequence, or a function returning the current ones: an open set such as the registered
    selection methods), `low` (inclusive minimum), `positive` (> 0), the CLI `flag` (default
    `--field-name`) and old flag `aliases` kept working, and `hash=False` for fields that change
    speed, not results. Every config checks its values against these at construction."""
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    metadata = {"help": help, "choices": choices, "low": low, "positive": positive,
                "flag": flag, "aliases": tuple(aliases), "hash": hash}
    return field(default=default, metadata=metadata)


def field_choices(spec: dataclasses.Field) -> tuple[Any, ...] | None:
    """A field's declared choices now (a function's are read at each call)."""
    choices = spec.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


class Widget(NamedTuple):
    """What a page widget needs from a field: its default, bounds, choices and help."""

    default: Any
    min_value: float | None
    choices: tuple[Any, ...] | None
    help: str
    positive: bool = False


def _field(config_type: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(config_type)}[name]


POSITIVE_WIDGET_MIN = 0.01  # a number input cannot say "> 0": its smallest positive value


def widget(config_type: type, name: str) -> Widget:
    """The widget settings of one config field (pages read defaults and bounds from here); a
    positive field without a lower bound starts at `POSITIVE_WIDGET_MIN`."""
    spec = _field(config_type, name)
    positive = bool(spec.metadata.get("positive"))
    low = spec.metadata.get("low")
    if low is None and positive:
        low = POSITIVE_WIDGET_MIN
    return Widget(spec.default, low, field_choices(spec), spec.metadata.get("help", ""),
                  positive)


def value_problem(config_type: type, name: str, value: Any, named: bool = False) -> str | None:
    """Why `value` breaks field `name`'s declared bounds or choices, or None: the one check the
    configs (at construction), the CLI flags and the experiment TOML all apply. `named`: the
    message names the field (the flag and TOML messages are prefixed with theirs)."""
    spec = _field(config_type, name)
    meta = spec.metadata
    if isinstance(value, (tuple, list)):  # a tuple field (the sweep's ks): each item's bounds
        problems = (value_problem(config_type, name, item, named) for item in value)
        return next((problem for problem in problems if problem), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        choices = field_choices(spec)
        if choices and value not in choices:
            if named:
                return f"unknown {name} {value!r}; use {', '.join(map(str, choices))}"
            return f"must be one of {', '.join(map(str, choices))}, got {value!r}"
        return None
    prefix = f"{name} " if named else ""
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every range check
        return f"{prefix}must be a finite number, got {value}"
    if meta.get("positive") and value <= 0:
        return f"{prefix}must be positive, got {value}"
    low = meta.get("low")
    if low is not None and value < low:
        return f"{prefix}must be at least {low:g}, got {value}"
    return None


def check_declared(config: Any) -> None:
    """Raise ConfigError on the first field whose value breaks its declaration."""
    for spec in dataclasses.fields(config):
        if spec.metadata.get("choices") or spec.metadata.get("low") is not None \
                or spec.metadata.get("positive"):
            problem = value_problem(type(config), spec.name, getattr(config, spec.name), named=True)
            if problem:
                raise ConfigError(problem)


def _converted(hint: Any, value: Any) -> Any:
    """`value` as read from JSON/TOML turned into the type `hint` names: lists into tuples,
    dicts into nested configs (`from_dict`); anything else as it is."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in get_args(hint):
            if arm is not type(None):
                converted = _converted(arm, value)
                if converted is not value:
                    return converted
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_converted(args[0], item) for item in value)
        return tuple(_converted(arm, item) for arm, item in zip(args, value, strict=False))
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    return value


def from_dict(config_type: type[C], stored: dict[str, Any]) -> C:
    """A config rebuilt from its `to_dict()` (a stored record, a parsed TOML section): the one
    reader, driven by the field types, so nested configs and tuples come back as declared."""
    hints = typing.get_type_hints(config_type)
    return config_type(**{key: _converted(hints[key], value) if key in hints else value
                          for key, value in stored.items()})


def field_default(config_type: type, name: str) -> Any:
    """The one declared default of a config field."""
    return widget(config_type, name).default


def register_once(table: dict[str, T], name: str, item: T, what: str) -> T:
    """Add `item` to a registry by name (stages, selection methods): registering the same item
    again is a no-op, a second item of the same name is refused."""
    if table.get(name, item) is not item:
        raise ConfigError(f"two {what} are named '{name}'")
    table[name] = item
    return item


class _Renamed:
    """An old field name kept readable: the value on an instance, the default on the class."""

    def __init__(self, new: str) -> None:
        self.new = new

    def __get__(self, obj: Any, owner: type) -> Any:
        return getattr(owner if obj is None else obj, self.new)



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
    """Mixin: a stable short hash of the fields that change results, the declared check at
    construction and the generic `from_dict`."""

    def __post_init__(self) -> None:
        check_declared(self)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Any:
        return from_dict(cls, stored)

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
    """Text embeddings (kMQ: Yu et al., 2024)."""

    model: str = param(DEFAULT_EMBEDDING_MODEL,
                       help="sentence-transformers or HF model name/path (the default is "
                            "packaged: offline)")
    text: TextField = param("prompt", help="what is embedded", choices=get_args(TextField))
    pooling: Pooling = param("auto", choices=get_args(Pooling),
                             help="auto: the model's own (sentence-transformers) or mean")
    max_length: int = param(256, help="tokens per text", low=1)
    normalize: bool = param(True, help="unit-length vectors")
    batch_size: int = param(32, help="texts per forward pass", low=1, hash=False)
    device: str = param("auto", help="auto, cpu, cuda, cuda:1 …", hash=False)


def kmeans_init_param() -> Any:
    """The `init` field of the k-means and sweep configs (one declaration, two configs). It is
    in the hash, so clusters cached under faiss' random start are never taken for k-means++'s."""
    return param("k-means++", choices=KMEANS_INITS, flag="--kmeans-init",
                 help="how each k-means restart starts: k-means++ seeds drawn on the training "
                      "sample (as scikit-learn and cuML), or faiss' random rows (the clusters of "
                      "versions before k-means++)")


# The k-means settings the k-means and sweep configs share: declared once, here.
_KMEANS_PARAMS: dict[str, dict[str, Any]] = {
    "seed": {"default": 0, "help": "k-means seed", "low": 0},
    "niter": {"default": 300, "help": "k-means iterations", "low": 1},
    "nredo": {"default": 5, "help": "k-means restarts (the lowest inertia is kept)", "low": 1},
    "spherical": {"default": False, "help": "cosine (spherical) k-means"},
    "max_points_per_centroid": {"default": 256, "low": 1,
                                "help": "faiss trains on at most this many points per centroid"},
}


def kmeans_param(name: str) -> Any:
    """A fresh field for one shared k-means setting (`_KMEANS_PARAMS`)."""
    return param(**_KMEANS_PARAMS[name])


@dataclass(frozen=True)
class KMeansConfig(HashedConfig):
    """faiss k-means (Yu et al., 2024; reference settings niter=300, nredo=5, L2), started from
    k-means++ seeds."""

    k: int = param(help="clusters (k-means k)", low=1)
    seed: int = kmeans_param("seed")
    niter: int = kmeans_param("niter")
    nredo: int = kmeans_param("nredo")
    spherical: bool = kmeans_param("spherical")
    max_points_per_centroid: int = kmeans_param("max_points_per_centroid")
    init: KMeansInit = kmeans_init_param()
    use_gpu: bool | None = param(None, help="None: when available", hash=False)


@dataclass(frozen=True)
class SweepConfig(HashedConfig):
    """k sweep: inertia, exact silhouette on a seeded sample, simplified silhouette on all."""

    ks: tuple[int, ...] = param(help="comma-separated k values", low=1, flag="--k")
    sample_size: int = param(10_000, help="rows for the exact silhouette", low=1,
                             flag="--sample")
    metric: SweepMetric = param("euclidean", help="silhouette distance",
                                choices=get_args(SweepMetric))
    seed: int = kmeans_param("seed")
    niter: int = kmeans_param("niter")
    nredo: int = kmeans_param("nredo")
    spherical: bool = kmeans_param("spherical")
    max_points_per_centroid: int = kmeans_param("max_points_per_centroid")
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
    n_neighbors: int = param(100, help="UMAP neighbours", low=1, flag="--neighbors")
    min_dist: float = param(0.5, help="UMAP minimum distance between placed points", low=0)
    metric: str = param("cosine", help="UMAP's distance")
    seed: int = param(0, help="UMAP seed", low=0)
    # Million-row pools (cluster/projection.py): UMAP fits a seeded sample, the rest is placed.
    fit_rows: int = param(20_000, help="UMAP fits on at most this many rows (a seeded sample); "
                                       "every other row is placed by its sampled neighbours",
                          low=4)
    placement_neighbors: int = param(10, help="sampled neighbours whose 2-D positions place a "
                                              "row not in the fitted sample", low=1)


@dataclass(frozen=True)
class ScorerConfig(HashedConfig):
    """A quality scorer: one float per example, higher is better (kMQ: Yu et al., 2024)."""

    name: ScorerName = param("heuristic", help="quality scorer", choices=SCORERS,
                             flag="--scorer")
    model: str | None = param(None, help="HF name/path of the perplexity LM or the reward model",
                              flag="--scorer-model")
    max_length: int = param(512, help="tokens per scored example", low=1)
    batch_size: int = param(8, help="examples per forward pass", low=1, hash=False)
    device: str = param("auto", help="auto, cpu, cuda, cuda:1 …", hash=False)


# The selection methods by name, as `select.registry` registers them (the configs sit a layer
# below the methods: the registry hands its entries down, the configs never reach up). Until the
# registry is imported (any `selection_core.select` module imports it) the table is empty and
# `method` is not checked here; `select.registry.get_method` checks it where a method is used.
METHOD_TABLE: dict[str, Any] = {}


def static_method_names() -> tuple[str, ...]:
    """The registered static methods (`SelectionConfig.method`'s choices), in their order."""
    return tuple(m.name for m in sorted(METHOD_TABLE.values(), key=lambda m: (m.order, m.name))
                 if m.family == "static")


@renamed(tau="sample_tau", seed="sample_seed")
@dataclass(frozen=True)
class SelectionConfig(HashedConfig):
    """Static selection on one clustering (kMQ: Yu et al., 2024). `k` is the clustering's k: the
    selection refuses a clustering of another k (`check_clustering`)."""

    method: str = param("kmq", help="selection method (`select.registry`)",
                        choices=static_method_names)
    budget: int = param(1000, help="rows to select", low=1)
    k: int = param(8, help="clusters (k-means k)", low=1)
    sample_tau: float = param(1.0, help="kMQ softmax temperature over quality inside a cluster",
                              positive=True, flag="--tau")
    top: bool = param(False, help="kMQ: take the top b_j per cluster instead of sampling")
    sample_seed: int = param(0, help="seed of the sampling (kmq, kmeans-random, random)",
                             flag="--seed", low=0)
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
GAP_SCORERS: tuple[str, ...] = get_args(GapScorer)
MAX_NEW_TOKENS = 512  # a round model's generation cap (the reference implementation's); gold is
#                       cut by the same rule before scoring, so S compares like with like


@renamed(tau="weight_tau", seed="round_seed")
@dataclass(frozen=True)
class IterativeConfig(HashedConfig):
    """One iterative kMQ run (Yu et al., 2024); its hash names the run's folder, so changing
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
        super().__post_init__()
        if self.budget < self.rounds:
            raise ConfigError(f"budget {self.budget} is smaller than the {self.rounds} rounds: "
                              "every round must add at least one item")
        if self.scorer == "reward" and not self.scorer_model:
            raise ConfigError("the reward scorer needs a reward model (--scorer-model NAME_OR_PATH)")
