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
ITERATE = ["--k", "6", "--budget", "24", "--rounds", "2", "--model", "tiny-random-llama",
           "--scorer", "perplexity", "--eval-per-round", "4", "--max-new-tokens", "8",
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
    assert rounds.columns.tolist() == ["round", "cluster", "weight", "mean_score", "n_selected",
                                       "weight_entropy"]
    assert len(rounds) == 2 * 6
    assert rounds.groupby("round")["n_selected"].sum().tolist() == [12, 12]
    # k = 6 > --eval-per-round 4: still every cluster that holds items is scored
    held = rounds.groupby("cluster")["n_selected"].cumsum() > 0
    assert rounds.loc[held, "mean_score"].notna().all()
    assert rounds.loc[rounds["round"] == 1, "weight_entropy"].eq(
        rounds["weight_entropy"].max()).all()
    assert "round 2:" in result.stdout and "weight entropy" in result.stdout
    assert "final weights" in result.stdout

    # a rerun finds both rounds done and writes the same selection without training again
    again = tmp_path / "again.jsonl"
    assert main(["iterate", "--run", str(run_dir), *ITERATE, "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()


def test_iterate_errors_are_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.jsonl")
    assert main(["iterate", "--run", str(run_dir), "--k", "6", "--budget", "1", "--rounds", "3",
                 "--out", out]) == 2
    assert "budget 1 is smaller than the 3 rounds" in capsys.readouterr().err
    assert main(["iterate", "--run", str(run_dir), "--k", "6", "--budget", "10",
                 "--scorer", "reward", "--out", out]) == 2
    assert "reward model" in capsys.readouterr().err
    assert main(["iterate", "--run", str(run_dir), "--k", "999", "--budget", "10",
                 "--out", out]) == 2
    assert "--k must be between" in capsys.readouterr().err


def test_iterate_defaults_are_declared_once() -> None:
    """The CLI, the page and the experiment TOML read the same declarations."""
    from selection_core.cli import build_parser
    from selection_core.spine.config import LoRAConfig
    from selection_core.experiment.plan import ExperimentConfig
    from selection_core.iterative.rounds import MAX_NEW_TOKENS, IterativeConfig

    args = build_parser().parse_args(["iterate", "--run", "r", "--k", "2", "--budget", "4",
                                      "--out", "o"])
    assert (args.eval_per_round, args.max_new_tokens, args.max_length, args.weight_tau, args.rounds) \
        == (IterativeConfig.eval_per_round, MAX_NEW_TOKENS, LoRAConfig.max_length,
            IterativeConfig.tau, IterativeConfig.rounds)
    experiment = ExperimentConfig(name="x", model="m")
    assert (experiment.iterative_eval_per_round, experiment.iterative_max_new_tokens) == \
        (IterativeConfig.eval_per_round, MAX_NEW_TOKENS)
    assert MAX_NEW_TOKENS == 512  # the reference implementation's cap


def test_the_round_seed_is_named_for_what_it_seeds_and_the_old_name_still_works() -> None:
    """`IterativeConfig.seed` → `round_seed` (issue 13: "seed" meant four things): the old
    keyword and attribute and the `--seed` flag keep working, with the same hash."""
    from selection_core.cli import build_parser
    from selection_core.spine.config import IterativeConfig

    old, new = IterativeConfig(k=2, budget=4, seed=3), IterativeConfig(k=2, budget=4,
                                                                      round_seed=3)
    assert old == new and old.seed == 3 and IterativeConfig.seed == 0
    assert "seed" not in new.hash_fields() and new.hash_fields()["round_seed"] == 3
    args = build_parser().parse_args(["iterate", "--run", "r", "--k", "2", "--budget", "4",
                                      "--out", "o", "--seed", "5"])
    assert args.round_seed == 5
