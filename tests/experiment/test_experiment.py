"""The experiment runner (select → train → evaluate → results) and the results tables."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.cli import main
from selection_core.spine.errors import InputError
from selection_core.experiment.plan import PAPER_LORA, load_experiment_config, load_results
from selection_core.experiment.results import (ALL_ITEMS, balance_figure, benchmark_table,
                                               delta_forest_figure, display_frame, split_parts,
                                               to_html, to_latex, to_markdown)

REPO = Path(__file__).resolve().parents[2]

TINY = """
name = "tiny-test"
model = "tiny-random-llama"
seed = 0

[pool]
demo_n = 400
k = 6

[selection]
methods = ["random", "kmq", "iterative-kmq"]
budgets = [48]

[iterative]
rounds = 2
eval_per_round = 6
max_new_tokens = 6

[train]
r = 8
alpha = 16
epochs = 1
grad_accumulation = 1
batch_size = 16
max_steps = 2
max_length = 128

[eval]
benchmarks = ["demo", "gsm8k"]
eval_limit = 6
max_new_tokens = 8
include_base = true
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, field, message", [
    ('\n[selection]\nmethods = ["best"]\n', "selection.methods", "unknown method 'best'"),
    ("\n[train]\nlearning_rat = 0.1\n", "train.learning_rat", "unknown key in [train]"),
    ("\n[eval]\nbenchmarks = [\"squad\"]\n", "eval.benchmarks", "unknown benchmark 'squad'"),
    ("\n[nope]\nx = 1\n", "nope", "unknown section"),
    ("\n[iterative]\nround = 2\n", "iterative.round", "unknown key in [iterative]"),
    # values are checked by the configs' declarations (the bounds the CLI flags apply)
    ("\n[train]\nlearning_rate = -0.1\n", "train.learning_rate", "must be positive"),
    ("\n[train]\nepochs = 0\n", "train.epochs", "must be at least 1"),
    ("\n[train]\nlr_scheduler = \"step\"\n", "train.lr_scheduler", "must be one of linear"),
    ("\n[selection]\ntau = 0\n", "selection.sample_tau", "must be positive"),
    ("\n[iterative]\nweight_tau = nan\n", "iterative.weight_tau", "must be a finite number"),
    ("\n[iterative]\nrounds = 0\n", "iterative.rounds", "must be at least 1"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, change: str, field: str,
                                         message: str) -> None:
    path = write_config(tmp_path, 'name = "x"\nmodel = "m"\n' + change)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load_experiment_config(path)
    assert info.value.path == str(path) and info.value.field == field


def test_shipped_configs_parse() -> None:
    for path in sorted((REPO / "configs").glob("*.toml")):
        config = load_experiment_config(path)
        assert config.benchmarks and config.methods, path
        if path.name.startswith("gpu_"):  # the papers' settings, and which paper they follow
            assert path.read_text().startswith("# Follows: BIDS (Dai et al. 2025, A.2)")
            assert config.protocol == "papers" and config.random_seeds == 2
            assert dataclasses.replace(config.lora, dtype=None) == PAPER_LORA
        else:  # CPU demos use the named fast protocol, never silently the papers' defaults
            assert config.protocol == "cpu-demo"


def test_defaults_are_the_papers(tmp_path: Path) -> None:
    config = load_experiment_config(write_config(tmp_path, 'name = "x"\nmodel = "m"\n'))
    assert config.protocol == "papers" and config.random_seeds == 2
    lora = config.lora
    assert (lora.r, lora.alpha, lora.dropout, lora.epochs) == (128, 512, 0.1, 2)
    assert lora.batch_size * lora.grad_accumulation == 128
    assert lora.lr_scheduler == "cosine" and lora.warmup_ratio > 0 and lora.target_modules is None
    changed = load_experiment_config(write_config(tmp_path, 'name = "x"\nmodel = "m"\n'
                                                            '[train]\nepochs = 4\n'))
    assert changed.lora == dataclasses.replace(PAPER_LORA, epochs=4)  # the rest stays BIDS's


@pytest.mark.slow
def test_tiny_experiment_end_to_end_through_the_cli(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    config = write_config(tmp_path, TINY)
    assert main(["experiment", "--config", str(config), "--run", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "| budget | method |" in printed and "kmq" in printed
    assert "*Protocol: papers (max_new_tokens=8) — BIDS A.2" in printed
    assert "random: mean of 2 seeds" in printed
    assert "The pool was not cleaned: no rows excluded" in printed  # the table says so
    table = pd.read_csv(run / "results.csv")
    assert set(table["method"]) == {"base", "random", "kmq", "iterative-kmq"}
    assert sorted(table.loc[table["method"] == "random", "seed"].unique()) == [0, 1]
    assert set(table["benchmark"]) == {"demo", "gsm8k"}
    assert table["score"].between(0, 100).all()
    assert (table["n"] == 6).all()
    [selection] = (run / "selections").glob("kmq-b48-*.jsonl")
    selected = [json.loads(line) for line in selection.read_text().splitlines()]
    assert len(selected) == 48
    [predictions] = (run / "results" / "kmq-b48").glob("gsm8k-*.predictions.jsonl")
    assert len(predictions.read_text().splitlines()) == 6
    [adapter] = (run / "models").glob("kmq-b48-*/adapter/adapter_model.safetensors")
    stamp = adapter.stat().st_mtime_ns
    assert main(["experiment", "--config", str(config), "--run", str(run)]) == 0  # all cached
    assert adapter.stat().st_mtime_ns == stamp
    assert not any(step["computed"] for step in json.loads((run / "steps.json").read_text()))
    results = load_results([run])
    assert len(results) == 10 and "metrics" in results.columns
    skills = benchmark_table(split_parts(results, "demo", "skill"), items=ALL_ITEMS)
    assert list(skills.scores.index.get_level_values("method")) == ["base", "random", "kmq",
                                                                     "iterative-kmq"]
    parts = [b for _, b in skills.scores.columns if b.startswith("demo:")]
    assert parts and sum(skills.counts[b] for b in parts) == results["n"].iloc[0]
    [iterative] = (run / "selections").glob("iterative-kmq-b48-*.jsonl")
    rows = [json.loads(line) for line in iterative.read_text().splitlines()]
    assert len(rows) == 48 and {r["round"] for r in rows} == {1, 2}

    bundle = tmp_path / "tiny-bundle"  # what the app ships: results, no models
    assert main(["export-experiment", "--run", str(run), "--to", str(bundle)]) == 0
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["wall_s"] > 0 and "export-experiment" in record["command"]
    assert not (bundle / "models").exists() and not (bundle / "selections").exists()
    exported = load_results([bundle])
    assert exported[["method", "budget", "score"]].equals(results[["method", "budget", "score"]])
    assert [r["id"] for r in exported["per_item"][0]] == [r["id"] for r in results["per_item"][0]]


def test_the_bundled_experiment_is_the_cpu_config_run_in_full() -> None:
    """The experiment the app ships (assets/demo/experiments) is `demo_smollm2_cpu.toml` as it
    stands, every planned result present on all 300 held-out items: a config changed without
    rerunning it fails here instead of showing stale numbers."""
    from selection_core.experiment.plan import BUNDLE_RECORD
    from selection_core.frontends.workspace import BUNDLED_EXPERIMENTS

    bundled = BUNDLED_EXPERIMENTS / "demo-smollm2-cpu"
    if not (bundled / "experiment.json").exists():
        pytest.skip("this checkout has no bundled experiment")
    config = load_experiment_config(REPO / "configs" / "demo_smollm2_cpu.toml")
    recorded = json.loads((bundled / "experiment.json").read_text())
    assert recorded == json.loads(json.dumps(dataclasses.asdict(config), default=str))
    record = json.loads((bundled / BUNDLE_RECORD).read_text())
    assert record["config"] == recorded and record["wall_s"] > 0
    plan = json.loads((bundled / "plan.json").read_text())["entries"]
    results = load_results([bundled])
    assert len(results) == len(plan) == 1 + 2 * (3 + 4)  # base; per budget 3 random seeds + 4
    assert (results["n"] == 300).all()
    assert all({"id", "correct", "skill"} <= set(rows[0]) for rows in results["per_item"])


def test_a_table_says_what_its_pool_was_cleaned_of() -> None:
    from selection_core.experiment.plan import cleaning_note

    assert cleaning_note(None) == "pool cleaning not recorded"
    note = cleaning_note({"benchmarks": ["gsm8k", "bbh"],
                          "text": "12 of 3000 pool rows excluded before selection: 12 exact"})
    assert note.startswith("pool decontaminated against gsm8k, bbh; 12 of 3000")
    results = fake_results().assign(pool_cleaning=note)
    assert "Pool decontaminated against gsm8k, bbh" in benchmark_table(results).caption
    assert "not decontaminated" in cleaning_note(
        {"benchmarks": [], "text": "3 of 10 pool rows excluded before selection (--keep "
                                   "contaminated: 1 flagged rows kept): 3 exact"})


def fake_results() -> pd.DataFrame:
    rows = []
    scores = {"random": (30, 40, 20), "kmq": (35, 38, 25), "quality-top": (25, 45, 10)}
    for budget in (100, 200):
        for method, values in scores.items():
            for bench, score in zip(("humaneval", "mmlu", "gsm8k"), values, strict=True):
                rows.append({"run": "r", "model": "m", "method": method, "budget": budget,
                             "benchmark": bench, "group": "", "score": score + budget / 100,
                             "n": 10, "metrics": {}})
    rows.append({"run": "r", "model": "m", "method": "base", "budget": None,
                 "benchmark": "mmlu", "group": "", "score": 33.0, "n": 10, "metrics": {}})
    return pd.DataFrame(rows)


def test_split_parts_gives_each_skill_its_own_column_interval_and_paired_delta() -> None:
    """Per skill: each part's score is its items' mean, the parts' item counts add up to the
    total, and Δ vs random is paired within the part (here kmq wins world_qa, ties the rest)."""
    rng = np.random.default_rng(0)
    ids = [(f"demo-eval-{skill}-{i:03d}", skill) for skill in ("python", "world_qa")
           for i in range(40)]
    random_right = rng.random(len(ids)) < 0.3
    rows = []
    for method, right in (("random", random_right),
                          ("kmq", random_right | np.array([s == "world_qa" for _, s in ids]))):
        per_item = [{"id": i, "correct": bool(r), "skill": s} for (i, s), r in zip(ids, right)]
        rows.append({"run": "r", "model": "m", "method": method, "budget": 100, "seed": 0,
                     "benchmark": "demo", "group": "demo", "score": 100 * right.mean(),
                     "n": len(ids), "metrics": {}, "per_item": per_item})
    parts = split_parts(pd.DataFrame(rows), "demo", "skill")
    assert sorted(set(parts["benchmark"])) == ["demo:python", "demo:world_qa"]
    kmq_world = parts[(parts["method"] == "kmq") & (parts["benchmark"] == "demo:world_qa")]
    assert kmq_world["score"].item() == 100.0 and kmq_world["n"].item() == 40
    table = benchmark_table(parts, items=ALL_ITEMS)
    assert table.counts == {"demo:python": 40, "demo:world_qa": 40}
    python_delta = table.vs_random[(100, "kmq", "demo:python")]
    world_delta = table.vs_random[(100, "kmq", "demo:world_qa")]
    assert python_delta.value == 0 and python_delta.low == python_delta.high == 0
    assert world_delta.value == pytest.approx(100 * (1 - random_right[40:].mean()))
    assert world_delta.excludes_zero
    with pytest.raises(InputError, match="no `skill` field"):
        split_parts(pd.DataFrame([{**rows[0], "per_item": [{"id": "x", "correct": True}]}]),
                    "demo", "skill")


def test_benchmark_table_layout_macro_delta_and_bold() -> None:
    table = benchmark_table(fake_results())
    columns = list(table.scores.columns)
    assert columns[:3] == [("coding", "humaneval"), ("knowledge", "mmlu"), ("math", "gsm8k")]
    assert columns[-2:] == [("", "macro avg"), ("", "Δ vs random")]
    scores = table.scores
    assert scores.loc[(100, "kmq"), ("", "macro avg")] == pytest.approx((36 + 39 + 26) / 3)
    assert scores.loc[(100, "kmq"), ("", "Δ vs random")] == pytest.approx(
        (36 + 39 + 26) / 3 - (31 + 41 + 21) / 3)
    assert list(scores.index)[:4] == [(0, "base"), (100, "random"), (100, "quality-top"),
                                      (100, "kmq")]
    rows = list(scores.index)
    humaneval = columns.index(("coding", "humaneval"))
    assert (rows.index((100, "kmq")), humaneval) in table.best
    assert (rows.index((100, "random")), humaneval) not in table.best
    markdown = to_markdown(table)
    assert "**36.0**" in markdown and "| 100 | kmq |" in markdown
    latex = to_latex(table)
    assert r"\textbf{36.0}" in latex and r"\multicolumn{1}{c}{Coding}" in latex
    html = to_html(table)
    assert "<b>36.0</b>" in html and 'colspan="1"' in html
    assert table.flat().columns[2] == "coding / HumanEval"
    figure = balance_figure(fake_results(), budget=200)
    assert {t.name for t in figure.data} == {"base", "random", "kmq", "quality-top"}


def test_evaluate_cli_contract_through_python_m(shared_data: Path, tmp_path: Path) -> None:
    gold = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").read_text()
            .splitlines()]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "completion": row["answer"]}) + "\n"
                                   for i, row in enumerate(gold)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "selection_core", "evaluate", "--benchmark",
                             "gsm8k", "--predictions", str(predictions)], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["benchmark"] == "gsm8k" and summary["n"] == 1319 and summary["score"] == 100
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 99999, "completion": "1"}\n')
    result = subprocess.run([sys.executable, "-m", "selection_core", "evaluate", "--benchmark",
                             "gsm8k", "--predictions", str(bad)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=300)
    assert result.returncode == 2 and "99999" in result.stderr and "Traceback" not in \
        result.stderr


def test_tables_name_their_protocol_and_average_random_seeds() -> None:
    results = fake_results().assign(protocol="papers", seed=pd.NA)
    twin = results[results["method"] == "random"].assign(seed=1, score=lambda f: f["score"] + 10)
    results.loc[results["method"] == "random", "seed"] = 0
    table = benchmark_table(pd.concat([results, twin], ignore_index=True))
    assert table.scores.loc[(100, "random"), ("coding", "humaneval")] == pytest.approx(36.0)
    assert table.caption.startswith("Protocol: papers — BIDS A.2") and \
        "random: mean of 2 seeds" in table.caption
    for export in (to_markdown(table), to_latex(table), to_html(table)):
        assert "Protocol: papers" in export
    mixed = pd.concat([results, results.assign(protocol="cpu-demo")], ignore_index=True)
    with pytest.raises(ValueError, match="several evaluation protocols"):
        benchmark_table(mixed)
    assert "Protocol: cpu-demo — fast CPU demo, NOT the papers' protocol" in \
        to_markdown(benchmark_table(mixed, protocol="cpu-demo"))


def verdict_results() -> pd.DataFrame:
    """Two benchmarks with per-item verdicts: random over 2 seeds, kmq clearly better on GSM8K,
    quality-top a hair below kmq; GSM8K's items 0-9 were influence validation instances."""
    rng = np.random.default_rng(0)
    rates = {("random", 0): (0.30, 0.5), ("random", 1): (0.32, 0.5), ("kmq", None): (0.75, 0.5),
             ("quality-top", None): (0.72, 0.48)}
    rows = []
    tasks = [f"t{i % 3}" for i in range(60)]
    for (method, seed), (gsm, bbh) in rates.items():
        for bench, n, rate in (("gsm8k", 100, gsm), ("bbh", 60, bbh)):
            flags = rng.random(n) < rate
            per_item = [{"id": str(i), "correct": bool(f), **({"task": tasks[i]} if bench == "bbh"
                                                              else {})}
                        for i, f in enumerate(flags)]
            rows.append({"run": "r", "model": "m", "method": method, "budget": 100, "seed": seed,
                         "benchmark": bench, "group": "", "protocol": "papers",
                         "score": 100 * flags.mean(), "n": n, "metrics": {}, "per_item": per_item,
                         "validation_ids": [str(i) for i in range(10)] if bench == "gsm8k"
                         else []})
    return pd.DataFrame(rows)


def test_tables_carry_intervals_paired_deltas_and_score_held_out_items() -> None:
    results = verdict_results()
    table = benchmark_table(results)
    rows, columns = list(table.scores.index), [b for _, b in table.scores.columns]
    kmq, random_row, top = rows.index((100, "kmq")), rows.index((100, "random")), \
        rows.index((100, "quality-top"))
    gsm = columns.index("gsm8k")
    held_out = [row for row in results.itertuples() if row.method == "kmq"
                and row.benchmark == "gsm8k"][0].per_item[10:]
    assert table.counts == {"gsm8k": 90, "bbh": 60} and table.items == "held-out"
    assert table.scores.iloc[kmq, gsm] == pytest.approx(
        100 * np.mean([r["correct"] for r in held_out]))
    cell = table.intervals[(kmq, gsm)]
    assert cell.low < cell.value < cell.high and 3 < cell.stderr < 6
    delta = table.intervals[(kmq, columns.index("Δ vs random"))]
    assert delta.value == pytest.approx(table.scores.iloc[kmq][("", "macro avg")]
                                        - table.scores.iloc[random_row][("", "macro avg")])
    assert table.vs_random[(100, "kmq", "gsm8k")].excludes_zero
    assert (kmq, gsm) in table.best and (top, gsm) in table.best  # within noise of the best
    assert (random_row, gsm) not in table.best
    markdown = to_markdown(table)
    assert f"**{table.scores.iloc[kmq, gsm]:.1f} ± {cell.stderr:.1f}**" in markdown
    assert f"[{delta.low:+.1f}, {delta.high:+.1f}]" in markdown
    assert "GSM8K n=90" in markdown and "held-out items only" in markdown
    assert "GSM8K 10 left out" in markdown and "|  | items (n) | 60 | 90 | 150 |" in markdown
    assert "detectable Δ (80 % power)" in markdown and "standard error" in markdown
    assert r"$\pm$" in to_latex(table) and "± " in to_html(table)
    flat = table.flat()
    for name in ("gsm8k_stderr", "gsm8k_ci_low", "gsm8k_ci_high", "gsm8k_n",
                 "gsm8k_detectable", "macro_ci_low", "delta_ci_low", "delta_ci_high",
                 "delta_excludes_0"):
        assert name in flat.columns, name
    assert (flat["gsm8k_n"] == 90).all() and np.isfinite(flat["gsm8k_detectable"]).all()
    shown = display_frame(table)  # the HTML report's text table
    assert shown.iloc[kmq]["GSM8K"] == f"{table.scores.iloc[kmq, gsm]:.1f} ± {cell.stderr:.1f} ◆"
    assert list(shown["method"])[-2:] == ["items (n)", "detectable Δ (80 % power)"]
    everything = benchmark_table(results, items="all")
    assert everything.counts["gsm8k"] == 100 and "all test items" in everything.caption
    forest = delta_forest_figure(table, 100)
    assert {trace.name for trace in forest.data} == {"kmq", "quality-top"}
    labels = list(forest.layout.yaxis.ticktext)
    assert sorted(labels) == ["BBH", "GSM8K", "macro avg"] and labels[-1] == "macro avg"
    first, second = (list(trace.y) for trace in forest.data)  # side by side, never on top
    assert all(a < b < a + 1 for a, b in zip(first, second, strict=True))
    kmq_trace = next(trace for trace in forest.data if trace.name == "kmq")
    assert kmq_trace.x[labels.index("GSM8K")] == pytest.approx(
        table.vs_random[(100, "kmq", "gsm8k")].value)
    balance = balance_figure(results, 100, table=table)  # two benchmarks: bars, error bars
    bars = {trace.name: trace for trace in balance.data}
    assert set(bars) == {"random", "quality-top", "kmq"} and bars["kmq"].type == "bar"
    gsm_cell = table.intervals[(kmq, gsm)]
    assert bars["kmq"].error_y.array[list(bars["kmq"].x).index("GSM8K")] == pytest.approx(
        gsm_cell.high - gsm_cell.value)
    radar = balance_figure(fake_results(), 200)
    assert {trace.type for trace in radar.data} == {"scatterpolar"}  # three benchmarks
