"""Issue 25 in the app: the pages' widgets show the configs' declarations (§2), and a selection
method registered in one place (`select.registry`) reaches the CLI, the API, the Selection page,
the rationale and the result tables with no other file touched (§3)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.frontends import workspace
from selection_core.api import KMQSelector
from selection_core.cli import main
from selection_core.spine.config import IterativeConfig, SelectionConfig, widget
from selection_core.experiment.results import benchmark_table, display_frame
from selection_core.select import registry
from selection_core.select.kmq import select_static
from selection_core.select.rationale import static_rationale

DEMO_N = 400
SWEPT_K = (4, 6)  # conftest's prepared_workspace
TOY = "toy-first"


def test_the_pages_widgets_show_the_declared_defaults_bounds_and_choices(
        prepared_workspace: Path, open_page) -> None:
    selection, iterative = open_page("selection"), open_page("iterative")
    boxes = {**{f"selection:{b.label}": b for b in selection.selectbox},
             **{f"iterative:{b.label}": b for b in iterative.selectbox}}
    numbers = {**{f"selection:{n.label}": n for n in selection.number_input},
               **{f"iterative:{n.label}": n for n in iterative.number_input}}
    cases = {  # page widget: (config, field, whether it starts at the declared default)
        "selection:Method": (SelectionConfig, "method", True),
        "selection:Quality scorer": (SelectionConfig, "scorer", True),
        "iterative:Scorer": (IterativeConfig, "scorer", True),
        "selection:Seed": (SelectionConfig, "sample_seed", True),
        "selection:Temperature τ (kMQ)": (SelectionConfig, "sample_tau", True),
        "iterative:Rounds": (IterativeConfig, "rounds", True),
        "iterative:Generations scored per round": (IterativeConfig, "eval_per_round", True),
        "iterative:Weight temperature τ": (IterativeConfig, "weight_tau", True),
        "iterative:k (clusters)": (IterativeConfig, "k", False),  # starts at the map's k
        # budgets start at min(300, the pool's rows): only their bounds are declared
        "selection:Budget (rows)": (SelectionConfig, "budget", False),
        "iterative:Budget (rows in all)": (IterativeConfig, "budget", False),
    }
    for label, (config_type, name, starts_at_default) in cases.items():
        declared = widget(config_type, name)
        if label in boxes:
            assert tuple(boxes[label].options) == declared.choices, label
            assert boxes[label].value == declared.default, label
            continue
        shown = numbers[label]
        if starts_at_default:
            assert shown.value == declared.default, label
        assert shown.min == declared.min_value, label  # positive ones: POSITIVE_WIDGET_MIN


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> registry.Method:
    """A method registered by this test only: the first `budget` rows of the pool."""
    toy = registry.Method(
        TOY, "the pool's first rows (a test's toy method)", order=45,
        select=lambda config, labels, quality, distances: np.arange(config.budget))
    monkeypatch.setitem(registry.METHODS, TOY, toy)
    return toy


def test_a_registered_method_is_everywhere_with_no_other_file_touched(
        prepared_workspace: Path, toy_method: registry.Method, tmp_path: Path, open_page,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the CLI: `select --help` lists it and `select --method` runs it
    assert main(["select", "--help"]) == 0
    assert TOY in "".join(capsys.readouterr().out.split())
    run = str(workspace.demo_run().root)
    out = tmp_path / "toy.jsonl"
    assert main(["select", "--run", run, "--method", TOY, "--k", "4", "--budget", "25",
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 25
    # the API
    X = np.repeat(np.eye(3), 10, axis=0) + 0.01 * np.arange(30)[:, None]
    assert KMQSelector(k=3, budget=5, method=TOY).fit(X).selected_.tolist() == [0, 1, 2, 3, 4]
    assert KMQSelector.methods()[TOY] == toy_method.description
    # the rationale: each row's why names the method and its exact probability
    config = SelectionConfig(method=TOY, budget=3, k=2)
    labels, quality = np.array([0, 0, 1, 1, 1]), np.arange(5.0)
    chosen = select_static(config, labels, quality, np.zeros(5))
    why = static_rationale(config, labels, quality, np.zeros(5), chosen)
    assert chosen.tolist() == [0, 1, 2] and why["p_select"].tolist() == [1.0, 1.0, 1.0]
    assert all(toy_method.description in text for text in why["why"])
    # the Selection page: offered, run, listed
    at = open_page("selection")
    assert TOY in at.selectbox[0].options
    at.selectbox[0].set_value(TOY)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["selection"].iloc[0].startswith(f"{TOY} · k=")
    # a results table: in its registered place, between quality-top and kmq
    results = pd.DataFrame([
        {"run": "r", "model": "m", "method": method, "budget": 100, "benchmark": "mmlu",
         "group": "", "score": score, "n": 10, "metrics": {}}
        for method, score in (("kmq", 40.0), (TOY, 35.0), ("random", 30.0),
                              ("quality-top", 33.0))])
    shown = list(display_frame(benchmark_table(results))["method"])
    assert shown[:4] == ["random", "quality-top", TOY, "kmq"]
