"""BBH: targets score 100 as bare answers and in the chain-of-thought convention; extraction."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.bbh import BBH, TASKS, extract_answer, is_correct


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return BBH().load()


def test_loads_27_tasks_with_ids_over_sorted_files(items: list[EvalItem]) -> None:
    assert len(items) == 6511
    assert sorted({item.meta["task"] for item in items}) == sorted(TASKS)
    assert items[0].meta["task"] == "boolean_expressions" and items[0].id == "0"
    assert items[250].meta["task"] == "causal_judgement"  # boolean_expressions has 250
    assert items[-1].meta["task"] == "word_sorting" and items[-1].id == "6510"


@pytest.mark.parametrize("form", ["{target}", "Let's think.\nSo the answer is {target}.",
                                  "The answer is: **{target}**",
                                  "So THE ANSWER IS {target}. Done."])
def test_targets_score_100(items: list[EvalItem], form: str) -> None:
    result = BBH().evaluate(items, {item.id: form.format(target=item.gold) for item in items})
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]
    assert len([key for key in result.metrics if key.startswith("task/")]) == 27


def test_wrong_answers_score_zero(items: list[EvalItem]) -> None:
    swaps = {"True": "False", "False": "True", "Yes": "No", "No": "Yes", "yes": "no",
             "no": "yes", "valid": "invalid", "invalid": "valid"}

    def wrong(target: str) -> str:
        if target.startswith("("):
            return f"({'B' if target[1] == 'A' else 'A'})"
        return swaps.get(target, target + " x")

    result = BBH().evaluate(items, {item.id: f"So the answer is {wrong(item.gold)}."
                                    for item in items})
    assert result.score == 0.0


def test_multiple_choice_accepts_letter_forms() -> None:
    for given in ("(A)", "A", "A)", "(a)", "(A) 12/11/1937", "**(A)**"):
        assert is_correct(extract_answer(f"So the answer is {given}."), "(A)"), given
    assert not is_correct(extract_answer("So the answer is (B)."), "(A)")
    assert not is_correct(extract_answer("So the answer is Alice."), "(A)")


def test_extraction_rules() -> None:
    assert extract_answer("So the answer is Yes. Let me double check.") == "yes"
    assert extract_answer("the answer is 3.5") == "3.5"
    assert extract_answer("reasoning\n\n] ) }\n") == "] ) }"
    assert extract_answer("The answer is:   apple   banana") == "apple banana"
    assert extract_answer("") == ""
