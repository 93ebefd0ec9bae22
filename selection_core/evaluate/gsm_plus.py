"""GSM-Plus (GSM8K questions under 8 perturbations; the 2,400-item testmini), scored like GSM8K.

Why a second comparison: the "critical thinking" items remove a needed fact and their gold answer
is "None", so a non-numeric gold is compared as a normalised string against the text after
`####` (else after "the answer is", else the last line). The prompt says how to give that answer.
Metrics break the score down by perturbation type.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import BaseBenchmark, EvalItem, accuracy_by, load_hub_rows, read_jsonl, require
from .gsm8k import extract_final_number, numbers_match, parse_number

INSTRUCTION = ("Solve the following math problem step by step. Write the final answer as a "
               "number on the last line, in the form \"#### <number>\". If the problem cannot be "
               "solved with the information given, write \"#### None\" instead.\n\n{question}")
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)


def extract_final_text(completion: str) -> str:
    """The answer as written: after the last `####`, else after "answer is", else the last line."""
    if "####" in completion:
        text = completion.rpartition("####")[2].strip().split("\n", 1)[0]
    elif matches := list(_ANSWER_IS.finditer(completion)):
        text = completion[matches[-1].end():].lstrip(" :").split("\n", 1)[0]
    else:
        lines = [line for line in completion.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return text.strip()


def normalise_text(text: str) -> str:
    """Case and surrounding space, Markdown emphasis, quotes, `$` and full stops ignored."""
    return text.strip(" \t*_`\"'$.").casefold()


class GSMPlus(BaseBenchmark):
    name = "gsm-plus"
    group = "math"
    max_new_tokens = 512
    default_path = "gsm_plus/gsmplus_testmini.jsonl.gz"
    hub_name = "qintongli/GSM-Plus"

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(index, record, path, line)
                for index, (line, record) in enumerate(read_jsonl(path))]

    def read_hub(self, name: str) -> list[EvalItem]:
        """The hub's `testmini` split, the subset the local copy holds."""
        rows = load_hub_rows(name, split="testmini")
        return [self._item(index, record, name, None) for index, record in enumerate(rows)]

    @staticmethod
    def _item(index: int, record: dict[str, Any], path: Path | str,
              line: int | None) -> EvalItem:
        question = require(record, "question", str, path, line)
        answer = str(require(record, "answer", (str, int, float), path, line))
        solution = record.get("solution")
        return EvalItem(id=str(index), prompt=INSTRUCTION.format(question=question), gold=answer,
                        gold_response=solution if isinstance(solution, str) else None,
                        meta={"perturbation_type": str(record.get("perturbation_type",
                                                                  "unknown"))})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        if parse_number(item.gold) is not None:
            extracted = extract_final_number(completion)
            correct = numbers_match(extracted, item.gold)
        else:
            extracted = extract_final_text(completion)
            correct = normalise_text(extracted) == normalise_text(item.gold)
        return {"correct": correct, "extracted": extracted, "gold": item.gold}

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "perturbation_type")
