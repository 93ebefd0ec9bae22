"""GSM-Plus: numeric golds compare as numbers, "None" (critical thinking) as normalised text."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.data.answers import format_number, parse_number
from selection_core.evaluate.gsm_plus import GSMPlus, extract_final_text


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return GSMPlus().load()


def test_loads_testmini_with_perturbation_types(items: list[EvalItem]) -> None:
    assert len(items) == 2400
    assert {item.meta["perturbation_type"] for item in items} >= {"critical thinking",
                                                                   "digit expansion"}
    assert sum(item.gold == "None" for item in items) == 300
    assert items[0].prompt.startswith("Solve the following math problem step-by-step.")


@pytest.mark.parametrize("form", ["#### {gold}", "The answer is {gold}.", "{response}",
                                  "so it is \\boxed{{{gold}}}."])
def test_gold_answers_score_100(items: list[EvalItem], form: str) -> None:
    completions = {item.id: form.format(gold=item.gold, response=item.gold_response)
                   for item in items}
    result = GSMPlus().evaluate(items, completions)
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]
    assert result.metrics["perturbation_type/critical thinking"] == 100.0


def test_wrong_answers_score_zero(items: list[EvalItem]) -> None:
    def wrong(gold: str) -> str:
        value = parse_number(gold)
        return "#### 7" if value is None else f"#### {format_number(value + 1)}"

    result = GSMPlus().evaluate(items, {item.id: wrong(item.gold) for item in items})
    assert result.score == 0.0


def test_none_answers_and_fraction_golds(items: list[EvalItem]) -> None:
    benchmark = GSMPlus()
    none_item = next(item for item in items if item.gold == "None")
    assert benchmark.score_item(none_item, "We cannot know.\n#### **None**.")["correct"]
    assert benchmark.score_item(none_item, "The answer is none")["correct"]
    for chat in ("We only know the price.\n\n**Answer: None**",
                 "None of the above… the problem is missing information about the cost.",
                 "There is not enough information to determine the answer.",
                 "The number of boxes is not given, so this cannot be determined."):
        assert benchmark.score_item(none_item, chat)["correct"], chat
    for wrong in ("So 12 cars.\n#### 12", "\\boxed{12}", "The answer is 12. None are left.",
                  "Half are red: 6 + 6 = 12"):
        assert not benchmark.score_item(none_item, wrong)["correct"], wrong
    fraction_item = next(item for item in items if item.gold == "1/4")
    assert benchmark.score_item(fraction_item, "#### 0.25")["correct"]
    assert not benchmark.score_item(fraction_item, "#### None")["correct"]


def test_final_text_extraction() -> None:
    assert extract_final_text("blah\n#### None \nmore") == "None"
    assert extract_final_text("So the answer is: None.") == "None."
    assert extract_final_text("x \\boxed{\\text{None}} y") == "\\text{None}"
    assert extract_final_text("first line\nlast line\n\n") is None  # no answer stated


def test_strict_score(items: list[EvalItem]) -> None:
    chosen = [next(item for item in items if item.gold == "None"), items[0]]
    result = GSMPlus().evaluate(chosen, {chosen[0].id: "#### None",
                                         chosen[1].id: f"#### {chosen[1].gold}"})
    # lm-eval's strict-match reads only a number after "####": it never credits "None"
    assert result.score == 100.0 and result.metrics["strict"] == 50.0
