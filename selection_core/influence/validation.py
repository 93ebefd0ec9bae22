"""The validation set for influence: an equal number of instances of each evaluation task.

Each instance is the benchmark's prompt (as a model is asked at evaluation time) plus a gold
response text, labelled with its task (BIDS: 50 per task, 350 in all). Tasks without reference
responses (IFEval) get one from a `respond` callable — by default the analysed model's own greedy
answer — and are flagged `generated`, so nobody mistakes them for human references.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from ..spine.errors import ConfigError
from ..evaluate.splits import VALIDATION_TASKS, validation_items

Respond = Callable[[list[str]], list[str]]


def _render(task: str, gold_response: str) -> str:
    """BBH's gold is the bare target; its prompt asks for a final "So the answer is …" line."""
    if task == "bbh":
        return f"So the answer is {gold_response}."
    return gold_response


def build_validation_set(tasks: Sequence[str] = VALIDATION_TASKS, per_task: int = 50,
                         seed: int = 0, data_paths: Mapping[str, str] | None = None,
                         respond: Respond | None = None,
                         split_rule: str = "papers") -> pd.DataFrame:
    """Rows: id ("<task>/<item id>"), task, split, prompt, response, generated — `per_task`
    per task, drawn with `seed` (`validation_items`)."""
    if per_task < 1:
        raise ConfigError(f"per_task must be ≥ 1, got {per_task}")
    rows = []
    for task in tasks:
        items, split = validation_items(task, per_task, seed, (data_paths or {}).get(task),
                                        split_rule)
        if len(items) < per_task:
            raise ConfigError(f"{task} has only {len(items)} items, fewer than {per_task} per task")
        missing = [item for item in items if not item.gold_response]
        answers: dict[str, str] = {}
        if missing:
            if respond is None:
                raise ConfigError(f"{task} has no reference responses; pass `respond` to "
                                  "generate them")
            answers = dict(zip([i.id for i in missing], respond([i.prompt for i in missing]),
                               strict=True))
        for item in items:
            generated = item.id in answers
            rows.append({"id": f"{task}/{item.id}", "task": task, "split": split,
                         "prompt": item.prompt,
                         "response": answers[item.id] if generated
                         else _render(task, item.gold_response), "generated": generated})
    return pd.DataFrame(rows)
