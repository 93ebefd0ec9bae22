"""HumanEval (164 Python functions from docstrings), scored by pass@1 in the sandbox.

Prompt: the UltraInteract/Eurus kit's (Coding/human_eval/evaluate_human_eval.py): the function's
signature, then its stub in a ```python block. Why the program is assembled this way: a completion that (re)defines the entry point replaces the
prompt's function, but keeps what the prompt wrote before it (imports, helper functions such as
`is_palindrome` for `make_palindrome`), which chat models often leave out; anything else is taken
as the body continuing the prompt, as base models write it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..data.answers import defines_function, extract_code
from ..spine.errors import InputError
from .base import EvalItem, load_hub_rows, read_jsonl, require
from .code_runner import CodeBenchmark

INSTRUCTION = ("Write Python code to solve the task.\nWrite a Python function `{signature}` to solve "
               "the following problem: Present code in ```python```\n```python\n{prompt}```\n")
_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


class HumanEval(CodeBenchmark):
    name = "humaneval"
    id_field = "task_id"
    default_path = "humaneval/HumanEval.jsonl.gz"
    hub_name = "openai_humaneval"

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(record, path, line) for line, record in read_jsonl(path)]

    def read_hub(self, name: str) -> list[EvalItem]:
        return [self._item(record, name, None) for record in load_hub_rows(name, split="test")]

    @staticmethod
    def _item(record: dict[str, Any], path: Path | str, line: int | None) -> EvalItem:
        task_id, prompt, solution, test, entry_point = (require(record, key, str, path, line)
                                                        for key in _FIELDS)
        signature = re.search(rf"def\s+({re.escape(entry_point)}.*?):\s*\n", prompt)
        if signature is None:
            raise InputError(f"the prompt does not define {entry_point}", path=str(path),
                             line=line, field="prompt")
        return EvalItem(id=task_id, prompt=INSTRUCTION.format(signature=signature.group(1),
                                                              prompt=prompt),
                        gold={"prompt": prompt, "test": test, "entry_point": entry_point},
                        gold_response=f"```python\n{prompt}{solution}```",
                        meta={"entry_point": entry_point})

    def extract(self, item: EvalItem, completion: str) -> str:
        return extract_code(completion, item.gold["entry_point"])

    def build_program(self, item: EvalItem, code: str) -> dict[str, str]:
        prompt, entry_point = item.gold["prompt"], item.gold["entry_point"]
        if defines_function(code, entry_point):
            solution = prompt[:_def_line_start(prompt, entry_point)] + code
        else:
            solution = prompt + code
        return {"solution.py": solution,
                "tests.py": f"{item.gold['test']}\n\ncheck({entry_point})\n"}


def _def_line_start(prompt: str, entry_point: str) -> int:
    """Offset of the line `def entry_point(` in the prompt (its end if the prompt has none)."""
    marker = f"def {entry_point}("
    index = prompt.find(marker)
    return len(prompt) if index < 0 else prompt.rfind("\n", 0, index) + 1
