"""The one place that knows about devices (cpu / cuda) for torch and faiss."""
from __future__ import annotations

import functools


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
