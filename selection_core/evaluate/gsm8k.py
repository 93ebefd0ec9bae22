"""GSM8K (grade-school maths word problems), scored by matching the final number.

Why this extraction: the prompt asks for the answer after `####`, the dataset's own convention,
so the number right after the last `####` is the answer when the model followed it; a model that
did not is judged by the last number it wrote (its usual "The answer is 18."). Numbers compare as
exact rationals after dropping `$`, thousands commas and `%`, so 18, 18.0, $18.00 and 1,000 vs
1000 all match.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import BaseBenchmark, EvalItem, load_hub_rows, read_jsonl, require

INSTRUCTION = ("Solve the following math problem step by step. Write the final answer as a "
               "number on the last line, in the form \"#### <number>\".\n\n{question}")
# A minus sign only when it cannot be a subtraction ("16-3" is 16 and 3); thousands commas inside.
_NUMBER_PATTERN = r"(?:(?<![\w)\]])-)?\$?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?/\s?\d+)?"
_NUMBER = re.compile(_NUMBER_PATTERN)
# "#### 18": the number must come first, so a Markdown heading "#### Step 1" is no answer.
_FINAL_ANSWER = re.compile(rf"####[ \t*]*({_NUMBER_PATTERN})")
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
    """The number right after the last `####` followed by one, else the last number."""
    finals = _FINAL_ANSWER.findall(completion)
    if finals:
        return finals[-1]
    found = numbers(completion)
    return found[-1] if found else None


def numbers_match(extracted: str | None, gold: str) -> bool:
    if extracted is None:
        return False
    predicted, expected = parse_number(extracted), parse_number(gold)
    return predicted is not None and predicted == expected


class GSM8K(BaseBenchmark):
    name = "gsm8k"
    group = "math"
    max_new_tokens = 512
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
        return EvalItem(id=str(index), prompt=INSTRUCTION.format(question=question),
                        gold=format_number(gold),
                        gold_response=_CALCULATOR.sub("", answer), meta={})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_final_number(completion)
        return {"correct": numbers_match(extracted, item.gold), "extracted": extracted,
                "gold": item.gold}
