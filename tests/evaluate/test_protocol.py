"""Evaluation protocols: the default is the papers' (BIDS A.2 / the UltraInteract kit), the fast
CPU one is named; the runner takes IFEval's median over three sampled runs."""
from __future__ import annotations

import pytest

from selection_core.spine.errors import ConfigError
from selection_core.evaluate import BENCHMARKS
from selection_core.evaluate.base import DEFAULT_STOP, EvalResult
from selection_core.evaluate.protocol import BBH_STOP, CPU_DEMO, DEFAULT_PROTOCOL, MATH_STOP, \
    PAPERS, PROTOCOLS, get_protocol
from selection_core.evaluate.runner import median_run, protocol_label


def test_the_default_protocol_is_the_papers() -> None:
    assert DEFAULT_PROTOCOL == "papers" and get_protocol(DEFAULT_PROTOCOL) is PAPERS
    specs = PAPERS.specs
    greedy = [name for name, spec in specs.items() if name != "ifeval"]
    assert all(specs[name].temperature == 0 and specs[name].seeds == (0,) for name in greedy)
    assert specs["ifeval"].temperature == 0.7 and len(specs["ifeval"].seeds) == 3
    assert specs["bbh"].shots == 3 and specs["mmlu"].shots == 5
    assert all(specs[name].shots == 0 for name in ("humaneval", "mbpp", "gsm8k", "gsm-plus",
                                                    "math", "ifeval"))
    for name in ("gsm8k", "gsm-plus", "math"):  # the kit's few-shot delimiter stops generation
        assert specs[name].stop[0] == MATH_STOP and specs[name].max_new_tokens == 1024
    assert specs["bbh"].stop[0] == BBH_STOP and specs["bbh"].max_new_tokens == 2048
    for protocol in PROTOCOLS.values():  # every benchmark has settings under every protocol
        assert set(protocol.specs) == set(BENCHMARKS)
        assert all(set(DEFAULT_STOP) <= set(spec.stop) for spec in protocol.specs.values())


def test_the_cpu_protocol_is_named_and_different() -> None:
    assert CPU_DEMO.name == "cpu-demo" and "NOT the papers'" in CPU_DEMO.description
    assert CPU_DEMO.spec("bbh").shots == 0 and CPU_DEMO.spec("ifeval").seeds == (0,)
    assert CPU_DEMO.spec("gsm8k").config_hash() != PAPERS.spec("gsm8k").config_hash()
    # the spec's source note is documentation, not part of what a result depends on
    assert CPU_DEMO.spec("demo").config_hash() == PAPERS.spec("demo").config_hash()
    with pytest.raises(ConfigError, match="unknown protocol 'paper'; choose one of: papers"):
        get_protocol("paper")
    assert protocol_label(CPU_DEMO, 24) == "cpu-demo (max_new_tokens=24)"


def _result(score: float, loose: float) -> EvalResult:
    return EvalResult("ifeval", "instruction", 2, score, {"accuracy": score, "loose": loose},
                      [{"id": "0", "correct": score > 50}])


def test_median_of_three_seeds() -> None:
    runs = [(_result(80.0, 90.0), {"0": "a"}), (_result(20.0, 95.0), {"0": "b"}),
            (_result(50.0, 10.0), {"0": "c"})]
    result, completions = median_run(runs, (0, 1, 2))
    assert result.score == 50.0 and completions == {"0": "c"}  # the median-score run's items
    assert result.metrics["loose"] == 90.0  # each metric is its own median
    assert [result.metrics[f"seed{s}_score"] for s in (0, 1, 2)] == [80.0, 20.0, 50.0]
    single = runs[:1]
    assert median_run(single, (0,)) == single[0]


def test_runner_samples_once_per_seed_and_reports_the_median(monkeypatch) -> None:
    from selection_core.evaluate.demo import DemoBenchmark
    from selection_core.evaluate.runner import run_benchmark
    from selection_core.train import generate as generation

    items = DemoBenchmark().load(limit=6)
    calls = []

    def fake_generate(model, tokenizer, prompts, **kwargs):
        calls.append(kwargs)
        right = {0: 2, 1: 6, 2: 4}[kwargs["seed"]]  # items answered right by this seed's run
        return [item.gold_response if index < right else "no idea"
                for index, item in enumerate(items)]

    monkeypatch.setattr(generation, "generate", fake_generate)
    spec = PAPERS.spec("ifeval")
    result, completions = run_benchmark(DemoBenchmark(), items, None, None, spec, batch_size=3)
    assert [call["seed"] for call in calls] == [0, 1, 2]
    assert all(call["temperature"] == 0.7 and call["stop"] == spec.stop and
               call["max_new_tokens"] == spec.max_new_tokens for call in calls)
    assert result.score == pytest.approx(100 * 4 / 6)  # the median run: seed 2
    assert sum(row["correct"] for row in result.per_item) == 4
    assert list(completions.values()).count("no idea") == 2
    greedy, _ = run_benchmark(DemoBenchmark(), items, None, None, PAPERS.spec("demo"),
                              max_new_tokens=7)
    assert calls[-1]["temperature"] == 0 and calls[-1]["max_new_tokens"] == 7


def test_mmlu_follows_the_kit_one_greedy_token_and_names_the_log_likelihood_variant(
        tmp_path) -> None:
    """papers: the kit's rule (evaluate_mmlu.py: max_tokens=1, temperature 0, the stripped token
    compared with the letter); `papers-mmlu-loglik` names the letters' log-likelihood."""
    from selection_core.evaluate.mmlu import MMLU
    from selection_core.evaluate.runner import load_items, run_benchmark
    from selection_core.lm.loading import load_causal_lm
    from selection_core.lm.tiny import build_tiny_causal_lm

    assert PAPERS.spec("mmlu").scoring == "generate" and PAPERS.spec("mmlu").max_new_tokens == 1
    variant = get_protocol("papers-mmlu-loglik")
    assert variant.spec("mmlu").scoring == "letter-loglik" and \
        variant.spec("mmlu").shots == PAPERS.spec("mmlu").shots
    assert variant.spec("gsm8k") == PAPERS.spec("gsm8k")
    assert variant.spec("mmlu").config_hash() != PAPERS.spec("mmlu").config_hash()
    header = "question,choice0,choice1,choice2,choice3,answer\n"
    for split, count in (("test", 3), ("dev", 5)):
        (tmp_path / split).mkdir()
        (tmp_path / split / f"anatomy_{split}.csv").write_text(header + "".join(
            f"{split} question {i}?,w,x,y,z,{i % 4}\n" for i in range(count)))
    model, tokenizer = load_causal_lm(str(build_tiny_causal_lm(tmp_path / "lm", seed=0)),
                                      device="cpu")
    items = load_items(MMLU(), PAPERS.spec("mmlu"), tmp_path / "test")
    kit, completions = run_benchmark(MMLU(), items, model, tokenizer, PAPERS.spec("mmlu"))
    for item, row in zip(items, kit.per_item, strict=True):  # one token, judged as the kit does
        token = completions[item.id]
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) <= 1
        assert row["correct"] == (token.strip() == item.gold) and "log_likelihoods" not in row
    loglik, _ = run_benchmark(MMLU(), items, model, tokenizer, variant.spec("mmlu"))
    assert all(len(row["log_likelihoods"]) == 4 for row in loglik.per_item)
