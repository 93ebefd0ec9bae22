"""`evaluate` subcommand: argparse wiring and the one-JSON-object output contract."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from selection_core.spine.errors import InputError, SelectionError
from selection_core.evaluate.cli import add_evaluate_parser, run_evaluate
from selection_core.evaluate.demo import DemoBenchmark


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m selection_core")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _demo_predictions(path: Path, wrong_every: int = 0) -> Path:
    items = DemoBenchmark().load()
    with open(path, "w", encoding="utf-8") as handle:
        for index, item in enumerate(items):
            completion = "no idea" if wrong_every and index % wrong_every == 0 \
                else item.gold_response
            handle.write(json.dumps({"id": item.id, "completion": completion}) + "\n")
    return path


def test_prints_one_json_object_and_writes_details(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _demo_predictions(tmp_path / "preds.jsonl", wrong_every=4)
    out = tmp_path / "result.json"
    args = _parser().parse_args(["evaluate", "--benchmark", "demo", "--predictions",
                                 str(predictions), "--out", str(out)])
    run_evaluate(args)
    printed = json.loads(capsys.readouterr().out)
    assert printed["benchmark"] == "demo" and printed["n"] == 300
    assert printed["score"] == pytest.approx(75.0)
    assert printed["metrics"]["skill/arithmetic"] <= 100 and printed["out"] == str(out)
    saved = json.loads(out.read_text())
    assert len(saved["per_item"]) == 300 and saved["score"] == printed["score"]


def test_gsm8k_with_missing_predictions(tmp_path: Path, shared_data: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text('{"id": 0, "completion": "#### 18"}\n{"id": 1, "completion": "3"}\n')
    args = _parser().parse_args(["evaluate", "--benchmark", "gsm8k", "--predictions",
                                 str(predictions)])
    with pytest.raises(InputError, match="1317 of 1319 gsm8k items have no prediction"):
        run_evaluate(args)
    args = _parser().parse_args(["evaluate", "--benchmark", "gsm8k", "--predictions",
                                 str(predictions), "--allow-missing"])
    run_evaluate(args)
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 1319 and printed["metrics"]["missing"] == 1317
    assert printed["score"] == pytest.approx(100 * 2 / 1319)  # item 1's gold is 3


def test_user_errors_are_selection_errors(tmp_path: Path) -> None:
    args = _parser().parse_args(["evaluate", "--benchmark", "demo", "--predictions",
                                 str(tmp_path / "absent.jsonl")])
    with pytest.raises(SelectionError, match="predictions file not found"):
        run_evaluate(args)
    args = _parser().parse_args(["evaluate", "--benchmark", "gsm8k", "--predictions",
                                 str(tmp_path / "p.jsonl"), "--data", str(tmp_path / "x.jsonl")])
    with pytest.raises(SelectionError, match="data file or folder not found"):
        run_evaluate(args)


def test_unknown_benchmark_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate", "--benchmark", "gsm9k", "--predictions", "p.jsonl"])
    assert "invalid choice: 'gsm9k'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["humaneval", "mbpp", "gsm8k", "gsm-plus", "math", "bbh",
                                  "mmlu", "ifeval", "demo"])
def test_out_file_has_a_verdict_per_item(name: str, tmp_path: Path, shared_data: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Anyone can diff our verdicts against their harness: `per_item` rows with `id` and a
    boolean `correct`, for every item."""
    from selection_core.evaluate import get_benchmark

    benchmark = get_benchmark(name)
    items = benchmark.load(limit=5)
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("".join(
        json.dumps({benchmark.id_field: item.id, "completion": item.gold_response or "x"}) + "\n"
        for item in items))
    out = tmp_path / "out.json"
    run_evaluate(_parser().parse_args(["evaluate", "--benchmark", name, "--predictions",
                                       str(predictions), "--out", str(out),
                                       "--allow-missing"]))
    saved = json.loads(out.read_text())
    assert len(saved["per_item"]) == saved["n"] == json.loads(capsys.readouterr().out)["n"]
    assert all(isinstance(row["id"], str) and isinstance(row["correct"], bool)
               for row in saved["per_item"])
    given = {item.id for item in items}
    assert {row["id"] for row in saved["per_item"] if "missing" not in row} == given
