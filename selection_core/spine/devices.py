"""The one place that knows about devices (cpu / cuda) for torch and faiss."""
from __future__ import annotations

import functools

from .errors import ConfigError


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # torch is a hard dependency, but keep device probing import-safe
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto") -> str:
    """Map 'auto' to 'cuda' when a GPU is present, else 'cpu'; pass explicit names through."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


@functools.lru_cache(maxsize=None)
def faiss_gpu_count() -> int:
    """Number of GPUs faiss can use (0 for the faiss-cpu build)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def check_device(device: str) -> None:
    """A clear error now for a device this machine does not have (`cuda:7` on a 1-GPU box, or
    any CUDA without a GPU), rather than a traceback deep in a model load."""
    if device in ("auto", "cpu"):
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if cuda_available() else 0
        if count == 0:
            raise ConfigError(f"device '{device}' asked for, but no CUDA GPU is available here; "
                              "use --device cpu (or auto)")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"device '{device}' does not exist: this machine has {count} CUDA "
                              f"GPU(s), cuda:0 to cuda:{count - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{device}' is not available on this machine; use cpu")
