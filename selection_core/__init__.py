"""selection_core: choose which instruction-tuning data to fine-tune an LLM on (kMQ, LESS + BIDS).

The public API (see `selection_core.api` and the README's "As a library"): `KMQSelector`,
`IterativeKMQ`, `BIDSSelector`, `embed`, `sweep_k`, and `figures` (the plotly figure builders). Names load on
first use, so `python -m selection_core` and `import selection_core` stay fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["BIDSSelector", "IterativeKMQ", "KMQSelector", "embed", "figures", "sweep_k"]

_API = {"BIDSSelector", "IterativeKMQ", "KMQSelector", "embed", "sweep_k"}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name == "figures":
        return importlib.import_module(".viz.figures", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
