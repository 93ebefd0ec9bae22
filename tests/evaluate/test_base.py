"""Shared behaviour: the registry, data locations (default, local, hub), subsampling, results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from selection_core.spine.errors import ConfigError, InputError
from selection_core.evaluate import BENCHMARKS, Benchmark, EvalItem, EvalResult, base, get_benchmark
from selection_core.evaluate.base import GROUPS, is_hub_name, subsample
from selection_core.evaluate.bbh import TASKS as BBH_TASKS
from selection_core.evaluate.gsm8k import GSM8K
from selection_core.evaluate.humaneval import HumanEval

EXPECTED = {"humaneval": "coding", "mbpp": "coding", "gsm8k": "math", "gsm-plus": "math",
            "math": "math", "bbh": "logic", "mmlu": "knowledge", "ifeval": "instruction",
            "demo": "demo"}


def test_registry_names_and_groups() -> None:
    assert {name: benchmark.group for name, benchmark in BENCHMARKS.items()} == EXPECTED
    for name, benchmark in BENCHMARKS.items():
        assert isinstance(benchmark, Benchmark) and benchmark.name == name
        assert benchmark.group in GROUPS
    assert get_benchmark("gsm-plus") is BENCHMARKS["gsm-plus"]
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'; choose one of: humaneval"):
        get_benchmark("gsm9k")


def _items(count: int) -> list[EvalItem]:
    return [EvalItem(str(index), "p", "g", None, {}) for index in range(count)]


def test_subsample_is_seeded_and_keeps_order() -> None:
    items = _items(100)
    picked = subsample(items, 10, seed=3)
    assert len(picked) == 10 and picked == subsample(items, 10, seed=3)
    assert [int(item.id) for item in picked] == sorted(int(item.id) for item in picked)
    assert picked != subsample(items, 10, seed=4)
    assert subsample(items, None, 0) == items and subsample(items, 500, 0) == items
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="limit must be a positive integer"):
            subsample(items, bad, 0)


def test_missing_default_data_names_the_place_and_the_alternatives(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base, "default_data_dir", lambda: tmp_path / "absent")
    with pytest.raises(InputError, match=r"absent/gsm8k/test.jsonl: no gsm8k data at the default "
                                         r"location; .* such as 'gsm8k'"):
        GSM8K().load()


def test_the_default_data_folder_can_be_named_for_an_installed_package(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(
        '{"question": "1+1?", "answer": "so 2\\n#### 2"}\n')
    monkeypatch.setenv(base.DATA_DIR_ENV, str(tmp_path))
    assert base.default_data_dir() == tmp_path
    assert [item.gold for item in GSM8K().load()] == ["2"]


def test_local_files_and_located_errors(tmp_path: Path) -> None:
    path = tmp_path / "gsm.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2\\n#### 2"}\n{"question": "x"}\n')
    with pytest.raises(InputError, match=r"gsm.jsonl, line 2, field 'answer': missing field"):
        GSM8K().load(path)
    path.write_text('{"question": "1+1?", "answer": "two"}\n')
    with pytest.raises(InputError, match=r"line 1, field 'answer': expected a solution ending"):
        GSM8K().load(path)
    with pytest.raises(InputError, match="data file or folder not found"):
        GSM8K().load(tmp_path / "nothing.jsonl")


def test_hub_names_load_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return [{"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "  pass\n",
                 "test": "def check(c): pass", "entry_point": "f"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    items = HumanEval().load("openai_humaneval")
    assert calls == [("openai_humaneval", None, "test")]
    assert [item.id for item in items] == ["HumanEval/0"]


HUB_ROWS = {
    "gsm8k": {"question": "1+1?", "answer": "1+1=2\n#### 2"},
    "gsm-plus": {"question": "1+1?", "answer": "2", "solution": "#### 2",
                 "perturbation_type": "critical thinking"},
    "math": {"problem": "1+1?", "solution": "$\\boxed{2}$", "level": "Level 1",
             "subject": "Algebra"},
    "bbh": {"input": "True or False is", "target": "True"},
    "mmlu": {"question": "Q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 2},
    "ifeval": {"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
               "kwargs": [{}]},
    "mbpp": {"task_id": 11, "prompt": "Add.", "code": "def add(a, b): return a + b",
             "test_list": ["assert add(1, 2) == 3"], "test_setup_code": ""},
}


@pytest.mark.parametrize(("benchmark", "hub_name", "expected_calls"), [
    ("gsm8k", "openai/gsm8k", [("openai/gsm8k", "main", "test")]),
    ("gsm-plus", "qintongli/GSM-Plus", [("qintongli/GSM-Plus", None, "testmini")]),
    ("math", "EleutherAI/hendrycks_math", [("EleutherAI/hendrycks_math", config, "test") for config
                                           in ("algebra", "counting_and_probability", "geometry",
                                               "intermediate_algebra", "number_theory",
                                               "prealgebra", "precalculus")]),
    ("bbh", "lukaemon/bbh", None),
    ("mmlu", "cais/mmlu", [("cais/mmlu", "all", "test")]),
    ("ifeval", "google/IFEval", [("google/IFEval", None, "train")]),
    ("mbpp", "mbpp", [("mbpp", None, "test")]),
])
def test_hub_layouts(monkeypatch: pytest.MonkeyPatch, benchmark: str, hub_name: str,
                     expected_calls: list | None) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return [HUB_ROWS[benchmark]]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    items = get_benchmark(benchmark).load(hub_name)
    if expected_calls is None:  # BBH: one config per task
        assert len(calls) == 27 and {config for _, config, _ in calls} == set(BBH_TASKS)
    else:
        assert calls == expected_calls
    assert len(items) == len(calls)
    assert [item.id for item in items][:1] == [{"ifeval": "7", "mbpp": "11"}.get(benchmark, "0")]
    item = items[0]
    assert get_benchmark(benchmark).score_item(item, item.gold_response or "No commas")["correct"]


def test_hub_failures_are_input_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'gsm8k' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match=r"could not load gsm8k \(config main\), split test from "
                                         r"the Hugging Face hub: Couldn't reach"):
        GSM8K().load("gsm8k")


def test_hub_name_detection() -> None:
    assert is_hub_name("gsm8k") and is_hub_name("cais/mmlu") and is_hub_name("openai_humaneval")
    assert not is_hub_name("preds.jsonl") and not is_hub_name("a/b/c") and not is_hub_name("")


def test_result_serialises_to_json() -> None:
    result = EvalResult("gsm8k", "math", 2, 50.0, {"accuracy": 50.0},
                        [{"id": "0", "correct": True}, {"id": "1", "correct": False}])
    summary = result.to_dict(include_items=False)
    assert "per_item" not in summary and summary["score"] == 50.0
    assert json.loads(json.dumps(result.to_dict()))["per_item"][1] == {"id": "1", "correct": False}


def test_evaluating_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        GSM8K().evaluate([], {})
