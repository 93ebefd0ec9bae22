"""GSM8K: gold answers in any usual form score 100, off-by-one answers 0; extraction rules; the
strict (lm-eval strict-match) score beside ours."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.data.answers import extract_final_number, format_number, numbers_match, \
    parse_number
from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.gsm8k import GSM8K, strict_match


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return GSM8K().load()


def test_loads_the_test_set(items: list[EvalItem]) -> None:
    assert len(items) == 1319
    assert items[0].id == "0" and items[0].gold == "18"
    assert items[0].prompt.startswith("Solve the following math problem step-by-step.\n"
                                      "Simplify your answer as much as possible. Present your "
                                      "final answer as \\boxed{Your Answer}.\nJanet")
    assert "<<" not in items[0].gold_response and items[0].gold_response.endswith("#### 18")


@pytest.mark.parametrize("form", ["#### {gold}", "The answer is {gold}.", "{response}",
                                  "Step 1: 2 + 2 = 4.\nSo she has ${gold}.00 in the end.",
                                  "So $\\boxed{{{gold}}}$ dollars.",
                                  "#### 1. Understand the problem\nHalf of 8 is 4.\n\n"
                                  "**Answer:** {gold}"])
def test_gold_answers_score_100(items: list[EvalItem], form: str) -> None:
    completions = {item.id: form.format(gold=item.gold, response=item.gold_response)
                   for item in items}
    result = GSM8K().evaluate(items, completions)
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]


def test_gold_plus_one_scores_zero(items: list[EvalItem]) -> None:
    completions = {item.id: f"#### {format_number(parse_number(item.gold) + 1)}"
                   for item in items}
    assert GSM8K().evaluate(items, completions).score == 0.0


@pytest.mark.parametrize(("completion", "expected"), [
    ("She pays 3 + 4 = 7 dollars.\n#### 7", "7"),
    ("#### $1,000", "$1,000"),
    ("#### 18.0 dollars, or 5 in total", "18.0"),
    ("16-3-4=9 eggs, so the answer is 9.", "9"),
    ("The temperature drops to -5 degrees.", "-5"),
    ("#### Step 1\nShe has 3 apples, then 5.", "5"),  # a Markdown heading, not an answer
    ("#### 1. Understand the problem\n3 + 4 = 7 ...\n**Answer:** 36", "36"),
    ("#### 12. Add them up\nso 5 in all", "5"),
    ("The answer is 2 apples, so 3 were eaten", "2"),
    ("The answer is: 5 + 3 = 8 apples.\nCheck: 8 - 3 = 5", "8"),
    ("**Answer:**\n\n36 (12 each)", "36"),
    ("Final answer = 40 (not 4).", "40"),
    ("We get 7 cakes.\n$\\boxed{\\frac{1}{4}}$", "1/4"),
    ("so x = \\boxed{12}. Check: 12 - 3 = 9", "12"),
    ("**Answer: None**, because 3 + 4 = 7 is not asked", None),  # stated, but no number
    ("Half of it: 1/4", "1/4"),
    ("no numbers here", None),
])
def test_final_number_extraction(completion: str, expected: str | None) -> None:
    assert extract_final_number(completion) == expected


def test_numbers_compare_after_normalisation() -> None:
    assert numbers_match("$1,000.00", "1000")
    assert numbers_match("18.0", "18")
    assert numbers_match("25%", "25")
    assert numbers_match("0.25", "1/4")
    assert not numbers_match("18.5", "18")
    assert not numbers_match(None, "18")
    assert parse_number("None") is None and parse_number("Infinity") is None
    assert parse_number("1/0") is None
    assert format_number(parse_number("4.330")) == "4.33"
    assert format_number(parse_number("1/3")) == "1/3"


@pytest.mark.parametrize(("completion", "strict"), [
    ("#### 18", True), ("Work.\n#### 18.\nMore #### 3", True), ("#### $18", False),
    ("#### 18.00", False),  # exact string match: not a number comparison
    ("The answer is 18.", False), ("\\boxed{18}", False), ("#### 17\n#### 18", False),
])
def test_strict_match_is_lm_evals_strict_rule(completion: str, strict: bool) -> None:
    assert strict_match(completion, "She sells 9 * 2 = 18 eggs.\n#### 18") is strict


def test_strict_score_is_reported_beside_ours(items: list[EvalItem]) -> None:
    chosen = items[:4]
    completions = {chosen[0].id: f"#### {chosen[0].gold}",
                   chosen[1].id: f"The answer is \\boxed{{{chosen[1].gold}}}.",
                   chosen[2].id: f"#### {chosen[2].gold}.0", chosen[3].id: "#### -1"}
    result = GSM8K().evaluate(chosen, completions)
    assert result.score == 75.0 and result.metrics["strict"] == 25.0
    assert [row["strict"] for row in result.per_item] == [True, False, False, False]
