"""The demo benchmark: generated held-out items, judged by `check_answer`, per-skill metrics."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.data.demo import SKILLS, generate_demo_eval
from selection_core.spine.errors import InputError
from selection_core.evaluate.demo import DemoBenchmark
from selection_core.spine.store import write_jsonl


def test_generated_items_and_gold_responses_score_100() -> None:
    benchmark = DemoBenchmark()
    items = benchmark.load()
    assert len(items) == 50 * len(SKILLS)
    assert items[0].id == "demo-eval-arithmetic-000" and items[0].meta == {"skill": "arithmetic"}
    result = benchmark.evaluate(items, {item.id: item.gold_response for item in items})
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]
    assert {key for key in result.metrics if key.startswith("skill/")} == \
        {f"skill/{skill}" for skill in SKILLS}


def test_empty_answers_score_zero_and_limit_subsamples() -> None:
    benchmark = DemoBenchmark()
    items = benchmark.load(limit=30, seed=4)
    assert len(items) == 30 and items == benchmark.load(limit=30, seed=4)
    result = benchmark.evaluate(items, {item.id: "I do not know." for item in items})
    assert result.score == 0.0


def test_items_from_a_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "eval.jsonl", generate_demo_eval(n_per_skill=2, seed=7))
    items = DemoBenchmark().load(path)
    assert len(items) == 2 * len(SKILLS)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "skill": "poetry", "prompt": "p",
                                                "gold": "g"}])
    with pytest.raises(InputError, match=r"bad.jsonl, line 1, field 'skill': unknown skill"):
        DemoBenchmark().load(bad)
    with pytest.raises(InputError, match="not found"):
        DemoBenchmark().load(tmp_path / "absent.jsonl")
