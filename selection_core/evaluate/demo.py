"""The demo pool's held-out evaluation: six synthetic skills with machine-checkable answers.

Why it is a benchmark like the others: the built-in demo shows data selection end to end on a
CPU, and its evaluation must go through the same predictions file, CLI and result shape as the
real benchmarks. Items come from `generate_demo_eval` (or a JSONL file it wrote); ids are the
generated ids ("demo-eval-python-003"), answers are judged by `check_answer` (Python answers in
the sandbox, in parallel), and metrics add each skill's accuracy.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..data.demo import SKILLS, check_answer, generate_demo_eval
from ..spine.errors import InputError
from .base import BaseBenchmark, EvalItem, EvalResult, accuracy_by, read_jsonl, require

N_PER_SKILL = 50
GENERATION_SEED = 1  # generate_demo_eval's default: the held-out slice the app reports on


class DemoBenchmark(BaseBenchmark):
    name = "demo"
    group = "demo"

    def _load_all(self, data_path: str | Path | None) -> list[EvalItem]:
        if data_path is None:
            records = generate_demo_eval(N_PER_SKILL, GENERATION_SEED)
            return [self._item(record, "generate_demo_eval", None) for record in records]
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise InputError("demo evaluation file not found (the demo items are generated "
                             "when no data path is given)", path=str(path))
        return self.read_local(path)

    def read_local(self, path: Path) -> list[EvalItem]:
        return [self._item(record, path, line) for line, record in read_jsonl(path)]

    def read_hub(self, name: str) -> list[EvalItem]:
        raise InputError("the demo benchmark is generated locally, not on the hub", path=name)

    @staticmethod
    def _item(record: dict[str, Any], path: Path | str, line: int | None) -> EvalItem:
        skill = require(record, "skill", str, path, line)
        if skill not in SKILLS:
            raise InputError(f"unknown skill {skill!r}; expected one of {', '.join(SKILLS)}",
                             path=str(path), line=line, field="skill")
        response = record.get("response")
        return EvalItem(id=require(record, "id", str, path, line),
                        prompt=require(record, "prompt", str, path, line),
                        gold=require(record, "gold", str, path, line),
                        gold_response=response if isinstance(response, str) else None,
                        meta={"skill": skill})

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        return {"correct": check_answer(item.meta["skill"], item.gold, completion),
                "gold": item.gold, "skill": item.meta["skill"]}

    def evaluate(self, items: list[EvalItem], completions: Mapping[str, str]) -> EvalResult:
        """Items are judged in parallel threads: Python answers each wait on a subprocess."""
        def judge(item: EvalItem) -> dict[str, Any]:
            return self.score_item(item, completions.get(item.id, ""))

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            details = list(pool.map(judge, items))
        return self.summarise(items, [self._row(item, completions, detail)
                                      for item, detail in zip(items, details, strict=True)])

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        return accuracy_by(items, rows, "skill")
