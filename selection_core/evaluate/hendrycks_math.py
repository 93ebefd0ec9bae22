"""MATH (Hendrycks et al., competition problems), scored on the last `\\boxed{...}` answer.

Why this normalisation: equal answers are written in many ways (`\\dfrac12`, `\\frac{1}{2}`, `0.5`,
`1/2`; `10^\\circ`; `5\\text{ cm}`; `x = 5`; `\\left(1,2\\right)`). Following the spirit of
Hendrycks' `is_equiv` and the Minerva normalisation, both answers are rewritten into one canonical
LaTeX form, then compared as strings, or as exact rationals when both are plain numbers. It is a
string normaliser, not a computer algebra system: `2x+2` and `2(x+1)` stay different.

Prompt: the UltraInteract/Eurus kit's (`Math/math/evaluate_math_cot.py`), shared with GSM8K and
GSM-Plus. `strict` is the published rule beside ours: Hendrycks' `is_equiv` (as lm-evaluation-
harness ships it) on the same extracted answer, a string match after its normalisation, so an
answer not in lowest terms (`\\frac{2}{4}` for `\\frac12`) or in another form (`0.5`) fails.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

from ..data.answers import MAX_NUMBER_CHARS, answer_tail, boxed_answers, closing_brace
from ..spine.errors import InputError, SelectionError
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, load_hub_rows, read_jsonl, \
    require, with_strict_score

KIT_INSTRUCTION = ("Solve the following math problem step-by-step.\nSimplify your answer as much "
                   "as possible. Present your final answer as \\boxed{{Your Answer}}.\n{question}")
# Per-subject configs of the hub mirrors (EleutherAI/hendrycks_math) of the withdrawn original.
SUBJECT_CONFIGS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                   "number_theory", "prealgebra", "precalculus")
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{")
# Words that are units or counted things: "5 dollars", "10\text{ cm}", "12 ways" mean 5, 10, 12.
_UNIT_WORDS = (
    "square units", "sq units", "square feet", "square inches", "square meters", "square cm",
    "units", "unit", "degrees", "degree", "dollars", "dollar", "cents", "cent", "inches", "inch",
    "feet", "foot", "ft", "meters", "meter", "cm", "mm", "km", "miles", "mile", "mph", "hours",
    "hour", "minutes", "minute", "seconds", "second", "days", "day", "years", "year", "pounds",
    "ways", "points", "students", "people", "integers", "digits", "edges", "sides", "cubic")
_UNITS = re.compile(r"(?<![A-Za-z\\])(?:" + "|".join(re.escape(w) for w in _UNIT_WORDS)
                    + r")(?:\^?\{?[23]\}?)?(?![A-Za-z])")
# LaTeX spacing commands (\! in 10,\!080, "\ "), but not the matrix row break \\.
_THIN_SPACE = re.compile(r"(?<!\\)\\[!,;: ]")
_FRAC_ARGUMENT = r"(\{[^{}]*\}|\\[A-Za-z]+|\w)"  # a braced group, a macro or one character
_SIMPLE_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_SIMPLE_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")
# "65 children tickets": a number followed only by words is that number (not "2 sin", "3 pi").
# (one word per whitespace-separated run: `(?:[A-Za-z]{3,}\s*)+` backtracks exponentially)
_WORD = r"(?!(?:sin|cos|tan|log|exp|sqrt)\b)[A-Za-z]{3,}"
_NUMBER_THEN_WORDS = re.compile(rf"(-?[\d.,]+)\s+{_WORD}(?:\s+{_WORD})*\s*")


def extract_answer(text: str) -> str | None:
    """The last boxed answer; without one, what follows the last "answer is" (Minerva's
    "The final answer is $5$. I hope it is correct." gives 5)."""
    boxed = boxed_answers(text)
    if boxed:
        return boxed[-1]
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end():].strip().split("\n", 1)[0].strip()
    tail = re.sub(r"\.\s.*$", "", tail).strip().rstrip(".")  # the answer, not what follows it
    return tail.strip("$ ") or None


def normalise(answer: str) -> str:
    """One canonical string for the ways an answer can be written."""
    text = answer.strip().replace("\n", "").rstrip(".")
    text = _THIN_SPACE.sub("", text)
    for old, new in (("\\displaystyle", ""), ("\\left", ""), ("\\right", ""), ("\\$", ""),
                     ("$", ""), ("\\%", ""), ("%", ""), ("tfrac", "frac"), ("dfrac", "frac"),
                     ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""), ("\\degree", ""),
                     ("{,}", ""), ("\\dots", "\\ldots")):
        text = text.replace(old, new)
    text = _strip_units(text)
    text = _unwrap_text_commands(text)
    text = re.sub(r"(?<!\\)\\$", "", text.strip())
    text = _drop_short_assignment(text)
    text = re.sub(r"(^|[\s{(\[,=-])\.(\d)", r"\g<1>0.\2", text)  # ".5" → "0.5"
    text = text.replace(" ", "")
    text = _fix_sqrt(text)
    text = _fix_fracs(text)
    text = _slash_to_frac(text)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")  # thousands separators
    return text.rstrip(".")


def _strip_units(text: str) -> str:
    """Drop `\\text{ cm}`-style trailing units (Hendrycks) and unit words, keeping the value."""
    if "\\text{ " in text:
        head = text.split("\\text{ ")[0]
        text = head if head.strip() else text
    counted = _NUMBER_THEN_WORDS.fullmatch(text.strip())
    if counted:
        return counted.group(1)
    without = _UNITS.sub("", text)
    without = re.sub(r"\\(?:text|mbox|mathrm)\s*\{\s*\}", "", without)
    return without if without.strip() else text


def _unwrap_text_commands(text: str) -> str:
    """`\\text{(A)}` → `(A)`, `\\mathbf{v}` → `v`: the commands only style their argument.
    One pass (commands nested in an argument are found after it opens); an unclosed one and
    what follows it stay as written."""
    dropped: list[tuple[int, int]] = []  # spans to leave out: each command and its closing brace
    for match in _TEXT_COMMANDS.finditer(text):
        end = closing_brace(text, match.end() - 1)
        if end is None:
            break
        dropped += [(match.start(), match.end()), (end, end + 1)]
    kept, position = [], 0
    for start, stop in sorted(dropped):
        kept.append(text[position:start])
        position = stop
    return "".join(kept) + text[position:]


def _drop_short_assignment(text: str) -> str:
    """"x = 5" → "5" (a short variable name on the left, as in Hendrycks' normaliser)."""
    left, equals, right = text.partition("=")
    if equals and "=" not in right and len(left.strip()) <= 2 and right.strip():
        return right.strip()
    return text


def _fix_sqrt(text: str) -> str:
    """`\\sqrt3` → `\\sqrt{3}`."""
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", text)


def _fix_fracs(text: str) -> str:
    """`\\frac12` → `\\frac{1}{2}`; `\\frac\\pi4`, `\\frac1{2}`, `\\frac{1}2` likewise."""
    def braced(argument: str) -> str:
        return argument if argument.startswith("{") else f"{{{argument}}}"

    return re.sub(rf"\\frac{_FRAC_ARGUMENT}{_FRAC_ARGUMENT}",
                  lambda match: f"\\frac{braced(match.group(1))}{braced(match.group(2))}", text)


def _slash_to_frac(text: str) -> str:
    """"1/2" → `\\frac{1}{2}`, "(1+\\sqrt{5})/4" → `\\frac{1+\\sqrt{5}}{4}`: a whole answer that is
    one top-level ratio (brackets around either side dropped)."""
    depth, slashes = 0, []
    for index, char in enumerate(text):
        depth += (char in "({[") - (char in ")}]")
        if char == "/" and depth == 0:
            slashes.append(index)
    if len(slashes) != 1:
        return text
    numerator, denominator = (_unbracket(part) for part in (text[:slashes[0]],
                                                           text[slashes[0] + 1:]))
    if not numerator or not denominator:
        return text
    sign = "-" if numerator.startswith("-") and _SIMPLE_NUMBER.fullmatch(numerator) else ""
    return rf"{sign}\frac{{{numerator.removeprefix(sign)}}}{{{denominator}}}"


def _unbracket(text: str) -> str:
    """`(a+b)` → `a+b` when the brackets enclose the whole text."""
    if text.startswith("(") and closing_brace(text, 0, "()") == len(text) - 1:
        return text[1:-1]
    return text


def _as_rational(text: str) -> Fraction | None:
    """The exact value of a plain number or integer fraction in normalised form, else None
    (also for one too long to be an answer: `answers.MAX_NUMBER_CHARS`)."""
    if len(text) > MAX_NUMBER_CHARS:
        return None
    if _SIMPLE_NUMBER.fullmatch(text):
        return Fraction(text)
    match = _SIMPLE_FRACTION.fullmatch(text)
    if match and int(match.group(3)) != 0:
        value = Fraction(int(match.group(2)), int(match.group(3)))
        return -value if match.group(1) else value
    return None


@functools.cache
def _hendrycks() -> ModuleType:
    """Hendrycks' MATH answer check as lm-evaluation-harness ships it (the published rule)."""
    try:
        from lm_eval.tasks.hendrycks_math import utils
    except ImportError as exc:
        raise SelectionError("MATH's strict score needs lm-evaluation-harness: pip install "
                             f"lm-eval==0.4.13 ({exc})") from exc
    return utils


def answers_equal(predicted: str, gold: str) -> bool:
    """Same canonical string, or the same exact number (0.5 = \\frac{1}{2} = \\frac{2}{4})."""
    left, right = normalise(predicted), normalise(gold)
    if left == right:
        return True
    left_value, right_value = _as_rational(left), _as_rational(right)
    return left_value is not None and left_value == right_value


class HendrycksMath(BaseBenchmark):
    name = "math"
    group = "math"
    default_path = "math/test.jsonl"
    hub_name = "hendrycks/competition_math"

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(index, record, path, line)
                for index, (line, record) in enumerate(read_jsonl(path))]

    def read_hub(self, name: str) -> list[EvalItem]:
        """One split (`hendrycks/competition_math`, `HuggingFaceH4/MATH-500`), or one per
        subject for the `*/hendrycks_math` mirrors."""
        if name.endswith("hendrycks_math"):
            rows = [row for config in SUBJECT_CONFIGS
                    for row in load_hub_rows(name, config, split="test")]
        else:
            rows = load_hub_rows(name, split="test")
        return [self._item(index, record, name, None) for index, record in enumerate(rows)]

    @staticmethod
    def _item(index: int, record: dict[str, Any], path: Path | str,
              line: int | None) -> EvalItem:
        problem = require(record, "problem", str, path, line)
        solution = require(record, "solution", str, path, line)
        boxed = boxed_answers(solution)
        if not boxed:
            raise InputError("the solution has no \\boxed{...} answer", path=str(path),
                             line=line, field="solution")
        return EvalItem(id=str(index), prompt=KIT_INSTRUCTION.format(question=problem),
                        gold=boxed[-1], gold_response=solution,
                        meta={"level": str(record.get("level", "unknown")),
                              "type": str(record.get("type", record.get("subject", "unknown")))})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_answer(answer_tail(completion))
        correct = extracted is not None and answers_equal(extracted, item.gold)
        strict = extracted is not None and _hendrycks().is_equiv(extracted, item.gold)
        return {"correct": correct, "extracted": extracted, "gold": item.gold,
                "strict": bool(strict)}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        return with_strict_score(super().summarise(items, rows), rows)

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return {**accuracy_by(items, rows, "type"), **accuracy_by(items, rows, "level")}
