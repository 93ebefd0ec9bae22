"""The influence validation set: equal counts per task, seeded, gold responses (METHODS §2.1),
built from the real benchmark files under ../shared/data; no model runs (a fake `respond`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from selection_core.errors import ConfigError
from selection_core.evaluate import get_benchmark
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
    assert list(frame.columns) == ["id", "task", "prompt", "response", "generated"]
    assert frame["task"].tolist() == [t for t in VALIDATION_TASKS for _ in range(3)]
    assert frame["id"].is_unique
    assert all(i.startswith(f"{t}/") for i, t in zip(frame["id"], frame["task"]))
    assert (frame["prompt"].str.len() > 0).all() and (frame["response"].str.len() > 0).all()
    for task in VALIDATION_TASKS:
        rows = frame[frame["task"] == task]
        items = get_benchmark(task).load(limit=3, seed=0)
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
