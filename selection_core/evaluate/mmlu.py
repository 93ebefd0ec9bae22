"""MMLU (57 subjects, 14,042 four-option questions), scored from a letter or by log-likelihood.

Two ways to answer: a predictions file whose completions name a letter, or
`score_mmlu_loglik`, which needs no generation: the model's choice is the letter it finds most
likely as the response to the prompt (the usual way to score base models, and fast on a CPU).
Ids count over the subject files in sorted name order; metrics add each subject's accuracy.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, load_hub_rows

LETTERS = ("A", "B", "C", "D")
INSTRUCTION = ("The following is a multiple choice question about {subject}. Reply with the "
               "letter of the correct answer.\n\n{question}\n{options}\nAnswer:")
_COLUMNS = ("question", "choice0", "choice1", "choice2", "choice3", "answer")
_STATED = re.compile(r"(?i:answer)(?:\s*(?i:is))?\s*[:\-]?\s*\**\s*\(?([A-D])\)?(?![A-Za-z])")
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")


def extract_letter(completion: str) -> str | None:
    """The chosen letter: the one after "answer (is)", else the first standalone A-D (skipping
    the article in "A good choice is C")."""
    stated = _STATED.search(completion)
    if stated:
        return stated.group(1)
    for match in _LETTER.finditer(completion):
        article = match.group(0) == "A" and re.match(r" [a-z]", completion[match.end():])
        if not article:
            return match.group(1)
    return None


def format_question(subject: str, question: str, choices: Sequence[str]) -> str:
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices,
                                                                          strict=True))
    return INSTRUCTION.format(subject=subject.replace("_", " "), question=question.strip(),
                              options=options)


class MMLU(BaseBenchmark):
    name = "mmlu"
    group = "knowledge"
    max_new_tokens = 32
    default_path = "mmlu/test"
    hub_name = "cais/mmlu"

    def read_local(self, path: Path) -> list[EvalItem]:
        """A folder of `<subject>_test.csv` files (header question,choice0..3,answer with the
        0-3 index of the right choice) or one such file. Errors name the row (header = row 1)."""
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
        if not files:
            raise InputError("no MMLU subject files (*.csv) in this folder", path=str(path))
        items: list[EvalItem] = []
        for file in files:
            subject = re.sub(r"_(test|dev|val)$", "", file.stem)
            with open(file, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = [column for column in _COLUMNS if column not in (reader.fieldnames or ())]
                if missing:
                    raise InputError(f"missing columns {missing}; expected a header "
                                     f"{','.join(_COLUMNS)}", path=str(file), line=1, unit="row")
                for row_number, row in enumerate(reader, start=2):
                    if any(row[column] is None for column in _COLUMNS):
                        raise InputError(f"expected {len(_COLUMNS)} values", path=str(file),
                                         line=row_number, unit="row")
                    choices = [row[f"choice{index}"] for index in range(4)]
                    answer = _answer_index(row["answer"], file, row_number)
                    items.append(self._item(len(items), subject, row["question"], choices,
                                            answer))
        return items

    def read_hub(self, name: str) -> list[EvalItem]:
        """The `all` config of `cais/mmlu` (question, subject, choices, answer index)."""
        rows = load_hub_rows(name, "all", split="test")
        return [self._item(index, row["subject"], row["question"], list(row["choices"]),
                           int(row["answer"])) for index, row in enumerate(rows)]

    @staticmethod
    def _item(index: int, subject: str, question: str, choices: list[str],
              answer: int) -> EvalItem:
        return EvalItem(id=str(index), prompt=format_question(subject, question, choices),
                        gold=LETTERS[answer], gold_response=LETTERS[answer],
                        meta={"subject": subject})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_letter(completion)
        return {"correct": extracted == item.gold, "extracted": extracted, "gold": item.gold}

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "subject")


def _answer_index(text: str, path: Path, line: int) -> int:
    value = text.strip().upper()
    if value in LETTERS:
        return LETTERS.index(value)
    if value in ("0", "1", "2", "3"):
        return int(value)
    raise InputError(f"expected an answer index 0-3 (or a letter A-D), got {text!r}",
                     path=str(path), line=line, field="answer", unit="row")


def score_mmlu_loglik(model: Any, tokenizer: Any, items: Sequence[EvalItem],
                      batch_size: int = 8, max_length: int = 2048,
                      progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Each item's prediction is the letter with the highest summed log-probability as the
    response to its prompt (formatted as `format_prompt` does for this tokenizer). A prompt
    longer than `max_length` or the model's context is cut from the left, keeping the options."""
    from ..lm.formatting import response_log_likelihood  # torch, only when scoring with a model

    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if context:
        max_length = min(max_length, context)
    prompts = [item.prompt for item in items for _ in LETTERS]
    responses = list(LETTERS) * len(items)
    sums, _ = response_log_likelihood(model, tokenizer, prompts, responses,
                                      batch_size=batch_size, max_length=max_length,
                                      progress=progress)
    log_likelihoods = sums.reshape(len(items), len(LETTERS))
    rows = []
    for item, scores in zip(items, log_likelihoods, strict=True):
        prediction = LETTERS[int(np.argmax(scores))]
        rows.append({"id": item.id, "correct": prediction == item.gold, "extracted": prediction,
                     "gold": item.gold, "log_likelihoods": [float(s) for s in scores]})
    return MMLU().summarise(list(items), rows)
