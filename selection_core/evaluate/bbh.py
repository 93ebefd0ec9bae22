"""BIG-Bench Hard (27 reasoning tasks, 6,511 items), zero-shot, scored by exact match.

Why this extraction: BBH's chain-of-thought convention ends with "So the answer is X.", which
the prompt asks for; the answer is the first sentence after the last "the answer is" (any case),
else the model's last line. Comparison ignores case, surrounding space, Markdown emphasis, quotes
and a final full stop, and a multiple-choice target "(A)" also accepts "A", "A)" or "(A) text".
The score is the mean over items; metrics add each task's accuracy.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import BaseBenchmark, EvalItem, accuracy_by, load_hub_rows

TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting")
INSTRUCTION = ("{question}\n\nThink step by step, then finish with a last line of the form "
               "\"So the answer is <answer>.\"")
_ANSWER_IS = re.compile(r"the answer is", re.IGNORECASE)
_CHOICE = re.compile(r"\(([A-Z])\)")
_LEADING_CHOICE = re.compile(r"\(?([A-Z])\)?(?![A-Za-z0-9])")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


def extract_answer(completion: str) -> str:
    """The first sentence after the last "the answer is", else the last non-empty line."""
    matches = list(_ANSWER_IS.finditer(completion))
    if matches:
        text = completion[matches[-1].end():].lstrip(" \t:").split("\n", 1)[0]
    else:
        lines = [line for line in completion.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    end = _SENTENCE_END.search(text)
    return normalise(text[:end.start()] if end else text)


def normalise(text: str) -> str:
    text = " ".join(text.split()).strip("*_`\"' ").rstrip(".").strip()
    return text.casefold()


def is_correct(extracted: str, target: str) -> bool:
    choice = _CHOICE.fullmatch(target.strip())
    if choice:
        given = _LEADING_CHOICE.match(extracted.upper())
        return given is not None and given.group(1) == choice.group(1)
    return extracted == normalise(target)


class BBH(BaseBenchmark):
    name = "bbh"
    group = "logic"
    max_new_tokens = 512
    default_path = "bbh/tasks"
    hub_name = "lukaemon/bbh"

    def read_local(self, path: Path) -> list[EvalItem]:
        """A folder of task files (`<task>.json`, {"examples": [{input, target}]}) or one file;
        ids count over the files in sorted name order."""
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise InputError("no BBH task files (*.json) in this folder", path=str(path))
        items: list[EvalItem] = []
        for file in files:
            try:
                examples = json.loads(file.read_text(encoding="utf-8"))["examples"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"expected a JSON object with an 'examples' list ({exc})",
                                 path=str(file)) from None
            items += self._task_items(file.stem, examples, file, len(items))
        return items

    def read_hub(self, name: str) -> list[EvalItem]:
        """One hub config per task (`lukaemon/bbh` layout)."""
        items: list[EvalItem] = []
        for task in TASKS:
            items += self._task_items(task, load_hub_rows(name, task, split="test"), name,
                                      len(items))
        return items

    @staticmethod
    def _task_items(task: str, examples: list[Any], path: Path | str,
                    start: int) -> list[EvalItem]:
        items = []
        for offset, example in enumerate(examples):
            if not (isinstance(example, dict) and isinstance(example.get("input"), str)
                    and isinstance(example.get("target"), str)):
                raise InputError(f"example {offset} of task {task}: expected an object with "
                                 "string fields 'input' and 'target'", path=str(path))
            target = example["target"]
            items.append(EvalItem(id=str(start + offset),
                                  prompt=INSTRUCTION.format(question=example["input"]),
                                  gold=target, gold_response=target, meta={"task": task}))
        return items

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_answer(completion)
        return {"correct": is_correct(extracted, item.gold), "extracted": extracted,
                "gold": item.gold}

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "task")
