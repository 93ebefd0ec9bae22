"""MATH: every gold answer matches itself in every answer style; normalisation is symmetric,
catches the usual rewritings and keeps different answers apart."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.data.answers import boxed_answers
from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.hendrycks_math import HendrycksMath, answers_equal, extract_answer, \
    normalise


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return HendrycksMath().load()


def test_loads_1000_problems_with_boxed_golds(items: list[EvalItem]) -> None:
    assert len(items) == 1000
    assert items[0].gold == "1000000"
    assert items[0].meta == {"level": "Level 2", "type": "Counting & Probability"}
    assert items[0].prompt.startswith("Solve the following math problem step-by-step.\n"
                                      "Simplify your answer as much as possible. Present your "
                                      "final answer as \\boxed{Your Answer}.\n")


@pytest.mark.parametrize("form", [
    "{solution}",
    "So the answer is $\\boxed{{{gold}}}$.",
    "Final Answer: The final answer is ${gold}$. I hope it is correct.",
    "\\fbox{{{gold}}}",
])
def test_all_gold_answers_score_100(items: list[EvalItem], form: str) -> None:
    completions = {item.id: form.format(gold=item.gold, solution=item.gold_response)
                   for item in items}
    result = HendrycksMath().evaluate(items, completions)
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:5]
    assert "type/Algebra" in result.metrics and "level/Level 5" in result.metrics


def test_a_different_answer_scores_zero(items: list[EvalItem]) -> None:
    others = sorted({item.gold for item in items}, key=normalise)
    completions = {}
    for item in items:
        wrong = next(gold for gold in others if not answers_equal(gold, item.gold))
        completions[item.id] = f"\\boxed{{{wrong}}}"
    assert HendrycksMath().evaluate(items, completions).score == 0.0


@pytest.mark.parametrize(("predicted", "gold"), [
    ("0.5", "\\frac12"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("1/2", "\\tfrac12"),
    (".5", "\\frac{2}{4}"), ("\\frac\\pi4", "\\frac{\\pi}{4}"), ("10", "10^\\circ"),
    ("10^{\\circ}", "10"), ("5\\text{ cm}", "5"), ("5 inches", "5"), ("x = 5", "5"),
    ("\\left(1, 2\\right)", "(1,2)"), ("1,000", "1000"), ("10,\\!080", "10080"), ("5.", "5"),
    ("\\$5", "5"), ("50\\%", "50"), ("10.0", "10"), ("\\text{(C)}", "(C)"),
    ("\\sqrt3", "\\sqrt{3}"), ("-\\frac{1}{2}", "-0.5"), ("\\mathbf{v}", "v"),
    ("(1 + \\sqrt{5})/4", "\\frac{1+\\sqrt5}{4}"), ("\\pi/2", "\\frac{\\pi}{2}"),
    ("65 children tickets", "65 \\text{ children tickets }"), ("12 marbles", "12"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
])
def test_equivalent_forms_match(predicted: str, gold: str) -> None:
    assert answers_equal(predicted, gold)
    assert answers_equal(gold, predicted)


@pytest.mark.parametrize(("predicted", "gold"), [
    ("2", "3"), ("\\frac{1}{3}", "0.33"), ("(1,2)", "(2,1)"), ("x+1", "x-1"),
    ("\\sqrt{2}", "2"), ("-5", "5"), ("[0,1)", "[0,1]"), ("(1 + \\sqrt{5})/4", "\\frac{1+\\sqrt5}{2}"),
    ("2 \\sin x", "2"), ("3 pi", "3"), ("64 children tickets", "65"),
])
def test_different_answers_do_not_match(predicted: str, gold: str) -> None:
    assert not answers_equal(predicted, gold)


def test_boxed_extraction() -> None:
    assert boxed_answers("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == ["1", "\\frac{1}{2}"]
    assert boxed_answers("\\boxed{x \\text{ and } \\boxed{y}}") == ["x \\text{ and } \\boxed{y}"]
    assert boxed_answers("so $\\boxed 5$.") == ["5"]
    assert boxed_answers("\\boxed{unbalanced") == []
    assert extract_answer("First \\boxed{1}, finally \\boxed{2}.") == "2"
    assert extract_answer("The answer is $7$. I hope so.") == "7"
    assert extract_answer("no answer here") is None
    assert not HendrycksMath().score_item(
        EvalItem("0", "", "5", None, {"level": "1", "type": "x"}), "I don't know")["correct"]


def test_strict_score_is_hendrycks_string_match() -> None:
    item = EvalItem("0", "", "\\frac{1}{2}", None, {"level": "Level 1", "type": "Algebra"})
    benchmark = HendrycksMath()
    completions = ["$\\boxed{\\frac12}$", "$\\boxed{2/4}$", "\\boxed{\\frac{2}{4}}", "\\boxed{3}"]
    rows = [benchmark.score_item(item, text) for text in completions]
    assert [row["correct"] for row in rows] == [True, True, True, False]
    assert [row["strict"] for row in rows] == [True, False, False, False]  # lowest terms only
    result = benchmark.evaluate([item], {"0": completions[1]})
    assert result.score == 100.0 and result.metrics["strict"] == 0.0
