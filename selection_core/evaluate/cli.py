"""`python -m selection_core evaluate`: score a predictions file on one benchmark.

Prints one JSON object (benchmark, group, n, score 0-100, metrics) on stdout, so scripts can
read the result; `--out` also writes it with every item's verdict.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..store import write_json
from .predictions import read_predictions
from .registry import BENCHMARKS, get_benchmark


def add_evaluate_parser(subcommands: Any) -> None:
    """Add the `evaluate` subcommand to an argparse subparsers object."""
    parser = subcommands.add_parser(
        "evaluate", help="score a model's predictions on a benchmark",
        description="Score predictions (JSONL: the item id and its `completion`) on a benchmark "
                    "and print the result as one JSON object.")
    parser.add_argument("--benchmark", required=True, choices=list(BENCHMARKS),
                        help="which benchmark the predictions answer")
    parser.add_argument("--predictions", required=True,
                        help="JSONL with the item id (`task_id` for humaneval/mbpp, `key` for "
                             "ifeval, else `id` = 0-based index in the data file) and "
                             "`completion` (for mmlu the letter is enough)")
    parser.add_argument("--data", default=None,
                        help="benchmark data: a local file or folder, or a Hugging Face dataset "
                             "name (default: the copy under ../shared/data)")
    parser.add_argument("--out", default=None,
                        help="also write the result, with every item's verdict, to this JSON")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score items without a prediction as wrong instead of failing")


def run_evaluate(args: argparse.Namespace) -> None:
    """Load the benchmark, read and score the predictions, print the summary as JSON."""
    benchmark = get_benchmark(args.benchmark)
    items = benchmark.load(args.data)
    completions = read_predictions(args.predictions, benchmark, items,
                                   allow_missing=args.allow_missing)
    result = benchmark.evaluate(items, completions)
    summary = result.to_dict(include_items=False)
    if args.out:
        write_json(args.out, result.to_dict())
        summary["out"] = str(args.out)
    print(json.dumps(summary, sort_keys=True))
