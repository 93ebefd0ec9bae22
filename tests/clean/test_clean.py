"""The clean stage (issue 26): planted duplicates and benchmark items are found, clean rows are
left alone, the CLI writes the flag table, and selections leave flagged rows out.

Measured on the planted pool (240 demo rows, 10 plants of each kind, GSM8K as the benchmark,
all-MiniLM-L6-v2 embeddings, the default thresholds), and asserted below:
exact 10/10, near 9/10 (one typo in a short row stays under Jaccard 0.7), semantic 10/10,
verbatim 10/10, lightly edited 10/10, paraphrased 9/10 (the weakest rewording's cosine is
0.843, under 0.85); clean rows flagged 3/240, all `semantic` (demo prompts from one template
that differ only in a number, cosine > 0.95), none contaminated.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.select import stages as pipeline
from selection_core.select.clean import (FLAG_COLUMNS, CleanConfig, NgramIndex, clean,
                                         exact_duplicates, exclusion, flag_table, near_duplicates,
                                         semantic_duplicates)
from selection_core.cli import main
from selection_core.spine.config import EmbedConfig, KMeansConfig, ScorerConfig, SelectionConfig
from selection_core.spine.errors import ConfigError
from selection_core.evaluate.base import DATA_DIR_ENV
from selection_core.data.demo import generate_demo_pool
from selection_core.spine.store import RunStore

# --------------------------------------------------------------------------- the plants
# Hand-written rewordings of GSM8K test questions 0-9 (same numbers, same question, other
# words): the "rephrased samples" an n-gram check misses.
PARAPHRASES = [
    "Every day Janet's ducks produce 16 eggs. Three of them she has for breakfast each morning, "
    "and four go into the muffins she bakes for friends daily. The rest she sells at the "
    "farmers' market for $2 apiece. How many dollars does she earn at the market each day?",
    "To make one robe you need two bolts of blue fibre plus half as much white fibre. What is "
    "the total number of bolts needed?",
    "Josh tries his hand at house flipping: he pays $80,000 for a house and spends another "
    "$50,000 on repairs, which raises its value by 150%. What was his profit?",
    "Three times a week, James runs three sprints of 60 meters each. How many meters does he "
    "run in total per week?",
    "Wendi gives each of her chickens three cups of mixed feed a day (seeds, mealworms and "
    "vegetables), split over three meals. She gave the flock 15 cups in the morning and 25 "
    "cups in the afternoon. With 20 chickens in the flock, how many cups does the last meal "
    "of the day need?",
    "Kylar needs 16 glasses for his new flat. A glass is $5, but every second one costs only "
    "60% of that price. What will he pay for all of them?",
    "Seattle has 20 sheep. Charleston has four times as many as Seattle, and Toulouse twice as "
    "many as Charleston. How many sheep do the three cities have altogether?",
    "Carla downloads a 200 GB file at 2 GB per minute. When 40% is done, Windows restarts to "
    "install updates, which takes 20 minutes, and she must start the download over. How long "
    "does the whole download take?",
    "John drives 3 hours at 60 mph, then turns back because he forgot something important at "
    "home. He wants to be home within 4 hours, but is stuck in traffic for the first 2, drives "
    "half an hour at 30 mph, and then goes 80 mph for the rest of the 4 hours. How far from home "
    "is he when the 4 hours are over?",
    "Eliza is paid $10 an hour for her first 40 hours each week, and overtime at 1.2 times that "
    "rate. She worked 45 hours this week. What did she earn?",
]


@dataclass
class Planted:
    """A pool with planted rows: which positions are which plant, and of what."""

    rows: list[dict]
    exact: dict[int, int] = field(default_factory=dict)  # planted position → original position
    near: dict[int, int] = field(default_factory=dict)
    semantic: dict[int, int] = field(default_factory=dict)
    verbatim: dict[int, str] = field(default_factory=dict)  # planted position → benchmark item id
    edited: dict[int, str] = field(default_factory=dict)
    paraphrased: dict[int, str] = field(default_factory=dict)

    @property
    def planted(self) -> set[int]:
        return {*self.exact, *self.near, *self.semantic, *self.verbatim, *self.edited,
                *self.paraphrased}

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        return path


def gsm8k_questions(data: Path, n: int) -> list[tuple[str, str]]:
    """The first `n` GSM8K test (question, answer) pairs."""
    with open(data / "gsm8k" / "test.jsonl", encoding="utf-8") as handle:
        records = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    return [(r["question"], r["answer"]) for r in records]


def _typo(text: str, seed: int) -> str:
    """Two neighbouring letters of one longer word swapped."""
    words = [m for m in re.finditer(r"[A-Za-z]{5,}", text)]
    match = words[seed % len(words)]
    i = match.start() + 1
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _edit_lightly(text: str, seed: int) -> str:
    """Change one number and the spacing and casing, add a lead-in: a light edit."""
    numbers = list(re.finditer(r"\d+", text))
    if numbers:
        hit = numbers[seed % len(numbers)]
        text = f"{text[:hit.start()]}{int(hit.group()) + 1}{text[hit.end():]}"
    return "Question: " + text.replace("  ", " ").upper()[:1] + text.replace("  ", " ")[1:]


def planted_pool(data: Path, n_clean: int = 240, n_each: int = 10, seed: int = 0) -> Planted:
    """`n_clean` demo rows with `n_each` exact, near and semantic duplicates of some of them
    and `n_each` verbatim, lightly edited and paraphrased GSM8K test items appended.

    Exact duplicates change only case and spacing; near duplicates swap two letters of a prompt
    word (the demo pool's own near-duplicate noise); semantic duplicates reword the request and
    answer it in other words."""
    rng = np.random.default_rng(seed)
    pool = generate_demo_pool(n_clean, seed=seed, noise_rate=0.0)
    rows = [{"id": f"clean-{i:04d}", "prompt": r["prompt"], "response": r["response"]}
            for i, r in enumerate(pool)]
    long_rows = [i for i, r in enumerate(rows) if len((r["prompt"] + r["response"]).split()) >= 40]
    sources = rng.choice(long_rows, 3 * n_each, replace=False)
    planted = Planted(rows)
    for j, source in enumerate(sources[:n_each]):
        planted.exact[len(rows)] = int(source)
        rows.append({"id": f"exact-{j}", "prompt": rows[source]["prompt"].upper() + "  ",
                     "response": rows[source]["response"]})
    for j, source in enumerate(sources[n_each:2 * n_each]):
        planted.near[len(rows)] = int(source)  # the demo's own near-duplicate edit: a typo
        rows.append({"id": f"near-{j}", "prompt": _typo(rows[source]["prompt"], j),
                     "response": rows[source]["response"]})
    for j, source in enumerate(sources[2 * n_each:]):
        planted.semantic[len(rows)] = int(source)  # the request reworded, answered anew
        rows.append({"id": f"semantic-{j}",
                     "prompt": "Please help me with this. " + rows[source]["prompt"]
                     .replace("Write", "Compose").replace("What", "Which"),
                     "response": "Sure, here it is: "
                                 + rows[source]["response"].splitlines()[-1]})
    questions = gsm8k_questions(data, 3 * n_each + len(PARAPHRASES))
    for j in range(n_each):
        question, answer = questions[len(PARAPHRASES) + j]
        planted.verbatim[len(rows)] = str(len(PARAPHRASES) + j)
        rows.append({"id": f"verbatim-{j}", "prompt": question, "response": answer})
    for j in range(n_each):
        question, answer = questions[len(PARAPHRASES) + n_each + j]
        planted.edited[len(rows)] = str(len(PARAPHRASES) + n_each + j)
        rows.append({"id": f"edited-{j}", "prompt": _edit_lightly(question, j),
                     "response": answer.split("####")[0].strip()})
    for j, text in enumerate(PARAPHRASES[:n_each]):
        planted.paraphrased[len(rows)] = str(j)
        rows.append({"id": f"paraphrased-{j}", "prompt": text,
                     "response": questions[j][1].split("####")[-1].strip()})
    return planted


GSM8K_ITEMS = 40  # the benchmark copy holds the first 40 GSM8K test items (plants use 0-29)


@pytest.fixture(scope="module")
def planted_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The planted pool loaded and embedded, with a benchmark data folder that holds GSM8K
    only (every other benchmark is missing there)."""
    root = tmp_path_factory.mktemp("planted")
    data = root / "data"
    (data / "gsm8k").mkdir(parents=True)
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    (data / "gsm8k" / "test.jsonl").write_text("\n".join(lines[:GSM8K_ITEMS]) + "\n")
    previous = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(data)
    planted = planted_pool(shared_data)
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(planted.write(root / "pool.jsonl"))])
    pipeline.embed(store, EmbedConfig())
    yield store, planted, data
    if previous is None:
        del os.environ[DATA_DIR_ENV]
    else:
        os.environ[DATA_DIR_ENV] = previous


def _found(flags: pd.DataFrame, ids: list[str], plants: dict[int, object]) -> tuple[int, int]:
    """(plants flagged at all, plants flagged as their own kind's partner: `of` right)."""
    table = flags.set_index("id")
    hit = [ids[row] for row in plants if ids[row] in table.index]
    return len(hit), sum(str(table.loc[ids[row], "of"]) in (str(target), ids[target]
                                                            if isinstance(target, int) else "")
                         for row, target in plants.items() if ids[row] in table.index)


def test_planted_duplicates_and_contamination_are_found(planted_run) -> None:
    store, planted, _ = planted_run
    result = clean(store, CleanConfig(benchmarks=("gsm8k",)))
    flags = result.flags
    ids = [row["id"] for row in planted.rows]
    kinds = flags.set_index("id")["kind"]
    recall = {name: _found(flags, ids, getattr(planted, name))[0]
              for name in ("exact", "near", "semantic", "verbatim", "edited", "paraphrased")}
    assert recall == {"exact": 10, "near": 9, "semantic": 10, "verbatim": 10, "edited": 10,
                      "paraphrased": 9}, recall
    # each found plant points at what it copies: the original row, or the GSM8K item's id
    for name in ("exact", "verbatim", "edited", "paraphrased"):
        flagged, right = _found(flags, ids, getattr(planted, name))
        assert right == flagged, name
    assert {kinds[ids[row]] for row in planted.exact} == {"exact"}
    assert {kinds[ids[row]] for row in {**planted.verbatim, **planted.edited}} == \
        {"contaminated"}
    contaminated = flags[flags["kind"] == "contaminated"]
    assert set(contaminated["benchmark"]) == {"gsm8k"}
    assert (flags.loc[flags["kind"] != "contaminated", "benchmark"] == "").all()
    clean_rows = [ids[row] for row in range(len(ids)) if row not in planted.planted]
    false_positives = flags[flags["id"].isin(clean_rows)]
    assert len(false_positives) <= 3 and set(false_positives["kind"]) <= {"semantic"}
    assert result.summary["skipped"] == {}


def test_the_stage_is_keyed_and_reused(planted_run) -> None:
    store, _, _ = planted_run
    first = clean(store, CleanConfig(benchmarks=("gsm8k",)))
    again = clean(store, CleanConfig(benchmarks=("gsm8k",)))
    looser = clean(store, CleanConfig(benchmarks=("gsm8k",), semantic_eps=0.2))
    assert again.folder == first.folder and looser.folder != first.folder
    assert len(looser.flags) > len(first.flags)
    # the stored scores give any threshold's flags without running the stage again
    relabelled = flag_table(first.scores(), first.items(), looser.config)
    pd.testing.assert_frame_equal(relabelled, looser.flags, check_dtype=False)


def test_cli_writes_the_flag_table_and_names_skipped_benchmarks(planted_run, tmp_path,
                                                                capsys) -> None:
    store, planted, data = planted_run
    out = tmp_path / "flags.csv"
    assert main(["clean", "--run", str(store.root), "--benchmarks", "gsm8k,mmlu",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mmlu" in printed and "skipped" in printed
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == FLAG_COLUMNS
    body = pd.DataFrame(rows[1:], columns=FLAG_COLUMNS)
    assert body["id"].is_unique and len(body) > 0
    assert set(body["kind"]) <= {"exact", "near", "semantic", "contaminated"}
    assert set(body.loc[body["kind"] == "contaminated", "benchmark"]) == {"gsm8k"}
    verbatim = planted.rows[next(iter(planted.verbatim))]["id"]
    assert body.set_index("id").loc[verbatim, "of"] == planted.verbatim[
        next(iter(planted.verbatim))]


@pytest.mark.parametrize("flag,value,message", [
    ("--ngram-overlap", "2", "ngram_overlap must be in (0, 1]"),
    ("--near-threshold", "0", "near_threshold must be in (0, 1]"),
    ("--paraphrase-threshold", "1.5", "paraphrase_threshold is a cosine"),
    ("--semantic-eps", "1", "semantic_eps must be in [0, 1)"),
    ("--benchmarks", "gsm9k", "unknown benchmark 'gsm9k'"),
])
def test_bad_thresholds_are_one_line(tmp_path, capsys, flag: str, value: str,
                                     message: str) -> None:
    RunStore(tmp_path / "run")
    assert main(["clean", "--run", str(tmp_path / "run"), flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_selections_leave_flagged_rows_out(planted_run) -> None:
    store, planted, _ = planted_run
    result = clean(store, CleanConfig(benchmarks=("gsm8k",)))
    flagged = set(result.flags["id"])
    config = SelectionConfig(method="quality-top", budget=200, k=4)
    kmeans, scorer = KMeansConfig(k=4), ScorerConfig()
    ids = [row["id"] for row in planted.rows]
    selected = pipeline.select(store, config, kmeans, scorer, exclude=exclusion(store, ids))
    assert not flagged & set(selected["id"])
    assert selected["why"].str.contains(f"{len(flagged)} of {len(planted.rows)} pool rows "
                                        "excluded").all()
    kept = pipeline.select(store, config, kmeans, scorer, exclude=exclusion(store, ids, "all"))
    out = store.root.parent / "selected.jsonl"
    assert main(["select", "--run", str(store.root), "--method", "quality-top", "--k", "4",
                 "--budget", "200", "--out", str(out)]) == 0
    assert set(pd.read_json(out, lines=True, dtype={"id": str})["id"]) == set(selected["id"])
    assert flagged & set(kept["id"])
    only_duplicates = exclusion(store, ids, keep="contaminated")
    contaminated = set(result.flags.loc[result.flags["kind"] == "contaminated", "id"])
    assert set(np.array(ids)[only_duplicates.available]) >= contaminated
    assert only_duplicates.benchmarks == ()
    with pytest.raises(ConfigError, match="left after cleaning"):
        pipeline.select(store, SelectionConfig(method="random", budget=len(ids) - 1, k=4),
                        kmeans, scorer, exclude=exclusion(store, ids))


@pytest.mark.parametrize("method", ["task-max", "bids"])
def test_influence_selection_leaves_contaminated_rows_out(planted_run, tmp_path,
                                                          method: str) -> None:
    """The hazard in small: planted benchmark items get the largest influence (as they would:
    they are the validation items); without cleaning task-max and BIDS pick them first, with
    the run's clean result none of them."""
    store, planted, _ = planted_run
    flagged = set(clean(store, CleanConfig(benchmarks=("gsm8k",))).flags["id"])
    n = len(planted.rows)
    contaminated = sorted({*planted.verbatim, *planted.edited, *planted.paraphrased})
    A = np.random.default_rng(0).normal(size=(n, 6))
    A[contaminated] += 10.0
    np.save(tmp_path / "A.npy", A)
    (tmp_path / "tasks.txt").write_text("gsm8k\ngsm8k\ngsm8k\nmath\nmath\nmath\n")

    def picks(*extra: str) -> set[int]:
        out = tmp_path / "rows.txt"
        assert main(["influence", "select", "--matrix", str(tmp_path / "A.npy"), "--val-tasks",
                     str(tmp_path / "tasks.txt"), "--method", method, "--budget", "30",
                     "--out", str(out), *extra]) == 0
        return {int(line) for line in out.read_text().splitlines()}

    assert len(picks() & set(contaminated)) >= 25  # uncleaned: the plants come first
    cleaned = picks("--run", str(store.root))
    missed = {row for row in contaminated if planted.rows[row]["id"] not in flagged}
    assert len(missed) == 1 and len(cleaned) == 30  # the one paraphrase under 0.85
    assert cleaned & set(contaminated) <= missed
    assert not {planted.rows[row]["id"] for row in cleaned} & flagged
    assert len(picks("--run", str(store.root), "--keep", "contaminated") & set(contaminated)) \
        >= 25


class EchoModel:
    """A round model that trains on nothing and answers with the gold response."""

    name = "echo-model"

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold

    def train(self, prompts, responses, out_dir: Path, previous, seed: int) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def generate(self, prompts) -> list[str]:
        return [self.gold[p] for p in prompts]

    def truncate(self, texts) -> list[str]:
        return list(texts)

    def response_log_likelihood(self, prompts, responses) -> np.ndarray:
        return np.zeros(len(prompts))


def test_iterative_kmq_never_draws_flagged_rows(planted_run) -> None:
    from selection_core.iterative.loop import RefinementLoop
    from selection_core.iterative.rounds import IterativeConfig

    store, planted, _ = planted_run
    flagged = set(clean(store, CleanConfig(benchmarks=("gsm8k",))).flags["id"])
    pool = pipeline.load_run_pool(store)
    model = EchoModel(dict(zip(pool["prompt"], pool["response"], strict=True)))
    config = IterativeConfig(k=4, budget=len(pool) - len(flagged), rounds=2, model=model.name)
    run = RefinementLoop(config, model).fit(store, KMeansConfig(k=4))
    chosen = set(pool["id"].iloc[run.selected_])
    assert len(chosen) == config.budget and not chosen & flagged  # every unflagged row, only
    with pytest.raises(ConfigError, match="left after cleaning"):
        RefinementLoop(replace(config, budget=config.budget + 1), model).fit(store,
                                                                          KMeansConfig(k=4))
    # --keep all: the same config may draw the flagged rows, under its own key
    kept = RefinementLoop(replace(config, budget=len(pool)), model, keep="all").fit(
        store, KMeansConfig(k=4))
    assert set(pool["id"].iloc[kept.selected_]) >= flagged and kept.folder_ != run.folder_
    with pytest.raises(ConfigError, match="unknown --keep"):
        RefinementLoop(config, model, keep="everything").fit(store, KMeansConfig(k=4))


def test_the_library_selectors_leave_excluded_rows_out() -> None:
    from selection_core import BIDSSelector, KMQSelector

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    quality = np.arange(60.0)
    best = KMQSelector(k=3, budget=10, method="quality-top").fit(X, quality)
    assert set(best.selected_) == set(range(50, 60))
    cleaned = KMQSelector(k=3, budget=10, method="quality-top").fit(
        X, quality, exclude=np.arange(55, 60))
    assert set(cleaned.selected_) == set(range(45, 55))
    np.testing.assert_array_equal(cleaned.labels_, best.labels_)  # the clustering is the pool's
    A = rng.normal(size=(60, 4))
    A[:5] += 10
    mask = np.zeros(60, dtype=bool)
    mask[:5] = True
    assert set(BIDSSelector(budget=5, method="task-max").fit(A, ["a", "a", "b", "b"])
               .selected_) == set(range(5))
    kept = BIDSSelector(budget=5, method="task-max").fit(A, ["a", "a", "b", "b"], exclude=mask)
    assert not set(kept.selected_) & set(range(5)) and len(kept.selected_) == 5
    with pytest.raises(ConfigError, match="not excluded"):
        BIDSSelector(budget=58).fit(A, ["a", "a", "b", "b"], exclude=mask)


# --------------------------------------------------------------------------- the pieces
def test_exact_duplicates_normalise_case_spacing_and_punctuation() -> None:
    of = exact_duplicates(["Add 2 and 3.", "add  2 and 3", "Add 2 and 4."],
                          ["Five!", "five", "Six."])
    assert of.tolist() == [-1, 0, -1]


def test_near_duplicates_point_at_the_earlier_row() -> None:
    base = " ".join(f"word{i}" for i in range(60))
    edited = base.replace("word30", "changed")
    other = " ".join(f"other{i}" for i in range(60))
    of, score = near_duplicates([base, other, edited], threshold=0.7)
    assert of.tolist() == [-1, -1, 0] and 0.7 <= score[2] < 1


@pytest.mark.parametrize("rule,kept", [("quality", 2), ("hard", 1), ("easy", 0)])
def test_semantic_keep_rules(rule: str, kept: int) -> None:
    """Three near-identical vectors in one cluster: the rule decides which one survives."""
    vectors = np.array([[1.0, 0.0], [1.0, 0.02], [1.0, 0.01], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1])
    distances = np.array([0.1, 0.3, 0.2, 0.0])
    quality = np.array([1.0, 2.0, 3.0, 0.0])
    of, best = semantic_duplicates(vectors, labels, distances, rule, quality)
    survivors = [row for row in range(3) if of[row] == -1]
    assert survivors == [kept] and of[3] == -1
    assert (best[[r for r in range(3) if r != kept]] > 0.99).all()


def test_ngram_coverage_ignores_templates_and_matches_short_items() -> None:
    from selection_core.select.clean import item_contents

    prompts = [f"Solve the following math problem step by step.\nA farmer has {n} cows and buys "
               f"{n + 3} more; how many cows does the farmer have now?" for n in range(10)]
    contents = item_contents(prompts, max_share=1) + ["Name the capital of France please"]
    assert contents[4] == "A farmer has 4 cows and buys 7 more; how many cows does the farmer " \
                          "have now?"  # the template line is gone
    index = NgramIndex(contents, ["math"] * 10 + ["geo"], n=8, min_words=5, template_share=0.01)
    item, share = index.best_item("a farmer has 4 cows and buys 7 more, how many cows does the "
                                  "farmer have now? 11")
    assert item == 4 and share == 1.0
    # a different number breaks the 8-grams around it: a share, not the whole item
    item, share = index.best_item("A farmer has 5 cows and buys 7 more; how many cows does the "
                                  "farmer have now?")
    assert 0.3 < share < 1
    assert index.best_item("Solve the following math problem step by step. Nothing else.")[0] \
        == -1
    assert index.best_item("Please name the capital of France please!")[0] == 10


def test_missing_benchmark_data_is_named_as_skipped(tmp_path, monkeypatch) -> None:
    from selection_core.select.clean import benchmark_fingerprint, load_benchmark_items

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    items = load_benchmark_items(["humaneval", "demo"], 0.01)
    assert "humaneval" in items.skipped and "demo" not in items.skipped
    assert benchmark_fingerprint("humaneval") == "missing"
    shutil.rmtree(tmp_path)
