"""Read a model's predictions (JSONL: the item id and its `completion`) for one benchmark.

Why strict: a predictions file written for another benchmark, split or data version would
otherwise score silently against the wrong questions. Every line must name a known item once, and
items without a prediction are an error unless the caller allows them (they then score as wrong).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..spine.errors import InputError
from .base import Benchmark, EvalItem, read_jsonl

_SHOWN_IDS = 5  # missing ids listed in an error


def read_predictions(path: str | Path, benchmark: Benchmark, items: Sequence[EvalItem],
                     allow_missing: bool = False) -> dict[str, str]:
    """{item id: completion}. The id field is `benchmark.id_field` (`task_id` for HumanEval and
    MBPP, `key` for IFEval, else `id`, the item's 0-based index in the data file); `id` is also
    accepted everywhere. Ids may be JSON numbers or strings."""
    path = Path(path)
    if not path.is_file():
        raise InputError("predictions file not found", path=str(path))
    known = {item.id for item in items}
    completions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, record in read_jsonl(path):
        item_id = _item_id(record, benchmark.id_field, path, line)
        if item_id not in known:
            raise InputError(f"id {item_id} not in {benchmark.name} ({len(known)} items)",
                             path=str(path), line=line, field=_id_field(record,
                                                                        benchmark.id_field))
        if item_id in completions:
            raise InputError(f"duplicate id {item_id} (first on line {first_line[item_id]})",
                             path=str(path), line=line)
        completion = record.get("completion")
        if completion is None:
            raise InputError("missing field", path=str(path), line=line, field="completion")
        if not isinstance(completion, str):
            raise InputError(f"expected a string, got {type(completion).__name__}",
                             path=str(path), line=line, field="completion")
        completions[item_id] = completion
        first_line[item_id] = line
    missing = [item.id for item in items if item.id not in completions]
    if missing and not allow_missing:
        shown = ", ".join(missing[:_SHOWN_IDS]) + (", ..." if len(missing) > _SHOWN_IDS else "")
        raise InputError(f"{len(missing)} of {len(items)} {benchmark.name} items have no "
                         f"prediction (first: {shown}); allow missing predictions "
                         "(--allow-missing) to score them as wrong", path=str(path))
    return completions


def _id_field(record: dict[str, Any], preferred: str) -> str:
    return preferred if preferred in record or "id" not in record else "id"


def _item_id(record: dict[str, Any], preferred: str, path: Path, line: int) -> str:
    field = _id_field(record, preferred)
    if field not in record:
        raise InputError("missing field", path=str(path), line=line, field=preferred)
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"expected a string or integer id, got {type(value).__name__}",
                         path=str(path), line=line, field=field)
    return str(value)
