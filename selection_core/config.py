"""One frozen config dataclass per method; its hash names caches and run artefacts.

Fields marked `field(metadata={"hash": False})` (batch sizes, devices) change how fast a result is
computed, not what it is, so they are left out of the hash: a cache filled on a GPU with batch 256
is reused on a laptop with batch 16.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TextField = Literal["prompt", "prompt+response"]
Pooling = Literal["auto", "mean", "last", "cls"]
SELECTION_METHODS = ("kmq", "kmeans-random", "kmeans-closest", "random", "quality-top")
SCORERS = ("heuristic", "perplexity", "reward")


def speed_only() -> Any:
    return {"hash": False}


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


@dataclass(frozen=True)
class KMeansConfig(HashedConfig):
    """faiss k-means (METHODS §1.2; reference settings niter=300, nredo=5, L2)."""

    k: int
    seed: int = 0
    niter: int = 300
    nredo: int = 5
    spherical: bool = False
    max_points_per_centroid: int = 256
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

    def kmeans(self, k: int) -> KMeansConfig:
        return KMeansConfig(k=k, seed=self.seed, niter=self.niter, nredo=self.nredo,
                            spherical=self.spherical,
                            max_points_per_centroid=self.max_points_per_centroid)


@dataclass(frozen=True)
class UMAPConfig(HashedConfig):
    """2-D projection for the map; seeded, computed once per embedding."""

    # More neighbours than umap's default 15 keep global structure (related islands sit together)
    # and a larger min_dist gives readable blobs rather than specks; computed once per pool.
    n_neighbors: int = 100
    min_dist: float = 0.5
    metric: str = "cosine"
    seed: int = 0


@dataclass(frozen=True)
class ScorerConfig(HashedConfig):
    """A quality scorer: one float per example, higher is better (METHODS §1.3)."""

    name: Literal["heuristic", "perplexity", "reward"] = "heuristic"
    model: str | None = None  # HF name or local path for perplexity / reward
    max_length: int = 512
    batch_size: int = field(default=8, metadata=speed_only())
    device: str = field(default="auto", metadata=speed_only())


@dataclass(frozen=True)
class SelectionConfig(HashedConfig):
    """Static selection on one clustering (METHODS §1.3)."""

    method: Literal["kmq", "kmeans-random", "kmeans-closest", "random", "quality-top"] = "kmq"
    budget: int = 1000
    k: int = 8
    tau: float = 1.0
    top: bool = False  # kMQ: deterministic top-b_j instead of softmax sampling
    seed: int = 0
    scorer: str = "heuristic"


@dataclass(frozen=True)
class LoRAConfig(HashedConfig):
    """LoRA SFT hyper-parameters (the trainer is `train.lora.LoRATrainer`; declared here, free of
    torch, so the CLI can show its defaults without loading torch)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None: q/k/v/o projections, else all linear
    epochs: int = 1
    max_steps: int | None = None  # stop early (CPU demos); None: all epochs
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: Literal["linear", "cosine"] = "linear"  # decay after the linear warm-up
    batch_size: int = 8
    grad_accumulation: int = 1
    max_length: int = 512
    seed: int = 0
    chat_template: bool | None = None  # None: the tokenizer's template when it has one
    device: str = field(default="auto", metadata=speed_only())
    dtype: str | None = field(default=None, metadata=speed_only())
    processes: int = field(default=1, metadata=speed_only())  # >1: DDP, one per GPU (torchrun)
