"""The iterative kMQ loop on the demo pool with a deterministic fake model: persistence, resume,
and whether the weights move toward the clusters the model is bad at."""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core import pipeline
from selection_core.config import KMeansConfig
from selection_core.iterate import ROUNDS_COLUMNS, IterativeKMQ, iterative_dir, load_generations, \
    load_history, rounds_table
from selection_core.select.iterative import IterativeConfig
from selection_core.select.static import kmq_select
from selection_core.store import RunStore

WEAK_SKILLS = ("python", "arithmetic")
UNSURE = "Not sure."


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


class SkillModel:
    """Knows the gold answer of a prompt with a probability that depends on its skill (weak on
    WEAK_SKILLS) and grows with how many items of that skill it was trained on; otherwise answers
    "Not sure.". Its state lives in the round folder, so a resumed run sees what it saw."""

    name = "fake-skill-model"

    def __init__(self, pool: pd.DataFrame, learn_per_item: float = 0.004) -> None:
        self.skill = dict(zip(pool["prompt"], pool["skill"], strict=True))
        self.gold = dict(zip(pool["prompt"], pool["response"], strict=True))
        self.learn_per_item = learn_per_item
        self.competence: dict[str, float] = {}

    def train(self, prompts: Sequence[str], responses: Sequence[str], out_dir: Path,
              previous: Path | None, seed: int) -> None:
        counts = pd.Series([self.skill[p] for p in prompts]).value_counts()
        self.competence = {skill: min(1.0, (0.1 if skill in WEAK_SKILLS else 0.95)
                                      + self.learn_per_item * counts.get(skill, 0))
                           for skill in set(self.skill.values())}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "state.json").write_text(json.dumps(self.competence))

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [self.gold[p] if _unit(p) < self.competence[self.skill[p]] else UNSURE
                for p in prompts]

    def response_log_likelihood(self, prompts: Sequence[str], responses: Sequence[str]
                                ) -> np.ndarray:
        return np.array([np.log(max(self.competence[self.skill[p]], 1e-3)) if r == self.gold[p]
                         else -0.1 for p, r in zip(prompts, responses, strict=True)])


class CrashingModel(SkillModel):
    """Dies while training round 2, like a killed job."""

    def train(self, prompts, responses, out_dir, previous, seed) -> None:
        if previous is not None:
            raise KeyboardInterrupt
        super().train(prompts, responses, out_dir, previous, seed)


CONFIG = IterativeConfig(k=6, budget=600, rounds=3, scorer="heuristic", eval_per_round=120,
                         tau=1.0, seed=0, model=SkillModel.name)


@pytest.fixture(scope="module")
def store(demo_run: RunStore, tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    copy = tmp_path_factory.mktemp("iterative") / "run"
    shutil.copytree(demo_run.root, copy)
    return RunStore(copy)


@pytest.fixture(scope="module")
def fitted(store: RunStore) -> IterativeKMQ:
    pool = pipeline.load_run_pool(store)
    return IterativeKMQ(CONFIG, SkillModel(pool)).fit(store)


def _weak_share(pool: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """Per cluster: the share of its rows that belong to a weak skill."""
    weak = pool["skill"].isin(WEAK_SKILLS).to_numpy()
    return np.bincount(labels, weights=weak, minlength=6) / np.bincount(labels, minlength=6)


def test_budget_is_exact_and_rows_are_distinct(fitted: IterativeKMQ) -> None:
    assert len(fitted.selected_) == 600 == len(np.unique(fitted.selected_))
    assert [len(r.added) for r in fitted.rounds_] == [200, 200, 200]
    np.testing.assert_allclose(fitted.weights_.sum(), 1.0)


def test_every_round_is_persisted_and_rounds_csv_has_the_contract_columns(
        store: RunStore, fitted: IterativeKMQ) -> None:
    table = pd.read_csv(store.path("rounds.csv"))
    assert table.columns.tolist() == ROUNDS_COLUMNS
    assert len(table) == 3 * 6 and table["round"].unique().tolist() == [1, 2, 3]
    assert table.groupby("round")["n_selected"].sum().tolist() == [200, 200, 200]
    assert table.groupby("round")["weight"].sum().round(9).tolist() == [1.0, 1.0, 1.0]
    pd.testing.assert_frame_equal(table, rounds_table(fitted.rounds_), check_dtype=False)
    history = load_history(fitted.folder_)
    assert history.rounds == 3 and len(history.clusters) == 18
    assert {"low_quality_share", "train_s", "generate_s", "score_s"} <= set(history.summaries)
    generations = load_generations(fitted.folder_, 2)
    assert len(generations) == 120
    assert {"prompt", "gold", "generated", "gap", "quality", "cluster"} <= set(generations)


def test_weights_move_toward_the_clusters_where_gold_beats_the_generation(
        store: RunStore, fitted: IterativeKMQ) -> None:
    pool = pipeline.load_run_pool(store)
    labels = fitted.labels_
    weak_clusters = _weak_share(pool, labels) > 0.5
    assert weak_clusters.any() and not weak_clusters.all()
    history = load_history(fitted.folder_).clusters
    first = history[history["round"] == 1]
    # round 1: the weak clusters' gold beats the fake model's answers, the others' barely
    assert first["mean_score"][weak_clusters].min() > first["mean_score"][~weak_clusters].max()
    start, end = 1 / 6 * weak_clusters.sum(), fitted.weights_[weak_clusters].sum()
    weak_rows = pool["skill"].isin(WEAK_SKILLS).to_numpy()
    static = kmq_select(labels, fitted.quality_, 600, seed=0)
    iterative_share = weak_rows[fitted.selected_].mean()
    static_share = weak_rows[static].mean()
    print(f"\nweak-cluster weight {start:.3f} → {end:.3f}; weak-skill share of the selection: "
          f"iterative {iterative_share:.3f} vs static kMQ {static_share:.3f} (pool "
          f"{weak_rows.mean():.3f})")
    assert end > start + 0.2
    assert iterative_share > static_share + 0.05
    # the later rounds add more weak-skill items than the uniform first round did
    per_round = [weak_rows[r.added].mean() for r in fitted.rounds_]
    assert per_round[1] > per_round[0] and per_round[2] > per_round[0]


def test_a_cluster_without_generations_keeps_its_weight(store: RunStore) -> None:
    pool = pipeline.load_run_pool(store)
    config = IterativeConfig(k=6, budget=30, rounds=2, scorer="heuristic", eval_per_round=2,
                             seed=1, model=SkillModel.name)
    run = IterativeKMQ(config, SkillModel(pool)).fit(store)
    first = run.rounds_[0].clusters
    unscored = first["n_scored"].to_numpy() == 0
    assert unscored.any() and first["mean_score"][unscored].isna().all()
    w, new = first["weight"].to_numpy(), first["next_weight"].to_numpy()
    # unscored clusters keep their weight relative to each other
    np.testing.assert_allclose(new[unscored] / new[unscored].sum(), w[unscored] / w[unscored].sum())


def test_resume_after_an_interruption_gives_the_uninterrupted_result(
        store: RunStore, fitted: IterativeKMQ) -> None:
    pool = pipeline.load_run_pool(store)
    target = store.root.parent / "resumed"
    shutil.copytree(store.root, target, ignore=shutil.ignore_patterns("iterative", "rounds.csv"))
    copy = RunStore(target)
    with pytest.raises(KeyboardInterrupt):
        IterativeKMQ(CONFIG, CrashingModel(pool)).fit(copy)
    folder = iterative_dir(copy, CONFIG)
    assert (folder / "round-1" / "summary.json").exists()
    assert not (folder / "round-2" / "summary.json").exists()
    assert not copy.exists("rounds.csv")
    resumed = IterativeKMQ(CONFIG, SkillModel(pool)).fit(copy)
    assert resumed.selected_.tolist() == fitted.selected_.tolist()
    np.testing.assert_allclose(resumed.weights_, fitted.weights_)
    pd.testing.assert_frame_equal(pd.read_csv(copy.path("rounds.csv")),
                                  rounds_table(fitted.rounds_), check_dtype=False)


def test_selected_frame_has_the_select_export_shape_and_the_round(
        store: RunStore, fitted: IterativeKMQ) -> None:
    frame = fitted.selected_frame(pipeline.load_run_pool(store))
    assert {"id", "prompt", "response", "cluster", "quality", "round"} <= set(frame.columns)
    assert frame["round"].value_counts().sort_index().tolist() == [200, 200, 200]


def test_a_kmeans_config_with_another_k_is_refused(store: RunStore) -> None:
    from selection_core.errors import ConfigError

    with pytest.raises(ConfigError, match="k=5"):
        IterativeKMQ(CONFIG, SkillModel(pipeline.load_run_pool(store))).fit(
            store, KMeansConfig(k=5))
