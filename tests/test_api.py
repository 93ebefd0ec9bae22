"""The public API (selection_core.api): the same rows as the CLI for the same inputs and seeds,
clear errors for bad shapes, and every docstring example runs."""
from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import selection_core
from selection_core import api
from selection_core.select import stages as pipeline
from selection_core.cli import main
from selection_core.spine.config import ScorerConfig
from selection_core.spine.errors import ConfigError
from selection_core.spine.store import RunStore

K, BUDGET = 6, 30


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api")
    data = root / "demo.jsonl"
    assert main(["demo", "--out", str(data), "--n", "240", "--seed", "2"]) == 0
    run = root / "run"
    assert main(["embed", "--data", str(data), "--run", str(run)]) == 0
    return run


def _cli_ids(run: Path, out: Path, *args: str) -> list[str]:
    assert main(["select", "--run", str(run), "--k", str(K), "--budget", str(BUDGET),
                 "--out", str(out), *args]) == 0
    return sorted(json.loads(line)["id"] for line in out.read_text().splitlines())


@pytest.mark.parametrize("method, extra", [
    ("kmq", ["--tau", "0.5", "--seed", "3"]), ("kmq", ["--top"]),
    ("kmeans-random", ["--seed", "1"]), ("kmeans-closest", []), ("random", ["--seed", "4"]),
    ("quality-top", [])])
def test_kmq_selector_selects_the_cli_rows(embedded_run: Path, tmp_path: Path, method: str,
                                           extra: list[str]) -> None:
    cli = _cli_ids(embedded_run, tmp_path / "cli.jsonl", "--method", method, *extra)
    store = RunStore(embedded_run)
    pool = pipeline.load_run_pool(store)
    X = pd.DataFrame(pipeline.load_embeddings(store))  # pandas is accepted as well as numpy
    quality = pipeline.quality(store, ScorerConfig())
    options = {"tau": 0.5, "seed": 3} if "--tau" in extra else {}
    options |= {"top": True} if "--top" in extra else {}
    options |= {"seed": int(extra[1])} if extra[:1] == ["--seed"] else {}
    selector = api.KMQSelector(k=K, budget=BUDGET, method=method, **options).fit(
        X, quality=pd.Series(quality))
    assert sorted(pool["id"].iloc[selector.selected_]) == cli
    assert selector.cluster_budgets_.sum() == BUDGET and len(selector.labels_) == len(pool)


def test_embed_and_sweep_equal_the_cli(embedded_run: Path) -> None:
    store = RunStore(embedded_run)
    pool = pipeline.load_run_pool(store)
    stored = pipeline.load_embeddings(store)
    np.testing.assert_allclose(api.embed(pool["prompt"].tolist()), stored, atol=1e-5)
    assert main(["sweep", "--run", str(embedded_run), "--k", "3,5,8"]) == 0
    table = api.sweep_k(stored, [3, 5, 8])
    cli = pd.read_csv(embedded_run / "sweep.csv")
    columns = ["k", "inertia", "silhouette", "simplified_silhouette"]
    pd.testing.assert_frame_equal(table[columns].reset_index(drop=True), cli[columns],
                                  check_dtype=False, rtol=1e-6)
    recommended = json.loads((embedded_run / "sweep.json").read_text())["recommended_k"]
    assert table.attrs["recommended_k"] == recommended


def test_bids_selector_selects_the_cli_rows_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    A = rng.normal(size=(80, 9))
    tasks = ["math"] * 3 + ["code"] * 4 + ["chat"] * 2
    np.save(tmp_path / "A.npy", A)
    (tmp_path / "tasks.txt").write_text("\n".join(tasks) + "\n")
    for method in ("bids", "task-max", "instance-max", "sum", "random"):
        out = tmp_path / f"{method}.txt"
        assert main(["influence", "select", "--matrix", str(tmp_path / "A.npy"), "--val-tasks",
                     str(tmp_path / "tasks.txt"), "--method", method, "--budget", "12",
                     "--seed", "7", "--out", str(out)]) == 0
        cli = [int(line) for line in out.read_text().split()]
        selected = api.BIDSSelector(budget=12, method=method, seed=7).fit(A, tasks).selected_
        assert selected.tolist() == cli, method


def test_bad_shapes_get_one_clear_error() -> None:
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ConfigError, match=r"quality must hold one value per row \(20\)"):
        api.KMQSelector(k=2, budget=5).fit(X, quality=np.ones(19))
    with pytest.raises(ConfigError, match="2-D matrix"):
        api.KMQSelector(k=2, budget=5).fit(np.ones(20))
    with pytest.raises(ConfigError, match="quality-top needs quality"):
        api.KMQSelector(k=2, budget=5, method="quality-top").fit(X)
    with pytest.raises(ConfigError, match=r"budget 50 must be between 1 and the number of rows"):
        api.KMQSelector(k=2, budget=50).fit(X)
    with pytest.raises(ConfigError, match=r"one task per column of A \(3\)"):
        api.BIDSSelector(budget=2).fit(X, tasks=["a", "b"])
    with pytest.raises(ConfigError, match="unknown method 'best'"):
        api.BIDSSelector(budget=2, method="best").fit(X, tasks=["a", "b", "c"])


def test_the_public_names_and_their_defaults() -> None:
    assert set(selection_core.__all__) <= set(dir(selection_core))
    assert selection_core.KMQSelector is api.KMQSelector
    assert selection_core.figures.cluster_map  # the figure builders
    defaults = api.KMQSelector().selection_config()
    assert defaults == type(defaults)(k=defaults.k)  # the selector's defaults are the config's


def test_every_docstring_example_runs() -> None:
    for module in (selection_core, api):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0
    assert doctest.testmod(api).attempted >= 5


class _FakeRoundModel:
    """A deterministic stand-in for a user's trainer: answers a prompt with its gold response
    when a hash of the prompt falls below a competence that grows with the training set."""

    name = "api-fake-model"

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold, self.competence = gold, 0.0

    @staticmethod
    def _unit(text: str) -> float:
        import hashlib

        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8

    def train(self, prompts, responses, out_dir: Path, previous, seed: int) -> None:
        self.competence = min(0.9, len(prompts) / 60)
        out_dir.mkdir(parents=True, exist_ok=True)

    def generate(self, prompts):
        return [self.gold[p] if self._unit(p) < self.competence else "I do not know."
                for p in prompts]

    def truncate(self, texts):
        return list(texts)

    def response_log_likelihood(self, prompts, responses):
        return np.array([-1.0 - self._unit(p + r) for p, r in zip(prompts, responses)])


def test_iterative_kmq_over_arrays_is_the_cli_loop(tmp_path: Path) -> None:
    from selection_core.spine.config import IterativeConfig, KMeansConfig
    from selection_core.iterative.loop import RefinementLoop as Loop

    data = tmp_path / "demo.jsonl"
    assert main(["demo", "--out", str(data), "--n", "150", "--seed", "4"]) == 0
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    X = np.random.default_rng(0).normal(size=(len(rows), 8)).astype(np.float32)
    gold = dict(zip(prompts, responses))
    selector = api.IterativeKMQ(k=4, budget=30, model=_FakeRoundModel(gold), rounds=2,
                                scorer="heuristic", eval_per_round=8, seed=3, kmeans_seed=1,
                                work_dir=tmp_path / "api").fit(X, prompts, responses)
    # The same inputs through the CLI's run directory and the library loop it runs.
    np.save(tmp_path / "X.npy", X)
    run = tmp_path / "run"
    assert main(["embed", "--data", str(data), "--run", str(run), "--vectors",
                 str(tmp_path / "X.npy")]) == 0
    config = IterativeConfig(k=4, budget=30, rounds=2, scorer="heuristic", eval_per_round=8,
                             seed=3, model=_FakeRoundModel.name)
    loop = Loop(config, _FakeRoundModel(gold)).fit(RunStore(run), KMeansConfig(k=4, seed=1))
    assert selector.selected_.tolist() == loop.selected_.tolist() and len(selector.selected_) == 30
    np.testing.assert_array_equal(selector.weights_, loop.weights_)
    assert sorted(selector.rounds_["round"].unique()) == [1, 2]
    again = api.IterativeKMQ(k=4, budget=30, model=_FakeRoundModel(gold), rounds=2,
                             scorer="heuristic", eval_per_round=8, seed=3, kmeans_seed=1,
                             work_dir=tmp_path / "api").fit(X, prompts, responses)
    assert again.selected_.tolist() == selector.selected_.tolist()  # resumed: nothing redrawn
    with pytest.raises(ConfigError, match="one entry per row; got 150, 150 and 149"):
        api.IterativeKMQ(k=4, budget=30, model=_FakeRoundModel(gold)).fit(
            X, prompts, responses[:-1])
