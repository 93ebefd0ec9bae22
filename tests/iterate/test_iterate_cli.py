"""`python -m selection_core iterate` end to end with the tiny LM: contract files and resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from selection_core.cli import main

REPO = Path(__file__).resolve().parents[2]
ITERATE = ["--k", "4", "--budget", "24", "--rounds", "2", "--model", "tiny-random-llama",
           "--scorer", "perplexity", "--eval-per-round", "8", "--max-new-tokens", "8",
           "--max-length", "128", "--seed", "0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("iterate-cli")
    data = root / "demo.jsonl"
    assert main(["demo", "--out", str(data), "--n", "120", "--seed", "2"]) == 0
    assert main(["embed", "--data", str(data), "--run", str(root / "run")]) == 0
    return root / "run"


def test_iterate_writes_the_selection_and_rounds_csv(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "selected.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "selection_core", "iterate", "--run",
                             str(run_dir), *ITERATE, "--out", str(out)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24 == len({r["id"] for r in rows})
    assert {"id", "prompt", "response", "cluster", "quality", "round"} <= set(rows[0])
    rounds = pd.read_csv(run_dir / "rounds.csv")
    assert rounds.columns.tolist() == ["round", "cluster", "weight", "mean_score", "n_selected"]
    assert len(rounds) == 2 * 4
    assert rounds.groupby("round")["n_selected"].sum().tolist() == [12, 12]
    assert rounds["mean_score"].notna().any()
    assert "round 2:" in result.stdout and "final weights" in result.stdout

    # a rerun finds both rounds done and writes the same selection without training again
    again = tmp_path / "again.jsonl"
    assert main(["iterate", "--run", str(run_dir), *ITERATE, "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()


def test_iterate_errors_are_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.jsonl")
    assert main(["iterate", "--run", str(run_dir), "--k", "4", "--budget", "1", "--rounds", "3",
                 "--out", out]) == 2
    assert "budget 1 is smaller than the 3 rounds" in capsys.readouterr().err
    assert main(["iterate", "--run", str(run_dir), "--k", "4", "--budget", "10",
                 "--scorer", "reward", "--out", out]) == 2
    assert "reward model" in capsys.readouterr().err
    assert main(["iterate", "--run", str(run_dir), "--k", "999", "--budget", "10",
                 "--out", out]) == 2
    assert "--k must be between" in capsys.readouterr().err
