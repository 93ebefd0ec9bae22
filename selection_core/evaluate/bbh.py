"""BIG-Bench Hard (27 reasoning tasks, 6,511 items), chain of thought, scored by exact match.

Prompt: with shots (the papers' protocol: 3), the task's chain-of-thought examples from BBH's own
`cot-prompts/<task>.txt` as earlier chat turns, as the UltraInteract/Eurus kit sends them
(Reasoning/bbh/evaluate_bbh.py): "Follow the given examples and answer the question." and the task
description open the first user turn, each example is a "Q: ..." user turn and an "A: Let's think
step by step. ... So the answer is X." assistant turn, and the question is the last user turn.
Zero-shot (the CPU demo protocol), the question asks for the same final sentence.

Extraction: the first sentence after the last "the answer is" or "Answer:" (any case), else the
model's last line. Comparison ignores case, surrounding space, Markdown emphasis, quotes and a
final full stop. A multiple-choice target "(C)" is matched by "(C)", "C", "C)" or "(C) text", or
by the text of option (C) alone; "A Tale of Two Cities" is option (C) when (C) says so, not (A).
The score is the mean over all items, the kit's aggregate; metrics add each task's accuracy
and the mean of the per-task accuracies (`task_mean`, each task counting once) beside it. Every
item's verdict names its task, so intervals resample within tasks (`evaluate.uncertainty`).
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.answers import answer_tail
from ..spine.errors import InputError
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, few_shot_dir, load_hub_rows

TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting")
INSTRUCTION = ("{question}\n\nThink step by step, then finish with a last line of the form "
               "\"So the answer is <answer>.\"")
FEW_SHOT_INSTRUCTION = "Follow the given examples and answer the question.\n\n"
COT_START = "A: Let's think step by step."
_ANSWER_IS = re.compile(r"the answer is|\banswer\s*:", re.IGNORECASE)
_CHOICE = re.compile(r"\(([A-Z])\)")
_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s*(.+?)\s*$", re.MULTILINE)
_STATED_CHOICE = re.compile(r"\(([A-Z])\)|([A-Z])(?:[.):]|$)")  # at the start of the answer
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


def extract_answer(completion: str) -> str:
    """The first sentence after the last "the answer is" / "Answer:", else the last non-empty
    line."""
    matches = list(_ANSWER_IS.finditer(completion))
    if matches:
        text = completion[matches[-1].end():].lstrip(" \t:").split("\n", 1)[0]
    else:
        lines = [line for line in completion.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    end = _SENTENCE_END.search(text)
    return normalise(text[:end.start()] if end else text)


def normalise(text: str) -> str:
    text = " ".join(text.split()).strip("*_`\"' ").rstrip(".").strip()
    return text.casefold()


def options(question: str) -> dict[str, str]:
    """The multiple-choice options listed in a question, {letter: normalised text}."""
    return {letter: normalise(text) for letter, text in _OPTION_LINE.findall(question)}


def chosen_option(extracted: str, choices: dict[str, str]) -> str | None:
    """The letter an extracted answer names: "(C)" first, else an option's whole text, else a
    bare letter ("C", "C)", "C. text")."""
    text = extracted.strip()
    bracketed = re.match(r"\(([a-z])\)", text)
    if bracketed:
        return bracketed.group(1).upper()
    by_text = [letter for letter, option in choices.items() if option and text == option]
    if by_text:
        return by_text[0]
    bare = _STATED_CHOICE.match(text.upper())
    return (bare.group(1) or bare.group(2)) if bare else None


def is_correct(extracted: str, target: str, question: str = "") -> bool:
    """Whether an extracted (normalised) answer is the target; `question` lists the options."""
    choice = _CHOICE.fullmatch(target.strip())
    if choice:
        return chosen_option(extracted, options(question)) == choice.group(1)
    return extracted == normalise(target)


def read_cot_prompt(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """A `cot-prompts/<task>.txt` file: its task description and (question, answer) examples,
    the answer starting with "A: Let's think step by step." (the canary header is dropped)."""
    text = path.read_text(encoding="utf-8")
    if "\n-----\n" in text[:400]:
        text = text.split("\n-----\n", 1)[1]
    description, *examples = text.strip().split("\n\nQ: ")
    if description.startswith("Q: "):  # no description
        description, examples = "", [description[3:], *examples]
    pairs = []
    for example in examples:
        question, found, reasoning = example.partition(COT_START)
        if not found:
            raise InputError(f"an example has no '{COT_START}'", path=str(path))
        pairs.append((question.strip(), (COT_START + reasoning).strip()))
    return description.strip(), pairs


def few_shot_turns(description: str, examples: list[tuple[str, str]]
                   ) -> tuple[tuple[str, str], ...]:
    """The kit's chat turns: the instruction and description open the first question."""
    turns = [(f"Q: {question}", answer) for question, answer in examples]
    if turns:
        opening = FEW_SHOT_INSTRUCTION + (f"{description}\n" if description else "")
        turns[0] = (opening + turns[0][0], turns[0][1])
    return tuple(turns)


class BBH(BaseBenchmark):
    name = "bbh"
    group = "logic"
    default_path = "bbh/tasks"
    hub_name = "lukaemon/bbh"

    def read_local(self, path: Path) -> list[EvalItem]:
        """A folder of task files (`<task>.json`, {"examples": [{input, target}]}) or one file;
        ids count over the files in sorted name order."""
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise InputError("no BBH task files (*.json) in this folder", path=str(path))
        items: list[EvalItem] = []
        for file in files:
            try:
                examples = json.loads(file.read_text(encoding="utf-8"))["examples"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"expected a JSON object with an 'examples' list ({exc})",
                                 path=str(file)) from None
            items += self._task_items(file.stem, examples, file, len(items))
        return items

    def read_hub(self, name: str) -> list[EvalItem]:
        """One hub config per task (`lukaemon/bbh` layout)."""
        items: list[EvalItem] = []
        for task in TASKS:
            items += self._task_items(task, load_hub_rows(name, task, split="test"), name,
                                      len(items))
        return items

    @staticmethod
    def _task_items(task: str, examples: list[Any], path: Path | str,
                    start: int) -> list[EvalItem]:
        items = []
        for offset, example in enumerate(examples):
            if not (isinstance(example, dict) and isinstance(example.get("input"), str)
                    and isinstance(example.get("target"), str)):
                raise InputError(f"example {offset} of task {task}: expected an object with "
                                 "string fields 'input' and 'target'", path=str(path))
            target = example["target"]
            items.append(EvalItem(id=str(start + offset),
                                  prompt=INSTRUCTION.format(question=example["input"]),
                                  gold=target, gold_response=target,
                                  meta={"task": task, "question": example["input"]}))
        return items

    def with_shots(self, items: list[EvalItem], shots: int,
                   data_path: str | Path | None) -> list[EvalItem]:
        """`shots` examples of each task's chain-of-thought prompt file, from `cot-prompts/`
        beside the task files (else the copy under ../shared/data)."""
        folder = few_shot_dir(data_path, "cot-prompts", "bbh/cot-prompts",
                              "BBH's few-shot prompts (cot-prompts/<task>.txt)")
        turns: dict[str, tuple[tuple[str, str], ...]] = {}
        for task in sorted({item.meta["task"] for item in items}):
            path = folder / f"{task}.txt"
            if not path.is_file():
                raise InputError(f"no chain-of-thought prompt file for task {task}",
                                 path=str(path))
            description, examples = read_cot_prompt(path)
            if len(examples) < shots:
                raise InputError(f"{len(examples)} examples, but {shots} shots were asked for",
                                 path=str(path))
            turns[task] = few_shot_turns(description, examples[:shots])
        return [dataclasses.replace(item, prompt=f"Q: {item.meta['question']}",
                                    shots=turns[item.meta["task"]]) for item in items]

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        extracted = extract_answer(answer_tail(completion))
        return {"correct": is_correct(extracted, item.gold, item.meta.get("question", "")),
                "extracted": extracted, "gold": item.gold, "task": item.meta.get("task", "")}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        """Score = the mean over all items, the kit's aggregate (UltraInteract's BBH script);
        `task_mean` = the mean of the per-task accuracies beside it."""
        result = super().summarise(items, rows)
        tasks = [value for key, value in result.metrics.items() if key.startswith("task/")]
        result.metrics["task_mean"] = sum(tasks) / len(tasks)
        return result

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "task")
