"""GSM8K (grade-school maths word problems), scored by the final number.

Prompt: the UltraInteract/Eurus kit's maths prompt (answer in `\\boxed{}`), as for GSM-Plus and
MATH. Extraction is `answers.extract_final_number` (the rules are in `answers`): a correct answer
in any common chat format counts and a wrong one never; numbers compare as exact rationals.

`strict` is the published rule beside ours: lm-evaluation-harness's GSM8K `strict-match` (the
first `#### N`, exact string match after dropping commas, `$` and a final full stop).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.answers import answer_tail, extract_final_number, format_number, numbers_match, \
    parse_number
from ..spine.errors import InputError
from .base import BaseBenchmark, EvalItem, EvalResult, load_hub_rows, read_jsonl, require, \
    with_strict_score
from .hendrycks_math import KIT_INSTRUCTION

_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-eval gsm8k strict-match
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, noise in a response


def strict_match(completion: str, gold_solution: str) -> bool:
    """lm-evaluation-harness's GSM8K `strict-match`: the first `#### N`, compared as a string
    with the gold solution after both lose commas, `$`, everything up to `#### ` and a final
    full stop (case ignored)."""
    found = _STRICT.findall(completion)
    if not found:
        return False

    def clean(text: str) -> str:
        text = text.replace(",", "").replace("$", "")
        # lm-eval's `(?s).*#### ` without its regex, which is quadratic on a long number
        return re.sub(r"\.$", "", text.rpartition("#### ")[2]).lower()

    return clean(found[0].strip()) == clean(gold_solution)


class GSM8K(BaseBenchmark):
    name = "gsm8k"
    group = "math"
    default_path = "gsm8k/test.jsonl"
    hub_name = "gsm8k"

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(index, record, path, line)
                for index, (line, record) in enumerate(read_jsonl(path))]

    def read_hub(self, name: str) -> list[EvalItem]:
        rows = load_hub_rows(name, "main" if name.endswith("gsm8k") else None, split="test")
        return [self._item(index, record, name, None) for index, record in enumerate(rows)]

    @staticmethod
    def _item(index: int, record: dict[str, Any], path: Path | str,
              line: int | None) -> EvalItem:
        question = require(record, "question", str, path, line)
        answer = require(record, "answer", str, path, line)
        gold = parse_number(answer.rpartition("####")[2]) if "####" in answer else None
        if gold is None:
            raise InputError("expected a solution ending in '#### <number>'", path=str(path),
                             line=line, field="answer")
        return EvalItem(id=str(index), prompt=KIT_INSTRUCTION.format(question=question),
                        gold=format_number(gold),
                        gold_response=_CALCULATOR.sub("", answer), meta={})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        completion = answer_tail(completion)
        extracted = extract_final_number(completion)
        return {"correct": numbers_match(extracted, item.gold), "extracted": extracted,
                "gold": item.gold, "strict": strict_match(completion, item.gold_response or "")}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        return with_strict_score(super().summarise(items, rows), rows)
