"""Benchmark evaluators: one module per benchmark, a registry, predictions and lm-eval import.

The names below are imported on first use, not here, so that importing one evaluate module
(a benchmark's scorer, the protocols) does not load all nine benchmarks. Running model-written
code is `selection_core.spine.sandbox`, shared with the demo pool's checker.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BENCHMARKS": "registry", "get_benchmark": "registry", "Benchmark": "base",
    "EvalItem": "base", "EvalResult": "base", "read_predictions": "predictions",
    "import_lm_eval_results": "lm_eval_results", "score_mmlu_loglik": "mmlu",
}
__all__ = ["BENCHMARKS", "Benchmark", "EvalItem", "EvalResult", "get_benchmark",
           "import_lm_eval_results", "read_predictions", "score_mmlu_loglik"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
