"""Intervals, paired differences and detectable differences, against slow references."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from selection_core.spine.errors import InputError
from selection_core.evaluate.uncertainty import MACRO, RESAMPLES, block_intervals, compare, \
    minimum_detectable_difference, score_interval, verdicts


def result(benchmark: str, correct: list[bool], seeds: list[list[bool]] | None = None,
           tasks: list[str] | None = None) -> dict:
    rows = []
    for index, flag in enumerate(correct):
        row = {"id": str(index), "correct": flag}
        if seeds is not None:
            row["seeds_correct"] = seeds[index]
        if tasks is not None:
            row["task"] = tasks[index]
        rows.append(row)
    return {"benchmark": benchmark, "per_item": rows}


def coin(n: int, p: float, seed: int) -> list[bool]:
    return [bool(x) for x in np.random.default_rng(seed).random(n) < p]


def reference_interval(thetas: list[float]) -> tuple[float, float, float]:
    low, high = np.quantile(thetas, [0.025, 0.975])
    return float(np.std(thetas, ddof=1)), float(low), float(high)


def test_a_plain_score_interval_equals_a_slow_reference_bootstrap() -> None:
    flags = coin(60, 0.4, 1)
    interval = score_interval(verdicts(result("gsm8k", flags)), resamples=500, seed=7)
    rng = np.random.default_rng(7)  # scipy draws one (resamples × n) index block per sample
    draws = rng.integers(0, 60, (500, 60))
    thetas = [100.0 * sum(flags[i] for i in row) / 60 for row in draws]
    assert interval.value == pytest.approx(100.0 * sum(flags) / 60)
    assert (interval.stderr, interval.low, interval.high) == pytest.approx(
        reference_interval(thetas), abs=1e-9)


def test_bbh_resamples_within_subtasks_and_ifeval_keeps_its_seeds_together() -> None:
    tasks = ["a"] * 10 + ["b"] * 30
    flags = coin(40, 0.5, 2)
    interval = score_interval(verdicts(result("bbh", flags, tasks=tasks)), resamples=300, seed=3)
    rng = np.random.default_rng(3)
    a_items, b_items = list(range(10)), list(range(10, 40))
    draws_a = rng.integers(0, 10, (300, 10))
    draws_b = rng.integers(0, 30, (300, 30))
    thetas = [100.0 * (sum(flags[a_items[i]] for i in ra) + sum(flags[b_items[i]] for i in rb))
              / 40 for ra, rb in zip(draws_a, draws_b, strict=True)]
    assert (interval.stderr, interval.low, interval.high) == pytest.approx(
        reference_interval(thetas), abs=1e-9)

    seeds = [[bool(x) for x in row] for row in np.random.default_rng(4).random((50, 3)) < 0.5]
    interval = score_interval(verdicts(result("ifeval", [s[0] for s in seeds], seeds=seeds)),
                              resamples=300, seed=5)
    assert interval.value == pytest.approx(
        100.0 * float(np.median(np.mean(seeds, axis=0))))
    draws = np.random.default_rng(5).integers(0, 50, (300, 50))
    thetas = [100.0 * float(np.median([np.mean([seeds[i][s] for i in row]) for s in range(3)]))
              for row in draws]
    assert (interval.stderr, interval.low, interval.high) == pytest.approx(
        reference_interval(thetas), abs=1e-9)


def test_the_95_percent_interval_covers_a_known_rate_93_to_97_percent_of_the_time() -> None:
    truth, n, replicates = 0.3, 100, 2000
    rng = np.random.default_rng(11)
    covered = 0
    for replicate in range(replicates):
        flags = list(rng.random(n) < truth)
        interval = score_interval(verdicts(result("gsm8k", flags)), resamples=1000,
                                  seed=replicate)
        covered += interval.low <= 100 * truth <= interval.high
    assert 0.93 <= covered / replicates <= 0.97


def test_a_paired_difference_of_identical_files_is_exactly_zero() -> None:
    same = verdicts(result("mbpp", coin(80, 0.5, 6)))
    found = compare(same, same)
    assert found.delta.value == 0 and found.delta.low == 0 and found.delta.high == 0
    assert found.delta.stderr == 0 and found.p_value == 1.0 and found.n == 80


def test_a_paired_difference_resamples_both_methods_with_the_same_items() -> None:
    a, b = coin(70, 0.3, 8), coin(70, 0.6, 9)
    found = compare(verdicts(result("gsm8k", a)), verdicts(result("gsm8k", b)), resamples=400,
                    seed=2)
    draws = np.random.default_rng(2).integers(0, 70, (400, 70))
    thetas = [100.0 * (sum(b[i] for i in row) - sum(a[i] for i in row)) / 70 for row in draws]
    assert found.delta.value == pytest.approx(100.0 * (sum(b) - sum(a)) / 70)
    assert (found.delta.stderr, found.delta.low, found.delta.high) == pytest.approx(
        reference_interval(thetas), abs=1e-9)
    # the p-value: scipy's paired sign-flip permutation test on the per-item differences
    expected = stats.permutation_test((np.array(a, float), np.array(b, float)),
                                      lambda x, y, axis: np.mean(y - x, axis=axis),
                                      permutation_type="samples", n_resamples=9999,
                                      rng=np.random.default_rng(2)).pvalue
    assert found.p_value == pytest.approx(expected)
    assert found.p_value < 0.05 and found.delta.excludes_zero


def test_different_item_sets_are_refused() -> None:
    a = verdicts(result("gsm8k", coin(10, 0.5, 1)))
    b = verdicts(result("gsm8k", coin(11, 0.5, 1)))
    with pytest.raises(InputError, match="different gsm8k item sets"):
        compare(a, b)
    with pytest.raises(InputError, match="different benchmarks"):
        compare(a, verdicts(result("mbpp", coin(10, 0.5, 1))))


def test_the_detectable_difference_follows_the_observed_disagreement() -> None:
    a = [True] * 50 + [False] * 50
    b = [True] * 40 + [False] * 10 + [True] * 10 + [False] * 40  # disagree on 20 of 100
    found = minimum_detectable_difference([verdicts(result("mmlu", a)),
                                           verdicts(result("mmlu", b))])
    d = np.array(b, float) - np.array(a, float)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert found == pytest.approx(100 * z * np.sqrt(np.var(d, ddof=1) / 100))
    assert 12.5 < found < 12.7  # 20 % discordant pairs, 100 items: 2.80 · √(0.2 / 100) points
    assert np.isnan(minimum_detectable_difference([verdicts(result("mmlu", a))]))
    # two results that agree everywhere (every item wrong, say) give no σ_d to plan from
    assert np.isnan(minimum_detectable_difference([verdicts(result("mmlu", [False] * 100))] * 2))


def test_block_intervals_resample_random_seeds_with_the_items() -> None:
    """Δ vs random against a slow reference that draws items per benchmark, then seeds."""
    random_runs = [coin(30, 0.3, 20), coin(30, 0.4, 21), coin(30, 0.35, 22)]
    kmq = coin(30, 0.6, 23)
    block = {"random": {"gsm8k": [verdicts(result("gsm8k", r)) for r in random_runs]},
             "kmq": {"gsm8k": [verdicts(result("gsm8k", kmq))]}}
    found = block_intervals(block, resamples=300, seed=4)
    rng = np.random.default_rng(4)
    items = rng.integers(0, 30, (300, 30))
    seeds = rng.integers(0, 3, (300, 3))
    thetas = []
    for rows, picks in zip(items, seeds, strict=True):
        random_score = np.mean([100.0 * sum(random_runs[s][i] for i in rows) / 30 for s in picks])
        thetas.append(100.0 * sum(kmq[i] for i in rows) / 30 - random_score)
    delta = found.vs_random[("kmq", "gsm8k")]
    assert delta.value == pytest.approx(100 * sum(kmq) / 30 - np.mean([100 * sum(r) / 30
                                                                       for r in random_runs]))
    assert (delta.stderr, delta.low, delta.high) == pytest.approx(reference_interval(thetas),
                                                                  abs=1e-9)
    assert found.vs_random[("kmq", MACRO)].value == pytest.approx(delta.value)
    assert found.scores[("random", "gsm8k")].n == 30 and RESAMPLES >= 1000


def write_result(path, benchmark: str, flags: list[bool]) -> str:
    import json

    path.write_text(json.dumps({"benchmark": benchmark, "n": len(flags),
                                "score": 100.0 * sum(flags) / len(flags), "metrics": {},
                                **result(benchmark, flags)}))
    return str(path)


def test_compare_prints_the_paired_difference_and_refuses_mismatches(tmp_path, capsys) -> None:
    import json

    from selection_core.cli import main

    a = write_result(tmp_path / "a.json", "gsm8k", coin(90, 0.3, 30))
    b = write_result(tmp_path / "b.json", "gsm8k", coin(90, 0.7, 31))
    assert main(["compare", a, b]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"benchmark", "n", "a", "b", "delta", "ci_low", "ci_high", "p_value"}
    assert printed["benchmark"] == "gsm8k" and printed["n"] == 90
    assert printed["delta"] == pytest.approx(printed["b"] - printed["a"])
    assert printed["ci_low"] < printed["delta"] < printed["ci_high"] and printed["p_value"] < 0.05
    assert main(["compare", a, a]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["delta"] == same["ci_low"] == same["ci_high"] == 0 and same["p_value"] == 1

    other = write_result(tmp_path / "mbpp.json", "mbpp", coin(90, 0.5, 32))
    fewer = write_result(tmp_path / "fewer.json", "gsm8k", coin(80, 0.5, 33))
    for pair, words in (((a, other), "is gsm8k"), ((a, fewer), "different gsm8k items"),
                        ((a, str(tmp_path)), "cannot read"),
                        ((a, str(tmp_path / "none.json")), "file not found")):
        assert main(["compare", *pair]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_evaluate_reports_all_items_and_the_held_out_ones(shared_data, tmp_path, capsys) -> None:
    """GSM-Plus has no validation split: its 50 BIDS validation instances are test items, and the
    evaluation reports the score on the other items beside the all-items score."""
    import json

    from selection_core.cli import main
    from selection_core.evaluate import get_benchmark

    items = get_benchmark("gsm-plus").load()
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": int(item.id), "completion":
                                               f"The answer is {item.gold}" if i % 2 else "no"})
                                   + "\n" for i, item in enumerate(items)))
    out = tmp_path / "out.json"
    assert main(["evaluate", "--benchmark", "gsm-plus", "--predictions", str(predictions),
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["validation_items"] == 50 and summary["held_out_n"] == len(items) - 50
    stored = json.loads(out.read_text())
    skip = set(stored["validation_ids"])
    kept = [row["correct"] for row in stored["per_item"] if row["id"] not in skip]
    assert stored["held_out_score"] == pytest.approx(100 * sum(kept) / len(kept))
    assert summary["score"] == pytest.approx(
        100 * sum(row["correct"] for row in stored["per_item"]) / len(items))
