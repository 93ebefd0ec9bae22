"""GSM8K (grade-school maths word problems), scored by the final number.

Prompt: the UltraInteract/Eurus kit's maths prompt (answer in `\\boxed{}`), as for GSM-Plus and
MATH. Extraction, so that a correct answer in any common chat format counts and a wrong one never:
the last `\\boxed{...}`; else the last `#### N` that is an answer, not a Markdown heading such
as `#### 1. Understand the problem`; else the first number after the last "answer is" /
"Answer:" on its line ("The answer is 2 apples, so 3 were eaten" is 2; "The answer is 5 + 3 = 8"
is 8, after the last "="); else the last number. An answer stated as none ("#### None",
"**Answer:** None") has no number. Numbers compare as exact rationals after dropping `$`,
thousands commas and `%` (18, 18.0, $18.00 agree).

`strict` is the published rule beside ours: lm-evaluation-harness's GSM8K `strict-match` (the
first `#### N`, exact string match after dropping commas, `$` and a final full stop).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import BaseBenchmark, EvalItem, EvalResult, load_hub_rows, read_jsonl, require, \
    with_strict_score
from .hendrycks_math import KIT_INSTRUCTION, boxed_answers

# A minus sign only when it cannot be a subtraction ("16-3" is 16 and 3); thousands commas inside.
_NUMBER_PATTERN = r"(?:(?<![\w)\]])-)?\$?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?/\s?\d+)?"
_NUMBER = re.compile(_NUMBER_PATTERN)
# "#### 18": the number must come first, so "#### Step 1" is no answer, and "#### 1. Understand"
# (a number, a full stop or bracket, then words) is a numbered Markdown heading.
_FINAL_ANSWER = re.compile(rf"####[ \t*]*({_NUMBER_PATTERN})(?![\d,]|\.\d|[.)][ \t]*[A-Za-z*])")
# "The answer is 36", "**Answer:** 36", "Final answer = 36" (not "answer the question").
ANSWER_MARKER = re.compile(r"\banswer\b[ \t*]*(?:is\b|:|=)[ \t*:]*", re.IGNORECASE)
# "#### None", "**Answer: None**", "The answer is: not enough information": an answer, no number.
_STATED_NONE = re.compile(r"(?:####|\banswer\b[ \t*]*(?:is\b|:|=))[ \t*_`:]*(?:none|no answer|"
                          r"not enough|cannot|can't|unknown|insufficient|there is no)\b",
                          re.IGNORECASE)
_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-eval gsm8k strict-match
_STRICT_IGNORED = (",", r"\$", r"(?s).*#### ", r"\.$")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, noise in a response


def numbers(text: str) -> list[str]:
    """The numbers in `text`, in order, as written."""
    return _NUMBER.findall(text)


def parse_number(text: str) -> Fraction | None:
    """An exact value for "1,000", "$18.00", "-5", "25%", "1/4"; None if it is not a number."""
    cleaned = re.sub(r"[\s$,%]", "", text).rstrip(".")
    numerator, _, denominator = cleaned.partition("/")
    try:
        value = Fraction(Decimal(numerator))
        if denominator:
            divisor = Fraction(Decimal(denominator))
            value = value / divisor if divisor else None
    except (InvalidOperation, ValueError, OverflowError):  # not a finite number
        return None
    return value


def format_number(value: Fraction) -> str:
    """"18" for 18, "4.33" for 433/100, "1/3" where no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(decimal) == value:
        return format(decimal.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def extract_final_number(completion: str) -> str | None:
    """The answer's number (rules in the module docstring); None when the completion states an
    answer without a number ("**Answer:** None") or holds no number at all."""
    boxed = boxed_answers(completion)
    if boxed:
        found = numbers(_LATEX_FRACTION.sub(r"\1/\2", boxed[-1]))
        return found[-1] if found else None
    finals = list(_FINAL_ANSWER.finditer(completion))
    nones = list(_STATED_NONE.finditer(completion))
    if nones and (not finals or nones[-1].start() > finals[-1].start()):
        return None
    if finals:
        return finals[-1].group(1)
    markers = list(ANSWER_MARKER.finditer(completion))
    if markers:
        stated = next((line for line in completion[markers[-1].end():].splitlines()
                       if line.strip()), "")
        found = numbers(stated.rpartition("=")[2]) or numbers(stated)
        return found[0] if found else None
    found = numbers(completion)
    return found[-1] if found else None


def strict_match(completion: str, gold_solution: str) -> bool:
    """lm-evaluation-harness's GSM8K `strict-match`: the first `#### N`, compared as a string
    with the gold solution after both lose commas, `$`, everything up to `#### ` and a final
    full stop (case ignored)."""
    found = _STRICT.findall(completion)
    if not found:
        return False

    def clean(text: str) -> str:
        for pattern in _STRICT_IGNORED:
            text = re.sub(pattern, "", text)
        return text.lower()

    return clean(found[0].strip()) == clean(gold_solution)


def numbers_match(extracted: str | None, gold: str) -> bool:
    if extracted is None:
        return False
    predicted, expected = parse_number(extracted), parse_number(gold)
    return predicted is not None and predicted == expected


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
        extracted = extract_final_number(completion)
        return {"correct": numbers_match(extracted, item.gold), "extracted": extracted,
                "gold": item.gold, "strict": strict_match(completion, item.gold_response or "")}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        return with_strict_score(super().summarise(items, rows), rows)
