"""Which benchmark items influence selection may target: its validation instances' draw.

Why here and not with the influence math: every evaluation reports its score twice, on all test
items and on the held-out ones (those never drawn as validation instances), so the evaluator
needs the same draw without importing the influence pipeline. The features stage's settings
take their defaults from here (BIDS A.2: 50 instances per task, seed 0, from a task's validation
split where it has one).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..spine.errors import ConfigError
from .base import EvalItem, subsample

VALIDATION_TASKS = ("humaneval", "mbpp", "bbh", "mmlu", "gsm-plus", "math", "ifeval")
VALIDATION_PER_TASK = 50  # BIDS A.2
VALIDATION_SEED = 0


SPLIT_RULES = ("papers", "test")


def validation_items(task: str, per_task: int, seed: int, data_path: str | None = None,
                     split_rule: str = "papers") -> tuple[list[EvalItem], str]:
    """A task's `per_task` validation instances drawn with `seed` (stratified over its parts),
    and the split they come from: its validation split where it has one (BIDS A.2: MMLU's, MBPP's
    task ids 511-600), else its test items — or always test under `split_rule="test"`."""
    from .registry import get_benchmark

    if split_rule not in SPLIT_RULES:
        raise ConfigError(f"unknown validation split rule '{split_rule}'; use "
                          f"{' or '.join(SPLIT_RULES)}")
    benchmark = get_benchmark(task)
    validation = benchmark.load_validation(data_path) if split_rule == "papers" else None
    if validation:
        return subsample(validation, per_task, seed), "validation"
    return benchmark.load(data_path, limit=per_task, seed=seed), "test"


def targeted_test_ids(task: str, per_task: int, seed: int, data_path: str | None = None,
                      split_rule: str = "papers") -> list[str]:
    """The test item ids that influence selection targets as validation instances of `task`
    (none where they come from a validation split): what a held-out score leaves out."""
    items, split = validation_items(task, per_task, seed, data_path, split_rule)
    return [item.id for item in items] if split == "test" else []


def targeted_items(benchmark: str, item_ids: Sequence[str], data_path: str | None = None,
                   per_task: int = VALIDATION_PER_TASK, seed: int = VALIDATION_SEED,
                   split_rule: str = "papers",
                   tasks: Sequence[str] = VALIDATION_TASKS) -> list[str]:
    """Which of these test items of `benchmark` influence selection targets as validation
    instances (by default under the features stage's defaults): what a held-out score leaves
    out."""
    if benchmark not in tasks:
        return []
    targeted = set(targeted_test_ids(benchmark, per_task, seed, data_path, split_rule))
    return [item for item in item_ids if item in targeted]


def held_out_fields(result: Mapping[str, Any], eval_data: Mapping[str, str]) -> dict[str, Any]:
    """The result's validation instances and its score without them (`evaluate.uncertainty`),
    under the features stage's default draw."""
    from .uncertainty import held_out

    ids = [str(row.get("id")) for row in result.get("per_item") or []]
    return held_out(result, targeted_items(str(result.get("benchmark")), ids,
                                           eval_data.get(str(result.get("benchmark")))))
