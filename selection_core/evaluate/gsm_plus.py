"""GSM-Plus (GSM8K questions under 8 perturbations; the 2,400-item testmini), scored like GSM8K.

Why a second rule: the "critical thinking" items remove a needed fact and their gold answer is
"None". Such an item is answered right when the stated final answer (boxed, after `####` or after
"answer is" / "Answer:") says none or that information is missing, or when no final number is
stated and the text says the problem cannot be solved — the phrases GSM-Plus's own scorer
(`extract_pred_ans_none`) looks for. An answer that states a number is never right there.
`strict` is lm-evaluation-harness's `gsm_plus` strict-match, the GSM8K rule. Metrics break the
score down by perturbation type.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.answers import ANSWER_MARKER, answer_tail, boxed_answers, extract_final_number, \
    numbers_match, parse_number
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, load_hub_rows, read_jsonl, \
    require, with_strict_score
from .gsm8k import strict_match
from .hendrycks_math import KIT_INSTRUCTION

# GSM-Plus's own list (scripts/utils/extract_ans.py), plus the usual "not enough information".
NO_ANSWER_PHRASES = (
    "not enough information", "does not provide enough information", "does not specify",
    "does not provide", "can't provide", "can not provide", "cannot provide", "don't know",
    "do not know", "doesn't specify", "not specify", "not mention", "doesn't mention",
    "don't have enough information", "do not have enough", "not provide", "doesn't provide",
    "cannot calculate", "can't calculate", "can't determine", "cannot determine",
    "cannot be determined", "can't be determined", "missing information", "missing necessary "
    "information", "is missing", "insufficient information", "none")
_NO_ANSWER = re.compile("|".join(rf"\b{re.escape(p)}\b" for p in NO_ANSWER_PHRASES), re.I)


def extract_final_text(completion: str) -> str | None:
    """The stated final answer as written: the last `\\boxed{}`, else the rest of the line after
    the last `####`, else after the last "answer is" / "Answer:"; None when none is stated."""
    boxed = boxed_answers(completion)
    if boxed:
        return boxed[-1].strip()
    if "####" in completion:
        return completion.rpartition("####")[2].strip().split("\n", 1)[0].strip()
    markers = list(ANSWER_MARKER.finditer(completion))
    if markers:
        return completion[markers[-1].end():].strip().split("\n", 1)[0].strip()
    return None


def says_no_answer(completion: str) -> bool:
    """Whether a completion answers "None": its stated answer says so, or it states no answer
    and says the problem cannot be solved."""
    stated = extract_final_text(completion)
    if stated is not None and stated.strip(" *_`\"'$.:"):
        return bool(_NO_ANSWER.search(stated)) and extract_final_number(completion) is None
    return bool(_NO_ANSWER.search(completion))


class GSMPlus(BaseBenchmark):
    name = "gsm-plus"
    group = "math"
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
        return EvalItem(id=str(index), prompt=KIT_INSTRUCTION.format(question=question),
                        gold=answer,
                        gold_response=solution if isinstance(solution, str) else None,
                        meta={"perturbation_type": str(record.get("perturbation_type",
                                                                  "unknown"))})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        completion = answer_tail(completion)
        if parse_number(item.gold) is not None:
            extracted = extract_final_number(completion)
            correct = numbers_match(extracted, item.gold)
        else:
            extracted = extract_final_text(completion)
            correct = says_no_answer(completion)
        reference = item.gold_response if item.gold_response and "####" in item.gold_response \
            else f"#### {item.gold}"
        return {"correct": correct, "extracted": extracted, "gold": item.gold,
                "strict": strict_match(completion, reference)}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        return with_strict_score(super().summarise(items, rows), rows)

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "perturbation_type")
