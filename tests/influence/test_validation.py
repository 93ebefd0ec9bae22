"""The influence validation set: equal counts per task, seeded, gold responses (METHODS §2.1),
built from the real benchmark files under ../shared/data; no model runs (a fake `respond`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from selection_core.spine.errors import ConfigError
from selection_core.evaluate import get_benchmark
from selection_core.evaluate.base import subsample
from selection_core.evaluate.splits import targeted_items, targeted_test_ids, validation_items
from selection_core.influence.validation import VALIDATION_TASKS, build_validation_set

pytestmark = pytest.mark.shared_data


class FakeResponder:
    """Stands in for the warmed-up model's greedy answers; remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.calls.append(list(prompts))
        return [f"generated answer {i}" for i in range(len(prompts))]


def test_equal_counts_labels_prompts_and_gold_responses(shared_data: Path) -> None:
    respond = FakeResponder()
    frame = build_validation_set(per_task=3, seed=0, respond=respond)
    assert list(frame.columns) == ["id", "task", "split", "prompt", "response", "generated"]
    assert frame["task"].tolist() == [t for t in VALIDATION_TASKS for _ in range(3)]
    assert frame["id"].is_unique
    assert all(i.startswith(f"{t}/") for i, t in zip(frame["id"], frame["task"]))
    assert (frame["prompt"].str.len() > 0).all() and (frame["response"].str.len() > 0).all()
    for task in VALIDATION_TASKS:
        rows = frame[frame["task"] == task]
        benchmark = get_benchmark(task)
        if task == "mbpp":  # BIDS A.2: from the validation split where a task has one
            items = subsample(benchmark.load_validation(), 3, 0)
            assert set(rows["split"]) == {"validation"}
            assert all(511 <= int(item.id) <= 600 for item in items)
        else:  # MMLU's validation split is not in the local copy: test
            items = benchmark.load(limit=3, seed=0)
            assert set(rows["split"]) == {"test"}
        assert rows["id"].tolist() == [f"{task}/{item.id}" for item in items]
        assert rows["prompt"].tolist() == [item.prompt for item in items]
        if task == "ifeval":  # no references: the responder's answers, flagged
            assert rows["generated"].all()
            assert respond.calls == [[item.prompt for item in items]]
            assert rows["response"].tolist() == [f"generated answer {i}" for i in range(3)]
        else:
            assert not rows["generated"].any()
            gold = [item.gold_response for item in items]
            if task == "bbh":  # the bare target, as the CoT prompt asks for its last line
                gold = [f"So the answer is {g}." for g in gold]
            assert rows["response"].tolist() == gold


def test_the_draw_is_seeded(shared_data: Path) -> None:
    tasks = ("mbpp", "mmlu", "ifeval")
    first = build_validation_set(tasks, per_task=4, seed=7, respond=FakeResponder())
    pd.testing.assert_frame_equal(first, build_validation_set(tasks, per_task=4, seed=7,
                                                              respond=FakeResponder()))
    other = build_validation_set(tasks, per_task=4, seed=8, respond=FakeResponder())
    assert set(first["id"]) != set(other["id"])
    assert other["task"].value_counts().to_dict() == {t: 4 for t in tasks}


def test_clear_errors(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="ifeval has no reference responses"):
        build_validation_set(("gsm-plus", "ifeval"), per_task=2)
    with pytest.raises(ConfigError, match="per_task must be ≥ 1"):
        build_validation_set(per_task=0)
    with pytest.raises(ConfigError, match="humaneval has only 164 items"):
        build_validation_set(("humaneval",), per_task=165)
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):
        build_validation_set(("nope",), per_task=1)


def test_held_out_ids_are_the_test_items_drawn_as_validation_instances(
        shared_data: Path, tmp_path: Path) -> None:
    gsm = targeted_test_ids("gsm-plus", 5, 0)
    assert gsm == [item.id for item in get_benchmark("gsm-plus").load(limit=5, seed=0)]
    assert targeted_test_ids("mbpp", 5, 0) == []  # drawn from MBPP's validation ids
    assert len(targeted_test_ids("mbpp", 5, 0, split_rule="test")) == 5
    # MMLU with a val/ folder beside test/: drawn from it, no test item targeted
    (tmp_path / "test").mkdir()
    (tmp_path / "val").mkdir()
    header = "question,choice0,choice1,choice2,choice3,answer\n"
    (tmp_path / "test" / "anatomy_test.csv").write_text(header + "".join(
        f"q{i},a,b,c,d,{i % 4}\n" for i in range(8)))
    (tmp_path / "val" / "anatomy_val.csv").write_text(header + "".join(
        f"v{i},a,b,c,d,{i % 4}\n" for i in range(6)))
    items, split = validation_items("mmlu", 4, 0, str(tmp_path / "test"))
    assert split == "validation" and all(item.id.startswith("val-") for item in items)
    assert {item.meta["text"].split("\n")[0] for item in items} <= {f"v{i}" for i in range(6)}
    assert targeted_test_ids("mmlu", 4, 0, str(tmp_path / "test")) == []
    (tmp_path / "val" / "anatomy_val.csv").unlink()
    assert len(targeted_test_ids("mmlu", 4, 0, str(tmp_path / "test"))) == 4
    assert targeted_items("gsm-plus", ["zzz", gsm[2], gsm[0]], None, 5, 0) == [gsm[2], gsm[0]]
    assert targeted_items("demo", ["0", "1"]) == []  # not an influence validation task
    with pytest.raises(ConfigError, match="unknown validation split rule"):
        targeted_test_ids("mmlu", 4, 0, split_rule="dev")
