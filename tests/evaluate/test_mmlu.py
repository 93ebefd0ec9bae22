"""MMLU: gold letters score 100 and shifted ones 0; letter extraction; log-likelihood scoring
agrees with a hand computation on a tiny model."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from selection_core.spine.errors import InputError
from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.mmlu import (
    LETTERS,
    MMLU,
    extract_letter,
    format_question,
    score_mmlu_loglik,
)
from selection_core.lm.formatting import format_prompt, special_prefix
from selection_core.lm.prompts import RawText
from selection_core.lm.loading import load_causal_lm
from selection_core.lm.tiny import build_tiny_causal_lm


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return MMLU().load()


def test_loads_57_subjects_with_ids_over_sorted_files(items: list[EvalItem]) -> None:
    assert len(items) == 14042
    assert len({item.meta["subject"] for item in items}) == 57
    first = items[0]
    assert first.meta["subject"] == "abstract_algebra" and first.id == "0"
    assert first.gold == "B"  # answer index 1
    assert first.prompt.startswith("The following is a multiple choice question about "
                                   "abstract algebra.")
    assert first.prompt.endswith("\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")


def test_gold_letters_score_100_and_shifted_letters_0(items: list[EvalItem]) -> None:
    benchmark = MMLU()
    gold = benchmark.evaluate(items, {item.id: item.gold for item in items})
    assert gold.score == 100.0
    assert gold.metrics["subject/anatomy"] == 100.0
    shifted = {item.id: f"Answer: {LETTERS[(LETTERS.index(item.gold) + 1) % 4]}"
               for item in items}
    assert benchmark.evaluate(items, shifted).score == 0.0


@pytest.mark.parametrize(("completion", "letter"), [
    ("B", "B"), ("(C)", "C"), ("Answer: D", "D"), ("The answer is (A).", "A"),
    ("answer is **B**", "B"), ("A. Paris", "A"), ("A good choice is C.", "C"),
    ("I think it is D because", "D"), ("Answer:\nB", "B"), ("none of these", None),
    ("b", "B"), ("(c)", "C"), ("The answer is d.", "D"), ("the answer is a bit unclear: B", "B"),
    ("It is either D or B, but on balance I would choose B.", "B"),
    ("It is either D or B.", None),  # two letters, no choice: no answer
])
def test_letter_extraction(completion: str, letter: str | None) -> None:
    assert extract_letter(completion) == letter


def test_bad_answer_column_is_located(tmp_path: Path) -> None:
    path = tmp_path / "anatomy_test.csv"
    path.write_text("question,choice0,choice1,choice2,choice3,answer\nQ?,a,b,c,d,7\n")
    with pytest.raises(InputError, match=r"anatomy_test.csv, row 2, field 'answer'"):
        MMLU().load(path)
    path.write_text("question,choice0,choice1,choice2,choice3,answer\nQ?,a,b\n")
    with pytest.raises(InputError, match=r"row 2: expected 6 values"):
        MMLU().load(path)
    path.write_text("question,a,b\nQ?,a,b\n")
    with pytest.raises(InputError, match="missing columns"):
        MMLU().load(path)


def test_five_shot_prompt_is_hendrycks_raw_text(shared_data: Path) -> None:
    items = MMLU().load(shots=5, limit=3)
    item = items[0]
    subject = item.meta["subject"]
    assert isinstance(item.prompt, RawText) and item.model_input() is item.prompt
    header = ("The following are multiple choice questions (with answers) about  "
              f"{subject.replace('_', ' ')}.\n\n")
    assert item.prompt.startswith(header) and item.prompt.endswith(item.meta["text"])
    dev = MMLU().load(shared_data / "mmlu" / "dev" / f"{subject}_dev.csv")
    shots = item.prompt[len(header):-len(item.meta["text"])].split("\n\n")
    assert shots[:5] == [f"{example.meta['text']} {example.gold}" for example in dev]
    assert item.meta["text"].endswith("\nAnswer:")


def _manual_log_likelihood(model, tokenizer, prompt: str, response: str) -> float:
    """Summed log-probability of `response` after the formatted prompt, computed directly."""
    prompt_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    if isinstance(prompt, RawText):  # no template: the tokenizer's BOS comes first
        prompt_ids = special_prefix(tokenizer) + prompt_ids
    assert prompt_ids[0] == tokenizer.bos_token_id  # the chat template wrote BOS
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(log_probs[len(prompt_ids) - 1 + offset, token])
               for offset, token in enumerate(response_ids))


def test_log_likelihood_scoring_matches_a_hand_computation(tmp_path: Path) -> None:
    model, tokenizer = load_causal_lm(str(build_tiny_causal_lm(tmp_path / "tiny", seed=3)),
                                      device="cpu", cache=False)
    questions = [("anatomy", "Which bone is in the arm?", ["Femur", "Humerus", "Tibia", "Skull"]),
                 ("astronomy", "What orbits the Earth?", ["Mars", "The Sun", "The Moon", "Venus"]),
                 ("virology", "A virus is", ["alive", "a bacterium", "a parasite", "a plant"])]
    items = [EvalItem(str(index), format_question(subject, question, choices), gold,
                      gold, {"subject": subject})
             for index, ((subject, question, choices), gold)
             in enumerate(zip(questions, ["B", "C", "C"], strict=True))]
    result = score_mmlu_loglik(model, tokenizer, items, batch_size=5)
    assert result.benchmark == "mmlu" and result.n == 3
    for item, row in zip(items, result.per_item, strict=True):
        manual = [_manual_log_likelihood(model, tokenizer, item.prompt, letter)
                  for letter in LETTERS]
        raw = RawText(f"Q?\n{item.prompt}")  # a few-shot prompt: the letter follows a space
        raw_result = score_mmlu_loglik(model, tokenizer, [dataclasses.replace(item, prompt=raw)])
        np.testing.assert_allclose(
            raw_result.per_item[0]["log_likelihoods"],
            [_manual_log_likelihood(model, tokenizer, raw, f" {letter}") for letter in LETTERS],
            rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(row["log_likelihoods"], manual, rtol=1e-4, atol=1e-4)
        assert len(set(np.round(manual, 6))) > 1  # the options really differ
        assert row["extracted"] == LETTERS[int(np.argmax(manual))]
        assert row["correct"] == (row["extracted"] == item.gold)
    assert result.score == pytest.approx(100 * sum(row["correct"] for row in result.per_item) / 3)
