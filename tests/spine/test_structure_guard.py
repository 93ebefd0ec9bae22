"""Regression guard for the package moves of issue 13 ("One spine", structure half).

Written before the moves and left unchanged by them: the demo pool (every generator and noise
path), the demo checker's verdicts, the benchmark scorers' verdicts on fixed outputs, and the
selection math (BIDS, the influence baselines and the static kMQ family) on fixed inputs must come
out byte-identical. Each part is reduced to the sha256 of a canonical JSON dump and compared with
the digest recorded from main (81d512b). Inputs are integers, strings or seeded draws whose
results cannot flip on a last-bit floating-point difference between two x86 machines.

To re-derive a digest (only after a deliberate behaviour change, named in the commit):
`GUARD_PRINT=1 pytest tests/spine/test_structure_guard.py -s`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from selection_core.data.demo import (SKILLS, check_answer, generate_demo_eval,
                                      generate_demo_pool)

DIGESTS = {
    "demo_pool": "186540c8e67fe1de536dbca65708c8910635ad0ecae419b100fac475ef7823c9",
    "demo_pool_small": "1ed75d4bcf468dc31b7f895ff83484768fac04fc7a431f0f1b969094711c2c73",
    "demo_eval": "d8043217b9b024290ca9708a406494170fdd35f8ded5dad9309bec38143d905a",
    "demo_checker": "a6bdfee5cf0c1b19e8302b582ef668bbcc817d62eb656b719f57bc98b91d232a",
    "demo_checker_python": "2101dd8342d061d7a9f0d3ae260f6b5b920c906533378700cc0296cc43cd6a3f",
    "scorers_text": "cdeac35c7b0dc591a84dfaf87994d00b3a4c4ef08acfd9d872dea48b12557026",
    "scorers_code": "9bcbde4df220ba84bf6f887436230a8de36a063335768e056409b2d9de658b5f",
    "influence_methods": "12c27477cecbaae02f604a6c052e8b43925f6a4147e3dfe027f49dcb6a2424e0",
    "static_methods": "2c9b7aecf29962ccf43ff241f55779052abdc7d6bd37893b596ac310f5e7589a",
}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def check(name: str, value: Any) -> None:
    got = digest(value)
    if os.environ.get("GUARD_PRINT") == "1":
        print(f'\n    "{name}": "{got}",')
        return
    assert got == DIGESTS[name], f"{name} changed: {got}"


# --------------------------------------------------------------------------- demo pool
@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return generate_demo_pool()


def test_demo_pool_rows_are_unchanged(pool: list[dict]) -> None:
    check("demo_pool", pool)
    # Another seed, size and noise rate reach other draws and the noise-count rounding.
    check("demo_pool_small", generate_demo_pool(n=257, seed=11, noise_rate=0.37))
    check("demo_eval", generate_demo_eval(n_per_skill=20, seed=5))


def _variants(row: dict, other: dict) -> list[str]:
    """The row's own response, the gold answer itself, and a same-skill row's response."""
    return [row["response"], row["gold"], other["response"], ""]


def test_demo_checker_verdicts_are_unchanged(pool: list[dict]) -> None:
    """Every non-python row against its gold, plus the gold and a neighbour's answer."""
    rows = [row for row in pool if row["skill"] != "python"]
    by_skill = {skill: [row for row in rows if row["skill"] == skill] for skill in SKILLS}
    verdicts = []
    for row in rows:
        others = by_skill[row["skill"]]
        other = others[(others.index(row) + 1) % len(others)] if len(others) > 1 else row
        verdicts.append([check_answer(row["skill"], row["gold"], text)
                         for text in _variants(row, other)])
    check("demo_checker", verdicts)


@pytest.mark.usefixtures("bubblewrap")
def test_demo_python_checker_verdicts_are_unchanged(pool: list[dict]) -> None:
    """Python rows run in the sandbox: a seeded sample of clean and noisy rows."""
    python = [row for row in pool if row["skill"] == "python"]
    rows = random.Random(0).sample([r for r in python if r["is_noise"]], 12) + \
        random.Random(1).sample([r for r in python if not r["is_noise"]], 8)
    jobs = [(row["gold"], text) for i, row in enumerate(rows)
            for text in (row["response"], rows[(i + 1) % len(rows)]["response"])]
    with ThreadPoolExecutor(max_workers=4) as workers:
        verdicts = list(workers.map(lambda job: check_answer("python", *job), jobs))
    check("demo_checker_python", verdicts)


# --------------------------------------------------------------------------- benchmark scorers
TEXT_BENCHMARKS = ("gsm8k", "gsm-plus", "math", "bbh", "mmlu", "ifeval", "demo")
CODE_BENCHMARKS = ("humaneval", "mbpp")
VERDICT_KEYS = ("correct", "strict", "status", "extracted", "prediction", "loose")


def _outputs(item: Any) -> list[str]:
    """Fixed outputs in the formats models write: the reference answer, the gold in several
    answer conventions, a truncation and an empty answer."""
    gold = item.gold if isinstance(item.gold, str) else json.dumps(item.gold, sort_keys=True)
    reference = item.gold_response or ""
    return [reference, f"The answer is {gold}.", f"#### {gold}", f"\\boxed{{{gold}}}",
            f"Answer: ({gold})", reference[: len(reference) // 2], "",
            "Sure. HERE IS MY RESPONSE, all in capitals, with no commas or dots"]


def _verdicts(name: str, limit: int, shared_data: Any) -> list[Any]:
    from selection_core.evaluate import get_benchmark

    benchmark = get_benchmark(name)
    items = benchmark.load(None, limit=limit, seed=3)
    rows = []
    for item in items:
        for output in _outputs(item):
            details = benchmark.score_item(item, output)
            rows.append([item.id, {key: details[key] for key in VERDICT_KEYS if key in details}])
    return rows


def test_benchmark_scorer_verdicts_are_unchanged(shared_data: Any) -> None:
    check("scorers_text", {name: _verdicts(name, 15, shared_data) for name in TEXT_BENCHMARKS})


@pytest.mark.usefixtures("bubblewrap")
def test_code_benchmark_verdicts_are_unchanged(shared_data: Any) -> None:
    check("scorers_code", {name: _verdicts(name, 3, shared_data) for name in CODE_BENCHMARKS})


# --------------------------------------------------------------------------- selection math
def test_influence_methods_on_a_fixed_matrix_are_unchanged() -> None:
    from selection_core.select.bids import INFLUENCE_METHODS, select_on_matrix

    rng = np.random.default_rng(7)
    A = rng.integers(-50, 50, size=(120, 9)).astype(np.float32) / 8  # exact in float32
    tasks = np.array(["a", "a", "b", "b", "b", "c", "c", "d", "d"])
    out = {method: [select_on_matrix(A, tasks, method, budget, seed=4).tolist()
                    for budget in (0, 1, 17, 120)] for method in INFLUENCE_METHODS}
    check("influence_methods", out)


def test_static_methods_on_fixed_inputs_are_unchanged() -> None:
    from selection_core.spine.apportion import allocate_budget
    from selection_core.select.baselines import random_select, top_rows
    from selection_core.select.kmq import kmeans_closest_select, kmeans_random_select, \
        kmq_select

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, size=400)
    quality = rng.integers(0, 20, size=400) / 4  # ties on purpose
    distances = rng.integers(0, 50, size=400) / 8
    out = {
        "kmq": [kmq_select(labels, quality, b, tau=t, seed=2).tolist()
                for b in (1, 33, 400) for t in (0.5, 1.0)]
        + [kmq_select(labels, quality, 33, top=True).tolist()],
        "kmeans_random": [kmeans_random_select(labels, b, seed=5).tolist() for b in (1, 33, 400)],
        "kmeans_closest": [kmeans_closest_select(labels, distances, b).tolist()
                           for b in (1, 33, 400)],
        "random": [random_select(400, b, seed=6).tolist() for b in (0, 33, 400)],
        "quality_top": [top_rows(quality, b).tolist() for b in (0, 33, 400)],
        "allocate": [allocate_budget(np.array([5, 0, 12, 3, 40]), b, w).tolist()
                     for b in (0, 7, 31, 60)
                     for w in (None, np.array([1.0, 2.0, 0.0, 0.5, 0.25]))],
    }
    check("static_methods", out)
