"""The contamination hazard, measured on a real model's features: benchmark items planted in the
demo pool, picked by influence selection before cleaning, and after.

Influence selection ranks pool rows by how their gradients align with the validation instances'
— which are benchmark test items. A pool row that *is* one of them (or a light paraphrase) aligns
best of all. This plants `--plants` validation instances of three tasks (half verbatim, half
lightly paraphrased) among `--pool` demo rows, computes LESS features with SmolLM2-135M-Instruct
(offline) through the CLI, and counts the plants each method picks at `--budget` rows with the
run's clean result ignored (`--keep all`) and applied (the default).

    python benchmarks/hazard_planted.py --work /tmp/hazard [--pool 300] [--plants 20] [--budget 30]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core.cli import main as cli  # noqa: E402
from selection_core.data.demo import generate_demo_pool  # noqa: E402
from selection_core.influence.validation import build_validation_set  # noqa: E402

TASKS = ("gsm-plus", "math", "bbh")
METHODS = ("task-max", "bids", "instance-max", "sum")
SWAPS = [(r"\bHow many\b", "What number of"), (r"\bWhat is\b", "Find"), (r"\bhas\b", "owns"),
         (r"\bbuys\b", "purchases"), (r"\btotal\b", "overall"), (r"\beach\b", "every"),
         (r"\bFind\b", "Work out"), (r"\bdollars\b", "USD")]


def paraphrase(text: str) -> str:
    """A light rewording: a few words swapped and a new opening, the problem unchanged."""
    for pattern, replacement in SWAPS:
        text = re.sub(pattern, replacement, text)
    return "Here is a problem for you. " + text


def run(argv: list[str]) -> None:
    print("$ python -m selection_core " + " ".join(argv), flush=True)
    started = time.perf_counter()
    if cli(argv) != 0:
        raise SystemExit(f"failed: {argv}")
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def picks(work: Path, method: str, budget: int, keep: str) -> list[int]:
    out = work / f"{method}-{keep}.txt"
    run(["influence", "select", "--matrix", str(work / "run" / "attribution.npy"),
         "--val-tasks", str(work / "run" / "val_tasks.txt"), "--method", method,
         "--budget", str(budget), "--run", str(work / "run"), "--keep", keep, "--out", str(out)])
    return [int(line) for line in out.read_text().split()]


def rds_picks(work: Path, budget: int, keep: str) -> list[int]:
    """RDS (the representation baseline): each row's best cosine to a validation instance, top
    `budget` of the rows the run's clean result leaves available (the app's ranking)."""
    import numpy as np

    from selection_core.influence.pipeline import rds_scores_for_run
    from selection_core.select.baselines import top_rows
    from selection_core.select.clean import exclusion
    from selection_core.select.stages import load_run_pool
    from selection_core.spine.store import RunStore

    store = RunStore(work / "run", create=False)
    scores = rds_scores_for_run(store)
    available = exclusion(store, load_run_pool(store)["id"].astype(str).tolist(), keep).available
    return top_rows(np.where(available, scores, -np.inf), budget).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--pool", type=int, default=300, help="demo rows")
    parser.add_argument("--plants", type=int, default=20, help="benchmark items planted")
    parser.add_argument("--per-task", type=int, default=10, help="validation instances per task")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--dim", type=int, default=1024)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    validation = build_validation_set(TASKS, args.per_task, seed=0)  # the features' own draw
    chosen = validation.groupby("task", sort=False).head(-(-args.plants // len(TASKS)))
    chosen = chosen.head(args.plants).reset_index(drop=True)
    rows = [{"id": r["id"], "prompt": r["prompt"], "response": r["response"],
             "source": "demo"} for r in generate_demo_pool(args.pool, seed=0)]
    plants = []
    for number, item in chosen.iterrows():
        kind = "verbatim" if number % 2 == 0 else "paraphrased"
        prompt = item["prompt"] if kind == "verbatim" else paraphrase(item["prompt"])
        plants.append({"id": f"plant-{number:02d}-{kind}", "prompt": prompt,
                       "response": item["response"], "source": f"plant:{item['task']}"})
    pool = rows[: len(rows) // 2] + plants + rows[len(rows) // 2:]  # plants mid-pool
    pool_file = work / "pool.jsonl"
    pool_file.write_text("".join(json.dumps(r) + "\n" for r in pool))
    plant_rows = {i for i, r in enumerate(pool) if r["id"].startswith("plant-")}
    verbatim = {i for i in plant_rows if pool[i]["id"].endswith("verbatim")}

    r = str(work / "run")
    run(["influence", "warmup", "--run", r, "--data", str(pool_file), "--model",
         "smollm2-135m-instruct", "--epochs", "1", "--lora-r", "8", "--lora-alpha", "32",
         "--max-length", "512", "--batch-size", "4", "--effective-batch", "4", "--lr", "1e-4"])
    run(["embed", "--run", r])
    run(["clean", "--run", r, "--benchmarks", ",".join(TASKS)])
    run(["influence", "features", "--run", r, "--tasks", ",".join(TASKS), "--val-per-task",
         str(args.per_task), "--dim", str(args.dim), "--max-length", "512"])
    run(["influence", "matrix", "--run", r])
    print(f"\n{len(pool)} rows ({len(plant_rows)} planted: {len(verbatim)} verbatim, "
          f"{len(plant_rows) - len(verbatim)} paraphrased), budget {args.budget}, tasks "
          f"{', '.join(TASKS)} × {args.per_task} validation instances, LESS features "
          f"(SmolLM2-135M-Instruct, LoRA r 8, d={args.dim})")
    print("| method | plants picked, uncleaned (verbatim / paraphrased) | after cleaning |")
    print("|---|---|---|")
    for method in (*METHODS, "rds"):
        choose = (lambda keep: rds_picks(work, args.budget, keep)) if method == "rds" else \
            (lambda keep, m=method: picks(work, m, args.budget, keep))
        before, after = set(choose("all")), set(choose("none"))
        b, a = before & plant_rows, after & plant_rows
        print(f"| {method} | {len(b)} of {len(plant_rows)} ({len(b & verbatim)} / "
              f"{len(b - verbatim)}) | {len(a)} ({len(a & verbatim)} / {len(a - verbatim)}) |")
    print(f"wall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
