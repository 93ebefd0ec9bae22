"""The demo pool is ground truth for the whole app, so its labels must be exactly right."""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from selection_core.data.demo import (NOISE_TYPES, SKILLS, check_answer, generate_demo_eval,
                                      generate_demo_pool, write_demo_pool)

FIELDS = {"id", "prompt", "response", "source", "skill", "gold", "is_noise", "noise_type"}


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return generate_demo_pool()


def check_all(rows: list[dict]) -> list[bool]:
    """check_answer for many rows; python rows start sandboxes, so run them concurrently."""
    with ThreadPoolExecutor(max_workers=4) as workers:
        return list(workers.map(lambda r: check_answer(r["skill"], r["gold"], r["response"]),
                                rows))


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def sample(rows: list[dict], k: int, seed: int = 0) -> list[dict]:
    return random.Random(seed).sample(rows, min(k, len(rows)))


# --------------------------------------------------------------------------- shape
def test_same_arguments_give_the_same_pool() -> None:
    assert generate_demo_pool(400, seed=3) == generate_demo_pool(400, seed=3)


def test_different_seeds_give_different_items() -> None:
    first = {r["prompt"] for r in generate_demo_pool(400, seed=0)}
    second = {r["prompt"] for r in generate_demo_pool(400, seed=1)}
    assert len(first & second) < 40


@pytest.mark.parametrize("n", [1, 2, 7, 123])
def test_exactly_n_rows_with_unique_ids(n: int) -> None:
    rows = generate_demo_pool(n, noise_rate=0.5)
    assert len(rows) == n
    assert [r["id"] for r in rows] == [f"demo-{i:05d}" for i in range(n)]


def test_records_have_the_documented_fields(pool: list[dict]) -> None:
    assert len(pool) == 3000
    assert len({r["id"] for r in pool}) == 3000
    for row in pool:
        assert set(row) == FIELDS
        assert all(isinstance(row[k], str) for k in FIELDS - {"is_noise"})
        assert isinstance(row["is_noise"], bool)
        assert row["is_noise"] == (row["noise_type"] != "")
        assert row["noise_type"] in ("", *NOISE_TYPES)
        assert row["skill"] in SKILLS and row["prompt"].strip()


def test_all_skills_and_noise_types_are_present(pool: list[dict]) -> None:
    skills = Counter(r["skill"] for r in pool)
    assert set(skills) == set(SKILLS)
    assert min(skills.values()) > 300
    noise = Counter(r["noise_type"] for r in pool if r["is_noise"])
    assert set(noise) == set(NOISE_TYPES)
    per_skill = Counter(r["skill"] for r in pool if r["is_noise"])
    assert set(per_skill) == set(SKILLS)  # noise is spread over every skill


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.35])
def test_noise_share_matches_the_rate(pool: list[dict], rate: float) -> None:
    rows = pool if rate == 0.2 else generate_demo_pool(1000, noise_rate=rate)
    share = sum(r["is_noise"] for r in rows) / len(rows)
    assert abs(share - rate) <= 0.03


def test_sources_differ_in_noise_and_mix_skills(pool: list[dict]) -> None:
    rates = {}
    for source in ("curated", "synthetic", "web_scrape"):
        rows = [r for r in pool if r["source"] == source]
        rates[source] = sum(r["is_noise"] for r in rows) / len(rows)
        skills = Counter(r["skill"] for r in rows)
        assert len([s for s, c in skills.items() if c / len(rows) >= 0.05]) >= 4
    assert set(r["source"] for r in pool) == set(rates)
    assert rates["curated"] < rates["synthetic"] < rates["web_scrape"]
    assert rates["curated"] < 0.1 and rates["web_scrape"] > 0.3


def test_clean_prompts_are_unique(pool: list[dict]) -> None:
    prompts = [r["prompt"] for r in pool]
    assert len(set(prompts)) == len(prompts)


def test_same_prompt_means_same_gold_across_seeds() -> None:
    """The fictional world and the generators are consistent: one question, one answer.

    (Python is left out: its gold holds test inputs drawn per item, any of which are fair.)
    """
    gold: dict[str, str] = {}
    for seed in (0, 1, 2):
        for row in generate_demo_pool(2000, seed=seed):
            if not row["is_noise"] and row["skill"] != "python":
                assert gold.setdefault(row["prompt"], row["gold"]) == row["gold"]


# --------------------------------------------------------------------------- answers
def test_clean_responses_pass_their_check(pool: list[dict]) -> None:
    clean = [r for r in pool if not r["is_noise"]]
    rows = [r for r in clean if r["skill"] != "python"]
    rows += sample([r for r in clean if r["skill"] == "python"], 20)
    failures = [r for r, ok in zip(rows, check_all(rows), strict=True) if not ok]
    assert failures == []


@pytest.mark.parametrize("noise_type", ["wrong_answer", "truncated", "empty", "off_topic"])
def test_noisy_responses_fail_their_check(pool: list[dict], noise_type: str) -> None:
    noisy = [r for r in pool if r["noise_type"] == noise_type]
    rows = [r for r in noisy if r["skill"] != "python"]
    rows += sample([r for r in noisy if r["skill"] == "python"], 6)
    passing = [r for r, ok in zip(rows, check_all(rows), strict=True) if ok]
    assert passing == []


def test_truncated_responses_are_prefixes_of_a_clean_answer(pool: list[dict]) -> None:
    for row in (r for r in pool if r["noise_type"] == "truncated"):
        assert row["response"] and row["response"][-1].isalnum()  # cut mid-word
        assert "####" not in row["response"]


def test_near_duplicates_copy_another_row_with_a_tiny_edit(pool: list[dict]) -> None:
    by_response: dict[str, list[dict]] = {}
    for row in pool:
        by_response.setdefault(row["response"], []).append(row)
    duplicates = [r for r in pool if r["noise_type"] == "near_duplicate"]
    assert duplicates
    for dup in duplicates:
        originals = [r for r in by_response[dup["response"]]
                     if r["id"] != dup["id"] and r["noise_type"] != "near_duplicate"]
        assert any(o["skill"] == dup["skill"] and o["gold"] == dup["gold"]
                   and o["prompt"] != dup["prompt"]
                   and similarity(o["prompt"], dup["prompt"]) > 0.95
                   for o in originals), dup["id"]


def test_off_topic_responses_repeat_themselves(pool: list[dict]) -> None:
    for row in (r for r in pool if r["noise_type"] == "off_topic"):
        sentences = re.findall(r"[^.]+\.", row["response"])
        assert len(sentences) > len(set(sentences))


# --------------------------------------------------------------------------- evaluation set
def test_eval_set_is_clean_and_well_formed() -> None:
    items = generate_demo_eval(n_per_skill=20)
    assert len(items) == 20 * len(SKILLS)
    assert [i["id"] for i in items[:2]] == ["demo-eval-arithmetic-000", "demo-eval-arithmetic-001"]
    assert len({i["id"] for i in items}) == len(items)
    assert len({i["prompt"] for i in items}) == len(items)
    assert Counter(i["skill"] for i in items) == {s: 20 for s in SKILLS}
    assert all(set(i) == {"id", "skill", "prompt", "gold", "response"} for i in items)
    rows = [i for i in items if i["skill"] != "python"]
    rows += [i for i in items if i["skill"] == "python"][:8]
    assert all(check_all(rows))
    assert generate_demo_eval(n_per_skill=20) == items
    assert generate_demo_eval(n_per_skill=20, seed=2) != items


def test_eval_prompts_never_appear_in_any_pool() -> None:
    eval_prompts = {i["prompt"] for i in generate_demo_eval(n_per_skill=100)}
    for seed in range(4):
        pool_prompts = {r["prompt"] for r in generate_demo_pool(2000, seed=seed)}
        assert not eval_prompts & pool_prompts


# --------------------------------------------------------------------------- check_answer
@pytest.mark.parametrize("skill, gold, completion, expected", [
    ("arithmetic", "42", "6 × 7 = 42\n#### 42", True),
    ("arithmetic", "42", "So the answer is 42.", True),
    ("arithmetic", "42", "#### 42 (not 41)", True),
    ("arithmetic", "42", "It is 42, or maybe 41.", False),
    ("arithmetic", "1500", "#### 1,500", True),
    ("arithmetic", "42", "", False),
    ("unit_conversion", "32.19", "20 miles is about 32.2 km.", True),
    ("unit_conversion", "32.19", "20 miles is 33 km.", False),
    ("unit_conversion", "-10", "14 °F = (14 - 32) × 5/9 = -10 °C", True),
    ("unit_conversion", "0.05", "50 g = 0.05 kg", True),
    ("formatting", "THE CAT SAT.", '"THE CAT SAT"', True),
    ("formatting", "THE CAT SAT.", "The cat sat.", False),
    ("formatting", "- eggs\n- rice", "* eggs\n* rice\n", True),
    ("formatting", "- eggs\n- rice", "- eggs", False),
    ("formatting", '{"text": "Hi there."}', '```json\n{"text": "Hi there."}\n```', True),
    ("formatting", '{"text": "Hi there."}', '{"message": "Hi there."}', False),
    ("formatting", "9", "The sentence has 9 words.", True),
    ("formatting", "9", "The sentence has 8 words.", False),
    ("formatting", "apple, fig, pear", "apple,fig , pear", True),
    ("formatting", "apple, fig, pear", "fig, apple, pear", False),
    ("classification", "positive", "Sentiment: Positive.", True),
    ("classification", "positive", "Not negative, so positive.", False),
    ("classification", "business", "This is about business news.", True),
    ("world_qa", "Tolvik", "The capital is tolvik.", True),
    ("world_qa", "Tolvik", "The capital is Tolvikport.", False),
    ("world_qa", "12.4", "About 12.4 million people.", True),
    ("world_qa", "12.4", "About 112.4 million people.", False),
])
def test_check_answer_cases(skill: str, gold: str, completion: str, expected: bool) -> None:
    assert check_answer(skill, gold, completion) is expected


def test_check_answer_runs_python_tests() -> None:
    gold = json.dumps({"entry_point": "double", "tests": ["assert double(2) == 4",
                                                         "assert double(-1) == -2",
                                                         "assert double(0) == 0"]})
    assert check_answer("python", gold, "def double(x):\n    return 2 * x")
    assert check_answer("python", gold, "Here:\n```python\ndef double(x):\n    return x + x\n```")
    assert not check_answer("python", gold, "```python\ndef double(x):\n    return x * x\n```")
    # Exiting with status 0 before the asserts run is not a pass.
    assert not check_answer("python", gold, "import sys\ndef double(x):\n    return 0\nsys.exit(0)")


def test_check_answer_rejects_unknown_skill() -> None:
    with pytest.raises(ValueError, match="unknown skill"):
        check_answer("poetry", "x", "x")


# --------------------------------------------------------------------------- files and args
def test_write_demo_pool_round_trips(tmp_path: Path) -> None:
    path = write_demo_pool(tmp_path / "out" / "demo.jsonl", n=50, seed=4)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == generate_demo_pool(50, seed=4)
    assert [p.name for p in path.parent.iterdir()] == ["demo.jsonl"]  # no temp file left


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": -5}, {"n": 2.5}, {"noise_rate": 1.0},
                                    {"noise_rate": -0.1}])
def test_invalid_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_demo_pool(**kwargs)


def test_invalid_eval_size_raises() -> None:
    with pytest.raises(ValueError):
        generate_demo_eval(n_per_skill=0)
