"""No stale results: every cached step of an experiment is keyed by its config and its inputs'
fingerprints. After each kind of change a rerun recomputes exactly the steps it affects; selections
that differ only in k-means seed or scorer model never share a file.

Training, model loading and generation are replaced by fast stand-ins (the real ones are covered
by the end-to-end test); the pool, embeddings, clustering, quality scores, selections, iterative
rounds, benchmark items and every key are real.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selection_core.experiment import plan as experiment
from selection_core.iterative import loop as iterate
from selection_core.spine import runner as stage_runner
from selection_core.spine.config import ScorerConfig, SelectionConfig
from selection_core.evaluate import runner
from selection_core.experiment.plan import (SELECTION_INPUTS, ExperimentRunner,
                                            load_experiment_config, load_results)
from selection_core.select.kmq import select_static
from selection_core.spine.store import RunStore
from selection_core.train import lora

CONFIG = """
name = "cache"
model = "tiny-random-llama"
seed = 0

[pool]
demo_n = {demo_n}
demo_seed = {demo_seed}
k = 3
kmeans_seed = {kmeans_seed}

[selection]
methods = ["random", "quality-top", "kmq", "kmeans-closest", "iterative-kmq"]
budgets = [12]
scorer = "{scorer}"
{scorer_model}
tau = {tau}

[iterative]
rounds = 2
eval_per_round = 4
max_new_tokens = 4

[train]
r = 4
alpha = 8
grad_accumulation = 1
max_steps = 1
learning_rate = {learning_rate}

[eval]
benchmarks = ["demo", "gsm8k"]
protocol = "{protocol}"
eval_limit = 2
"""
BASELINE = {"demo_n": 120, "demo_seed": 0, "kmeans_seed": 0, "scorer": "heuristic",
            "scorer_model": "", "tau": 1.0, "learning_rate": 0.0002, "protocol": "cpu-demo"}
TRAINED = ("random-b12-s0", "random-b12-s1", "quality-top-b12", "kmq-b12", "kmeans-closest-b12",
           "iterative-kmq-b12")
BENCHMARKS = ("demo", "gsm8k")


class FakeTrainer:
    """Writes an adapter folder at once."""

    def __init__(self, model: str, config: Any) -> None:
        self.config = config

    def fit(self, prompts: list[str], responses: list[str], out_dir: Path,
            progress: Any = None, init_adapter: Any = None) -> FakeTrainer:
        self.adapter_dir_ = Path(out_dir) / "adapter"
        self.adapter_dir_.mkdir(parents=True, exist_ok=True)
        (self.adapter_dir_ / "adapter_config.json").write_text("{}")
        self.history_ = [{"loss": 1.0}]
        return self


class FakeRoundModel(iterate.LoRARoundModel):
    """Iterative kMQ's model without training: echoes prompts, scores by length."""

    def train(self, prompts: Any, responses: Any, out_dir: Path, previous: Any,
              seed: int) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def generate(self, prompts: Any) -> list[str]:
        return [prompt[:12] for prompt in prompts]

    def response_log_likelihood(self, prompts: Any, responses: Any) -> np.ndarray:
        return -np.array([len(response) % 7 + 1.0 for response in responses])

    def truncate(self, texts: Any) -> list[str]:  # gold cut to the generation cap (issue 10)
        return list(texts)


def fake_run_benchmark(benchmark: Any, items: list[Any], *args: Any, **kwargs: Any
                       ) -> tuple[Any, dict[str, str]]:
    rows = [{"id": item.id, "correct": False, "strict": False} for item in items]
    return benchmark.summarise(items, rows), {item.id: "" for item in items}


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(lora, "LoRATrainer", FakeTrainer)
    monkeypatch.setattr(iterate, "LoRARoundModel", FakeRoundModel)
    monkeypatch.setattr(runner, "run_benchmark", fake_run_benchmark)
    monkeypatch.setattr(experiment.ExperimentRunner, "_load_model", lambda self, adapter: (
        None, None))

    def run_with(**changes: Any) -> set[tuple[str, ...]]:
        values = {**BASELINE, **changes}
        path = tmp_path / "experiment.toml"
        path.write_text(CONFIG.format(**values))
        runner_ = ExperimentRunner(load_experiment_config(path), tmp_path / "run",
                                   log=lambda _: None)
        runner_.run()
        return {(step["step"], step["unit"], *([step["benchmark"]] if step["benchmark"] else []))
                for step in runner_.steps_ if step["computed"]}

    return run_with


def _round_stamps(run: Path, folder: Path | None = None) -> set[tuple[str, int, int]]:
    """(path, inode, modification time) of the stored iterative rounds."""
    paths = folder.glob("round-*") if folder else run.glob("stages/iterative/*/round-*")
    return {(str(path), path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}


def trained(*units: str) -> set[tuple[str, ...]]:
    """Selection, adapter and results of each unit."""
    return {(step, unit) for unit in units for step in ("selection", "adapter")} | results(*units)


def retrained(*units: str) -> set[tuple[str, ...]]:
    """Adapter and results of each unit (its selection reused)."""
    return {("adapter", unit) for unit in units} | results(*units)


def results(*units: str, benchmarks: tuple[str, ...] = BENCHMARKS) -> set[tuple[str, ...]]:
    return {("result", unit, benchmark) for unit in units for benchmark in benchmarks}


def test_a_rerun_recomputes_exactly_what_a_change_affects(run, tmp_path: Path) -> None:
    assert run() == {("pool", "pool")} | trained(*TRAINED) | results("base")
    assert run() == set()  # nothing changed: everything reused
    assert run(tau=0.5) == trained("kmq-b12", "iterative-kmq-b12")
    assert run(tau=0.5, scorer="perplexity", scorer_model='scorer_model = "tiny-random-llama"') \
        == trained("quality-top-b12", "kmq-b12", "iterative-kmq-b12")
    assert run(learning_rate=0.001) == trained("iterative-kmq-b12") | retrained(
        "random-b12-s0", "random-b12-s1", "quality-top-b12", "kmq-b12", "kmeans-closest-b12")
    kmq_before = set((tmp_path / "run" / "selections").glob("kmq-b12-*.jsonl"))
    rounds_before = _round_stamps(tmp_path / "run")
    assert run(learning_rate=0.001, kmeans_seed=1) == trained(
        "kmq-b12", "kmeans-closest-b12", "iterative-kmq-b12")
    kmq_after = set((tmp_path / "run" / "selections").glob("kmq-b12-*.jsonl"))
    assert kmq_before < kmq_after  # the k-means seed 0 selection is still there, untouched
    # iterative kMQ's rounds are the runner's stage, keyed with the k-means config: the rounds
    # drawn on the old clustering were not resumed but computed again, under a new key
    folder = stage_runner.latest(RunStore(tmp_path / "run"), iterate.ITERATIVE)
    rounds = _round_stamps(tmp_path / "run", folder)
    assert len(rounds) == 2 and not rounds & rounds_before
    assert run(demo_seed=1) == {("pool", "pool")} | trained(*TRAINED)  # base results reused
    assert run(demo_seed=1, protocol="papers") == results("base", *TRAINED, benchmarks=("gsm8k",))
    assert run(demo_seed=1) == set()  # back to an earlier config: all of it is still there
    shown = load_results([tmp_path / "run"])
    assert len(shown) == 14 and set(shown["protocol"]) == {"cpu-demo"}  # the current config's
    assert sorted(shown["seed"].dropna().unique()) == [0, 1]


def test_selection_inputs_list_everything_each_method_reads() -> None:
    """A method's cached selection ignores the inputs it does not read: check against the
    selection code that changing them really leaves the selection unchanged."""
    rng = np.random.default_rng(0)
    labels, quality, distances = rng.integers(0, 4, 60), rng.normal(size=60), rng.random(60)
    other_labels, other_quality = rng.integers(0, 4, 60), rng.normal(size=60)

    def rows(method: str, **change: Any) -> list[int]:
        config = SelectionConfig(method=method, budget=10, k=4, tau=change.get("tau", 1.0),
                                 seed=change.get("seed", 0))
        return select_static(config, change.get("labels", labels),
                             change.get("quality", quality), distances).tolist()

    changes = {"clusters": {"labels": other_labels}, "scorer": {"quality": other_quality},
               "tau": {"tau": 0.1}, "seed": {"seed": 5}}
    for method, uses in SELECTION_INPUTS.items():
        if method == experiment.ITERATIVE_METHOD:
            continue
        for name, change in changes.items():
            same = rows(method) == rows(method, **change)
            assert same is (name not in uses), (method, name)


def test_keys_separate_kmeans_seeds_and_scorer_models(tmp_path: Path) -> None:
    base = experiment.Inputs(pool="p", embedding="e", kmeans=experiment.KMeansConfig(k=3),
                             model="m", n_rows=100)
    unit = experiment.Unit("kmq", 10)
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\nmodel = "m"\n[selection]\nscorer = "perplexity"\n'
                    'scorer_model = "a"\n')
    first = ExperimentRunner(load_experiment_config(path), tmp_path / "r", log=lambda _: None)
    path.write_text(path.read_text().replace('"a"', '"b"'))
    second = ExperimentRunner(load_experiment_config(path), tmp_path / "r", log=lambda _: None)
    assert first._scorer() == ScorerConfig(name="perplexity", model="a")
    reseeded = experiment.Inputs(**{**base.__dict__, "kmeans": experiment.KMeansConfig(k=3,
                                                                                     seed=1)})
    keys = {first.selection_key(unit, base), second.selection_key(unit, base),
            first.selection_key(unit, reseeded)}
    assert len(keys) == 3
