"""BBH: targets score 100 as bare answers and in the chain-of-thought convention; extraction,
options named by their text, the per-task mean, and the 3-shot chain-of-thought prompt."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.bbh import BBH, TASKS, extract_answer, is_correct, read_cot_prompt


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


BOOKS = ("Which novel opens in 1775?\nOptions:\n(A) Moby-Dick\n(B) Emma\n"
         "(C) A Tale of Two Cities\n(D) Bleak House")


@pytest.mark.parametrize(("completion", "target", "correct"), [
    ("Dickens wrote it in 1859.\nAnswer: (D)", "(D)", True),
    ("Dickens wrote it in 1859.\nAnswer: (D)", "(C)", False),
    ("So the answer is A Tale of Two Cities.", "(C)", True),  # option (C)'s text, not (A)
    ("So the answer is A Tale of Two Cities.", "(A)", False),
    ("Emma", "(B)", True), ("The answer is **Bleak House**.", "(D)", True),
    ("So the answer is Moby-Dick.", "(C)", False), ("So the answer is (A).", "(A)", True),
])
def test_options_by_letter_or_text(completion: str, target: str, correct: bool) -> None:
    assert is_correct(extract_answer(completion), target, BOOKS) is correct


def test_score_is_the_mean_over_items_with_the_task_mean_beside(items: list[EvalItem]) -> None:
    first = [item for item in items if item.meta["task"] == "boolean_expressions"][:3]
    second = [item for item in items if item.meta["task"] == "navigate"][:1]
    completions = {item.id: item.gold for item in first}
    completions[second[0].id] = "So the answer is nothing."
    result = BBH().evaluate(first + second, completions)
    assert result.score == 75.0 and result.metrics["task_mean"] == 50.0  # 3 / 4 vs (100 + 0) / 2
    assert [row["task"] for row in result.per_item] == ["boolean_expressions"] * 3 + ["navigate"]


def test_three_shot_chain_of_thought_prompts(items: list[EvalItem], shared_data: Path) -> None:
    description, examples = read_cot_prompt(shared_data / "bbh" / "cot-prompts" / "navigate.txt")
    assert description.startswith("Given a series of navigation instructions")
    assert len(examples) == 3 and all(a.startswith("A: Let's think step by step.")
                                      for _, a in examples)
    shot = BBH().load(shots=3, limit=27)
    assert len({item.meta["task"] for item in shot}) == 27
    navigate = next(item for item in shot if item.meta["task"] == "navigate")
    turns = navigate.model_input()
    assert [turn["role"] for turn in turns] == ["user", "assistant"] * 3 + ["user"]
    assert turns[0]["content"] == ("Follow the given examples and answer the question.\n\n"
                                   f"{description}\nQ: {examples[0][0]}")
    assert turns[1]["content"] == examples[0][1] and turns[2]["content"] == f"Q: {examples[1][0]}"
    assert turns[-1]["content"] == f"Q: {navigate.meta['question']}"
    assert BBH().load(shots=1, limit=27)[0].shots[0][1] == shot[0].shots[0][1]


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
