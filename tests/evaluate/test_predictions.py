"""read_predictions: the contract of a predictions file, and clear errors when it is broken."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from selection_core.spine.errors import InputError
from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.gsm8k import GSM8K
from selection_core.evaluate.humaneval import HumanEval
from selection_core.evaluate.ifeval import IFEval
from selection_core.evaluate.predictions import read_predictions

ITEMS = [EvalItem(str(index), f"q{index}", str(index), None, {}) for index in range(12)]


def _write(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def test_reads_ids_as_numbers_or_strings(tmp_path: Path) -> None:
    rows = [{"id": index, "completion": f"#### {index}"} for index in range(11)]
    rows.append({"id": "11", "completion": "#### 11", "model": "extra fields are ignored"})
    path = _write(tmp_path / "p.jsonl", [*rows[:5], "", *rows[5:]])
    completions = read_predictions(path, GSM8K(), ITEMS)
    assert completions == {str(index): f"#### {index}" for index in range(12)}


def test_benchmark_specific_id_fields(tmp_path: Path) -> None:
    code_items = [EvalItem("HumanEval/0", "p", {}, None, {})]
    path = _write(tmp_path / "he.jsonl", [{"task_id": "HumanEval/0", "completion": "x"}])
    assert read_predictions(path, HumanEval(), code_items) == {"HumanEval/0": "x"}
    ifeval_items = [EvalItem("1000", "p", {}, None, {})]
    path = _write(tmp_path / "if.jsonl", [{"key": 1000, "completion": "y"}])
    assert read_predictions(path, IFEval(), ifeval_items) == {"1000": "y"}
    with pytest.raises(InputError, match=r"line 1, field 'task_id': missing field"):
        read_predictions(_write(tmp_path / "he2.jsonl", [{"completion": "x"}]), HumanEval(),
                         code_items)


@pytest.mark.parametrize(("lines", "message"), [
    (['{"id": 0, "completion": "a"}', "{not json"], r"p.jsonl, line 2: not valid JSON"),
    (['[1, 2]'], r"line 1: expected a JSON object, got list"),
    ([{"id": 0}], r"line 1, field 'completion': missing field"),
    ([{"id": 0, "completion": 5}], r"line 1, field 'completion': expected a string, got int"),
    ([{"id": 9999, "completion": "a"}], r"line 1, field 'id': id 9999 not in gsm8k \(12 items\)"),
    ([{"id": 1, "completion": "a"}, {"id": "1", "completion": "b"}],
     r"line 2: duplicate id 1 \(first on line 1\)"),
    ([{"id": [1], "completion": "a"}], r"field 'id': expected a string or integer id"),
    ([{"completion": "a"}], r"line 1, field 'id': missing field"),
])
def test_malformed_files_are_located(tmp_path: Path, lines: list, message: str) -> None:
    path = _write(tmp_path / "p.jsonl", lines)
    with pytest.raises(InputError, match=message):
        read_predictions(path, GSM8K(), ITEMS, allow_missing=True)


def test_missing_items_are_an_error_unless_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [{"id": 0, "completion": "a"},
                                         {"id": 3, "completion": "b"}])
    with pytest.raises(InputError, match=r"10 of 12 gsm8k items have no prediction "
                                         r"\(first: 1, 2, 4, 5, 6, \.\.\.\); allow missing"):
        read_predictions(path, GSM8K(), ITEMS)
    assert read_predictions(path, GSM8K(), ITEMS, allow_missing=True) == {"0": "a", "3": "b"}
    with pytest.raises(InputError, match="predictions file not found"):
        read_predictions(tmp_path / "absent.jsonl", GSM8K(), ITEMS)
