"""MMLU (57 subjects, 14,042 four-option questions), scored from a letter or by log-likelihood.

Prompt: with shots (the papers' protocol: 5), Hendrycks' few-shot text as the UltraInteract/Eurus
kit sends it (mmlu/evaluate_mmlu.py): "The following are multiple choice questions (with answers)
about  <subject>." (two spaces, as their `format_subject` writes it), the subject's first dev
questions each with " <letter>" after "Answer:", then the question ending in "Answer:" — raw text,
no chat template. Zero-shot (the CPU demo protocol), one chat turn asking for the letter.

Two ways to answer: a predictions file whose completions name a letter, or `score_mmlu_loglik`,
which needs no generation: the model's choice is the letter it finds most likely after the prompt
(" A" after the raw few-shot text; the usual way to score, and fast on a CPU). Letter extraction:
the last stated answer ("the answer is b", "I would choose B"), else a leading letter ("B. Paris"),
else the only letter named; a completion naming several letters without choosing gets none.
Ids count over the subject files in sorted name order; metrics add each subject's accuracy.
"""
from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.answers import answer_tail
from ..spine.errors import InputError
from ..lm.prompts import RawText
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, few_shot_dir, load_hub_rows

LETTERS = ("A", "B", "C", "D")
INSTRUCTION = ("The following is a multiple choice question about {subject}. Reply with the "
               "letter of the correct answer.\n\n{question}\n{options}\nAnswer:")
FEW_SHOT_HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
_COLUMNS = ("question", "choice0", "choice1", "choice2", "choice3", "answer")
# A letter as an answer: "B", "(b)", "**B**"; a lower-case one only where no word follows ("b.").
_ANSWER_LETTER = r"\**\(?(?:([A-D])\)?(?![A-Za-z])|([a-d])\)?(?=[ \t]*(?:[.)*:,]|$)))"
_STATED = re.compile(r"(?i:\banswer\b(?:\s+is)?|\b(?:choose|pick|select|go with|opt for)\b"
                     r"(?:\s+(?:option|answer))?)[ \t]*[:\-]?\s*" + _ANSWER_LETTER, re.MULTILINE)
_LEADING = re.compile(r"\s*\**\(?([A-Da-d])\)?\**(?:[.):]|\s*$)")  # "B. Paris", "(b)", "**B**"
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")


def extract_letter(completion: str) -> str | None:
    """The chosen letter (rules in the module docstring), upper case; None if there is none."""
    stated = [m for m in _STATED.finditer(completion) if _letter(m)]
    if stated:
        return _letter(stated[-1])
    leading = _LEADING.match(completion)
    if leading:
        return leading.group(1).upper()
    named = {match.group(1) for match in _LETTER.finditer(completion)
             if not (match.group(0) == "A" and re.match(r" [a-z]", completion[match.end():]))}
    return named.pop() if len(named) == 1 else None


def _letter(match: re.Match[str]) -> str | None:
    found = match.group(1) or match.group(2)
    return found.upper() if found else None


def format_question(subject: str, question: str, choices: Sequence[str]) -> str:
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices,
                                                                          strict=True))
    return INSTRUCTION.format(subject=subject.replace("_", " "), question=question.strip(),
                              options=options)


class MMLU(BaseBenchmark):
    name = "mmlu"
    group = "knowledge"
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

    def load_validation(self, data_path: str | Path | None = None) -> list[EvalItem] | None:
        """The `val/` folder beside the test folder (`<subject>_val.csv`), or the hub's
        `validation` split; None where neither is there."""
        path = self.local_path(data_path)
        if path is None:
            return [dataclasses.replace(item, id=f"val-{item.id}")
                    for item in self._hub_items(str(data_path), "validation")]
        folder = (path if path.is_dir() else path.parent).parent / "val"
        if not any(folder.glob("*.csv")):
            return None
        return [dataclasses.replace(item, id=f"val-{item.id}") for item in self.read_local(folder)]

    def read_hub(self, name: str) -> list[EvalItem]:
        """The `all` config of `cais/mmlu` (question, subject, choices, answer index)."""
        return self._hub_items(name, "test")

    def _hub_items(self, name: str, split: str) -> list[EvalItem]:
        rows = load_hub_rows(name, "all", split=split)
        return [self._item(index, row["subject"], row["question"], list(row["choices"]),
                           int(row["answer"])) for index, row in enumerate(rows)]

    @staticmethod
    def _item(index: int, subject: str, question: str, choices: list[str],
              answer: int) -> EvalItem:
        options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices,
                                                                            strict=True))
        return EvalItem(id=str(index), prompt=format_question(subject, question, choices),
                        gold=LETTERS[answer], gold_response=LETTERS[answer],
                        meta={"subject": subject, "text": f"{question}{options}\nAnswer:"})

    def with_shots(self, items: list[EvalItem], shots: int,
                   data_path: str | Path | None) -> list[EvalItem]:
        """Hendrycks' `shots`-shot prompt per subject, from the first rows of its dev file
        (`dev/<subject>_dev.csv` beside the test folder, else the copy under ../shared/data)."""
        folder = few_shot_dir(data_path, "dev", "mmlu/dev",
                              "MMLU's dev split (dev/<subject>_dev.csv, the few-shot examples)")
        headers: dict[str, str] = {}
        for subject in sorted({item.meta["subject"] for item in items}):
            dev = self.read_local(folder / f"{subject}_dev.csv")
            if len(dev) < shots:
                raise InputError(f"{len(dev)} dev questions, but {shots} shots were asked for",
                                 path=str(folder / f"{subject}_dev.csv"))
            examples = "".join(f"{example.meta['text']} {example.gold}\n\n"
                               for example in dev[:shots])
            headers[subject] = FEW_SHOT_HEADER.format(subject=_spaced(subject)) + examples
        return [dataclasses.replace(item, prompt=RawText(headers[item.meta["subject"]]
                                                         + item.meta["text"]))
                for item in items]

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_letter(answer_tail(completion))
        return {"correct": extracted == item.gold, "extracted": extracted, "gold": item.gold}

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "subject")


def _spaced(subject: str) -> str:
    """" abstract algebra" for abstract_algebra: Hendrycks' `format_subject`, leading space and
    all, which the kit copies."""
    return "".join(f" {word}" for word in subject.split("_"))


def _answer_index(text: str, path: Path, line: int) -> int:
    value = text.strip().upper()
    if value in LETTERS:
        return LETTERS.index(value)
    if value in ("0", "1", "2", "3"):
        return int(value)
    raise InputError(f"expected an answer index 0-3 (or a letter A-D), got {text!r}",
                     path=str(path), line=line, field="answer", unit="row")


def score_mmlu_loglik(model: Any, tokenizer: Any, items: Sequence[EvalItem],
                      batch_size: int = 8, max_length: int | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      use_chat_template: bool | None = None) -> EvalResult:
    """Each item's prediction is the letter with the highest summed log-probability as the
    response to its prompt (formatted as `format_prompt` does for this tokenizer; after a raw
    few-shot prompt the letter follows a space, " B", as in its examples). A prompt longer than
    `max_length` (default: the model's context) is cut from the left, keeping the options. When
    every letter is one token, one forward pass per prompt scores all four."""
    from ..lm.formatting import response_log_likelihood  # torch, only when scoring with a model

    context = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 2048
    max_length = min(max_length or context, context)
    responses = [[f" {letter}" if isinstance(item.prompt, RawText) else letter
                  for letter in LETTERS] for item in items]
    token_ids = [[tokenizer(r, add_special_tokens=False)["input_ids"] for r in row]
                 for row in responses]
    if all(len(ids) == 1 for row in token_ids for ids in row):
        log_likelihoods = _next_token_log_probs(
            model, tokenizer, [item.model_input() for item in items],
            [[ids[0] for ids in row] for row in token_ids], batch_size, max_length, progress,
            use_chat_template)
    else:
        sums, _ = response_log_likelihood(
            model, tokenizer, [item.model_input() for item in items for _ in LETTERS],
            [r for row in responses for r in row], batch_size=batch_size,
            max_length=max_length, progress=progress, use_chat_template=use_chat_template)
        log_likelihoods = sums.reshape(len(items), len(LETTERS))
    rows = []
    for item, scores in zip(items, log_likelihoods, strict=True):
        prediction = LETTERS[int(np.argmax(scores))]
        rows.append({"id": item.id, "correct": prediction == item.gold, "extracted": prediction,
                     "gold": item.gold, "log_likelihoods": [float(s) for s in scores]})
    return MMLU().summarise(list(items), rows)


def _next_token_log_probs(model: Any, tokenizer: Any, prompts: Sequence[Any],
                          token_ids: Sequence[Sequence[int]], batch_size: int, max_length: int,
                          progress: Callable[[int, int], None] | None,
                          use_chat_template: bool | None = None) -> np.ndarray:
    """log P(token | formatted prompt) for each prompt's `token_ids`, right-padded batches."""
    import torch

    from ..lm.formatting import encode_prompt
    from ..train.generate import pad_batch

    encoded = [encode_prompt(tokenizer, prompt, max_length - 1, use_chat_template)
               for prompt in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    result = np.zeros((len(prompts), len(token_ids[0])), dtype=np.float64)
    order = sorted(range(len(prompts)), key=lambda index: -len(encoded[index]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask = pad_batch([encoded[index] for index in rows], pad, left=False)
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, index in enumerate(rows):
            last = torch.log_softmax(logits[row, len(encoded[index]) - 1].double(), dim=-1)
            result[index] = last[list(token_ids[index])].cpu().numpy()
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return result
