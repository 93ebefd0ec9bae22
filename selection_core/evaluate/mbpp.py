"""MBPP (crowd-sourced Python problems, the standard 500-task test split), scored by pass@1.

Prompt: the UltraInteract/Eurus kit's (Coding/mbpp/evaluate_mbpp.py `make_conv`): the function's
signature from the reference code, the task text (cut before a " https://www." link) and its first
test assert as a `>>>` line, and the answer prefilled with "```python\ndef" after the chat
template's generation prompt; the kit's stops end the code (`papers` protocol). One difference,
named: the kit's `lstrip("def ")` also strips a name's leading d/e/f letters ("fib" → "ib"); we
remove the "def " prefix only. The program is the prefill and the completion's code, then
`test_setup_code` (it uses classes the solution defines), then every assert of `test_list`.
"""
from __future__ import annotations

import builtins
import keyword
import re
from pathlib import Path
from typing import Any

from ..data.answers import extract_code
from ..spine.errors import InputError
from .base import EvalItem, load_hub_rows, read_jsonl, require
from .code_runner import CodeBenchmark

TEST_SPLIT_IDS = range(11, 511)  # task_ids 11-510: the standard test split of the full MBPP file
VALIDATION_SPLIT_IDS = range(511, 601)  # task_ids 511-600: its validation split
KIT_INSTRUCTION = ("Write Python code to solve the task.\nWrite a Python function `{signature}` to "
                   "solve the following problem: Present code in ```python```\n{description}\n"
                   ">>> {test}\n")
KIT_PREFILL = "```python\ndef"
INSTRUCTION = ("You are an expert Python programmer, and here is your task:\n{text}\nYour code "
               "should pass these tests:\n{tests}")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_BUILTINS = frozenset(dir(builtins))


class MBPP(CodeBenchmark):
    name = "mbpp"
    id_field = "task_id"
    default_path = "mbpp/mbpp.jsonl"
    hub_name = "mbpp"

    def read_local(self, path: Path) -> list[EvalItem]:
        """The full MBPP file is cut to the test split; a file without those ids is kept whole."""
        items = [self._item(record, path, line) for line, record in read_jsonl(path)]
        wanted = {str(task_id) for task_id in TEST_SPLIT_IDS}
        test_split = [item for item in items if item.id in wanted]
        return test_split or items

    def load_validation(self, data_path: str | Path | None = None) -> list[EvalItem] | None:
        """Task ids 511-600 of the full file (the hub's `validation` split); None for a file
        without them."""
        path = self.local_path(data_path)
        if path is None:
            return [self._item(record, str(data_path), None)
                    for record in load_hub_rows(str(data_path), split="validation")]
        if not path.is_file():
            return None
        wanted = {str(task_id) for task_id in VALIDATION_SPLIT_IDS}
        items = [self._item(record, path, line) for line, record in read_jsonl(path)]
        return [item for item in items if item.id in wanted] or None

    def read_hub(self, name: str) -> list[EvalItem]:
        """The hub's `test` split is already the standard one (`full` config fields or
        `sanitized` ones, which call the task text `prompt`)."""
        return [self._item(record, name, None) for record in load_hub_rows(name, split="test")]

    @staticmethod
    def _item(record: dict[str, Any], path: Path | str, line: int | None) -> EvalItem:
        task_id = require(record, "task_id", (int, str), path, line)
        text_field = "text" if "text" in record else "prompt"
        text = require(record, text_field, str, path, line)
        code = require(record, "code", str, path, line)
        tests = require(record, "test_list", list, path, line)
        if not tests or not all(isinstance(test, str) for test in tests):
            raise InputError("expected a non-empty list of assert strings", path=str(path),
                             line=line, field="test_list")
        setup = record.get("test_setup_code") or ""
        prompt = KIT_INSTRUCTION.format(signature=kit_signature(code),
                                        description=text.split(" https://www.")[0],
                                        test=tests[0])
        return EvalItem(id=str(task_id), prompt=prompt,
                        gold={"tests": tests, "setup": setup,
                              "function": _tested_function(tests[0])},
                        gold_response=f"```python\n{code}\n```", meta={},
                        prefill=KIT_PREFILL)

    def extract(self, item: EvalItem, completion: str) -> str:
        return extract_code(completion, item.gold["function"])

    def build_program(self, item: EvalItem, code: str) -> dict[str, str]:
        tests = "\n".join(item.gold["tests"])
        return {"solution.py": code, "tests.py": f"{item.gold['setup']}\n\n{tests}\n"}


def kit_signature(code: str) -> str:
    """The kit's `make_signature`: the reference code's first `def` line without "def ", spaces
    and the colon, commas followed by one space ("f(a, b=2)")."""
    line = next((line for line in code.split("\n") if line.strip().startswith("def ")), "")
    return line.strip().removeprefix("def ").replace(" ", "").rstrip(":").strip() \
        .replace(",", ", ")


def _tested_function(test: str) -> str | None:
    """The function an assert tests: the first non-builtin it calls (`assert set(f(x)) == ...`
    → `f`), else the first call (task 126 defines its own `sum`)."""
    called = [name for name in _CALL.findall(test) if not keyword.iskeyword(name)]
    return next((name for name in called if name not in _BUILTINS), called[0] if called else None)
