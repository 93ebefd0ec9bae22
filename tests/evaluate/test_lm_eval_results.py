"""import_lm_eval_results on a hand-written results file in lm-evaluation-harness's format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from selection_core.spine.errors import InputError
from selection_core.evaluate.lm_eval_results import import_lm_eval_results

RESULTS = {
    "results": {
        "humaneval": {"alias": "humaneval", "pass@1,create_test": 0.25,
                      "pass@1_stderr,create_test": 0.03},
        "mbpp": {"alias": "mbpp", "pass_at_1,none": 0.3, "pass_at_1_stderr,none": 0.02},
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.40,
                  "exact_match_stderr,strict-match": 0.01, "exact_match,flexible-extract": 0.45,
                  "exact_match_stderr,flexible-extract": 0.01},
        "gsm_plus_mini": {"exact_match,strict-match": 0.2, "exact_match,flexible-extract": 0.3},
        "minerva_math_algebra": {"exact_match,none": 0.2, "math_verify,none": 0.25},
        "minerva_math_geometry": {"exact_match,none": 0.1, "math_verify,none": 0.15},
        "bbh_cot_fewshot": {"alias": "bbh_cot_fewshot", "exact_match,get-answer": 0.5,
                            "exact_match_stderr,get-answer": "N/A"},
        "bbh_cot_fewshot_navigate": {"alias": " - navigate", "exact_match,get-answer": 0.6},
        "bbh_zeroshot_navigate": {"exact_match,flexible-extract": 0.5,
                                  "exact_match,strict-match": 0.4},
        "bbh_zeroshot_snarks": {"exact_match,flexible-extract": 0.7,
                                "exact_match,strict-match": 0.2},
        "mmlu": {"acc,none": 0.55, "acc_stderr,none": 0.004, "alias": "mmlu"},
        "mmlu_stem": {"acc,none": 0.45},
        "mmlu_anatomy": {"acc,none": 0.6},
        "ifeval": {"prompt_level_strict_acc,none": 0.3, "inst_level_strict_acc,none": 0.4,
                   "prompt_level_loose_acc,none": 0.35, "inst_level_loose_acc,none": 0.45},
        "arc_easy": {"acc,none": 0.7, "acc_norm,none": 0.65, "acc_stderr,none": 0.01},
        "wikitext": {"word_perplexity,none": 25.5},
    },
    "groups": {"mmlu": {"acc,none": 0.99}},  # older lm-eval; `results` wins
    "n-samples": {"minerva_math_algebra": {"original": 1187, "effective": 300},
                  "minerva_math_geometry": {"original": 479, "effective": 100},
                  "bbh_zeroshot_navigate": {"original": 250, "effective": 250},
                  "bbh_zeroshot_snarks": {"original": 178, "effective": 178}},
}


@pytest.fixture()
def rows(tmp_path: Path) -> list[dict]:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    return import_lm_eval_results(path)


def _primary(rows: list[dict]) -> dict[tuple[str, str], tuple[str, float]]:
    return {(row["benchmark"], row["task"]): (row["metric"], row["score"])
            for row in rows if row["primary"]}


def test_headline_numbers_under_our_names(rows: list[dict]) -> None:
    primary = _primary(rows)
    zeroshot = 100 * (0.5 * 250 + 0.7 * 178) / (250 + 178)
    expected = {
        ("humaneval", "humaneval"): ("pass@1,create_test", 25.0),
        ("mbpp", "mbpp"): ("pass_at_1,none", 30.0),
        ("gsm8k", "gsm8k"): ("exact_match,flexible-extract", 45.0),
        ("gsm-plus", "gsm_plus_mini"): ("exact_match,flexible-extract", 30.0),
        ("math", "minerva_math"): ("exact_match,none", 17.5),  # weighted: (0.2*300+0.1*100)/400
        ("bbh", "bbh_cot_fewshot"): ("exact_match,get-answer", 50.0),
        ("bbh", "bbh_zeroshot"): ("exact_match,flexible-extract", zeroshot),
        ("mmlu", "mmlu"): ("acc,none", 55.0),
        ("ifeval", "ifeval"): ("prompt_level_strict_acc,none", 30.0),
    }
    assert primary.keys() == expected.keys()
    for key, (metric, score) in expected.items():
        assert primary[key][0] == metric
        assert primary[key][1] == pytest.approx(score)


def test_subtasks_other_metrics_and_unknown_tasks_are_kept(rows: list[dict]) -> None:
    by_key = {(row["task"], row["metric"]): row for row in rows}
    assert by_key[("bbh_cot_fewshot_navigate", "exact_match,get-answer")]["benchmark"] == "bbh"
    assert not by_key[("bbh_cot_fewshot_navigate", "exact_match,get-answer")]["primary"]
    assert by_key[("mmlu_anatomy", "acc,none")]["benchmark"] == "mmlu"
    assert by_key[("mmlu_stem", "acc,none")]["score"] == pytest.approx(45.0)
    assert by_key[("minerva_math", "math_verify,none")]["score"] == pytest.approx(22.5)
    assert by_key[("minerva_math", "math_verify,none")]["subtasks"] == 2
    assert by_key[("ifeval", "inst_level_loose_acc,none")]["score"] == pytest.approx(45.0)
    arc = by_key[("arc_easy", "acc,none")]
    assert arc["benchmark"] == "arc_easy" and arc["score"] == pytest.approx(70.0)
    assert arc["percent"] and not arc["primary"]
    perplexity = by_key[("wikitext", "word_perplexity,none")]
    assert perplexity["score"] == 25.5 and not perplexity["percent"]
    assert not any("stderr" in row["metric"] for row in rows)
    assert not [row for row in rows if row["task"] == "bbh_cot_fewshot" and "subtasks" in row]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"config": {}}', "expected lm-eval's results JSON"),
    ('{"results": {"gsm8k": 0.5}}', "expected an object of metrics for task 'gsm8k'"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        import_lm_eval_results(path)
    with pytest.raises(InputError, match="not found"):
        import_lm_eval_results(tmp_path / "absent.json")
