"""Reading the answer out of a model's text: the one copy, shared by the benchmarks and the demo
pool's checker (a neutral leaf: it imports nothing from the project).

Final numbers (GSM8K, GSM-Plus, the demo's arithmetic), so that a correct answer in any common chat
format counts and a wrong one never: the last `\\boxed{...}`; else the last `#### N` that is an
answer, not a Markdown heading such as `#### 1. Understand the problem`; else the first number
after the last "answer is" / "Answer:" on its line ("The answer is 2 apples, so 3 were eaten" is
2; "The answer is 5 + 3 = 8" is 8, after the last "="); else the last number. An answer stated as
none ("#### None", "**Answer:** None") has no number. Numbers compare as exact rationals after
dropping `$`, thousands commas and `%` (18, 18.0, $18.00 agree); a number written with more than
MAX_NUMBER_CHARS characters is no answer (its exact value would take seconds to build: the
conversion is quadratic in the digits, and no benchmark's answer is near that long).

Bounded work (issue 29): the benchmarks read their answer from the last ANSWER_TAIL_CHARS
characters of a completion (`answer_tail`), as a harness reads a generation capped at its token
limit, and every rule here runs in time linear in what it reads: a degenerate 16 MB completion
(a run of digits, of `\\boxed{}`s) scores in well under a second.

Code (HumanEval, MBPP, the demo's python skill): chat models answer in many shapes (a fenced
block, a whole function, prose around it, or only the body continuing the prompt); the code is
found the same way everywhere (`extract_code`).
"""
from __future__ import annotations

import ast
import re
import warnings
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# The longest generation any protocol asks for is 2,048 tokens, about 8,000 characters of text:
# the answer is in the last 100,000 characters of any completion a model's generation produced.
ANSWER_TAIL_CHARS = 100_000
MAX_NUMBER_CHARS = 1_000
_BOXED = re.compile(r"\\(?:boxed|fbox)\b")
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
_OPENING_BRACE = re.compile(r"\s*\{")
_BARE_BOXED = re.compile(r"\s+([^\s$]+)")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)",
                    re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}
_CODE_START = re.compile(r"^(?:from\s+\w|import\s+\w|def\s+\w|async\s+def\s+\w|class\s+\w|@)",
                         re.MULTILINE)


# --------------------------------------------------------------------------- final numbers
def answer_tail(completion: str) -> str:
    """The part of a completion a benchmark reads its answer from: the last
    ANSWER_TAIL_CHARS characters (all of any capped generation), so scoring time is bounded."""
    return completion[-ANSWER_TAIL_CHARS:]


def boxed_answers(text: str) -> list[str]:
    """Contents of every top-level `\\boxed{...}` / `\\fbox{...}` (balanced braces), in order;
    `\\boxed 5` (no braces) counts too."""
    answers = []
    position = 0
    while match := _BOXED.search(text, position):
        opening = _OPENING_BRACE.match(text, match.end())  # no copy of the rest: linear time
        if opening:
            start = opening.end() - 1
            end = closing_brace(text, start)
            if end is None:
                break
            answers.append(text[start + 1:end])
            position = end + 1
        else:
            bare = _BARE_BOXED.match(text, match.end())
            if bare:
                answers.append(bare.group(1))
            position = match.end()
    return answers


def closing_brace(text: str, start: int, pair: str = "{}") -> int | None:
    """Index of the bracket closing the one at `start` (`pair`: opening and closing character),
    or None when they never balance."""
    depth = 0
    for found in re.compile(f"[{re.escape(pair)}]").finditer(text, start):  # skips the rest
        depth += 1 if found.group() == pair[0] else -1
        if depth == 0:
            return found.start()
    return None


def numbers(text: str) -> list[str]:
    """The numbers in `text`, in order, as written."""
    return _NUMBER.findall(text)


def parse_number(text: str) -> Fraction | None:
    """An exact value for "1,000", "$18.00", "-5", "25%", "1/4"; None if it is not a number."""
    cleaned = re.sub(r"[\s$,%]", "", text).rstrip(".")
    if len(cleaned) > MAX_NUMBER_CHARS:
        return None
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
    answer without a number ("**Answer:** None") or holds no number at all. Reads
    `answer_tail(completion)`."""
    completion = answer_tail(completion)
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


def numbers_match(extracted: str | None, gold: str) -> bool:
    if extracted is None:
        return False
    predicted, expected = parse_number(extracted), parse_number(gold)
    return predicted is not None and predicted == expected


# --------------------------------------------------------------------------- code
def fenced_blocks(text: str) -> list[str]:
    """Contents of the Markdown code blocks in `text`: Python (or untagged) ones if any."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    return python or [body for _, body in blocks]


def _parse(code: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():  # the code's own warnings (invalid escapes) are not ours
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def defines_function(code: str, name: str) -> bool:
    """Whether `code` defines `name` at top level (parsed if possible, else by its `def` line)."""
    tree = _parse(code)
    if tree is None:
        return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code,
                         re.MULTILINE) is not None
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
               for node in tree.body)


def extract_code(completion: str, function_name: str | None) -> str:
    """The code in a completion.

    The fenced block that defines `function_name` (else the first block). Without fences, the
    text itself; when that does not parse but defines the function, minus the prose before the
    first line that starts code (a chat model's "Here is the function:").
    """
    blocks = fenced_blocks(completion)
    if blocks:
        if function_name:
            for block in blocks:
                if defines_function(block, function_name):
                    return block
        return blocks[0]
    if function_name and _parse(completion) is None and defines_function(completion,
                                                                           function_name):
        start = _CODE_START.search(completion)
        if start:
            return completion[start.start():]
    return completion
