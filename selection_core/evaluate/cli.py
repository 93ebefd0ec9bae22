"""`python -m selection_core evaluate` scores a predictions file on one benchmark; `prompts` prints
the exact prompts a model is given under a protocol.

`evaluate` prints one JSON object (benchmark, group, n, score 0-100, metrics) on stdout, so
scripts can read the result; `--out` also writes it with every item's verdict (`per_item`: at
least `id` and `correct`), so anyone can diff our verdicts against their harness's.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..spine.errors import ConfigError, InputError
from ..spine.store import read_json, write_json
from .predictions import read_predictions
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS, get_protocol
from .registry import BENCHMARKS, get_benchmark
from .runner import load_items
from .splits import held_out_fields
from .uncertainty import RESAMPLES, Verdicts, compare, verdicts


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
    # beside the all-items score: the score on the items no influence selection targets
    extra = held_out_fields({"benchmark": benchmark.name, "per_item": result.per_item},
                            {benchmark.name: args.data} if args.data else {})
    summary = {**result.to_dict(include_items=False), **extra}
    summary.pop("validation_ids", None)
    summary["validation_items"] = len(extra.get("validation_ids", []))
    if args.out:
        write_json(args.out, {**result.to_dict(), **extra})
        summary["out"] = str(args.out)
    print(json.dumps(summary, sort_keys=True))


def add_compare_parser(subcommands: Any) -> None:
    """Add the `compare` subcommand to an argparse subparsers object."""
    parser = subcommands.add_parser(
        "compare", help="the paired difference of two evaluations of one benchmark",
        description="Compare two `evaluate --out` files of the same benchmark and items: prints "
                    "one JSON object with both scores, delta = b − a in points, its 95 % "
                    "paired bootstrap interval over items and a paired permutation p-value.")
    parser.add_argument("a", help="the first `evaluate --out` JSON (the reference)")
    parser.add_argument("b", help="the second `evaluate --out` JSON")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help=f"bootstrap resamples (default {RESAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="resampling seed (default 0)")


def _stored_verdicts(path: str) -> Verdicts:
    """The per-item verdicts of an `evaluate --out` file, or one line saying what is missing."""
    try:
        result = read_json(path)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror})", path=path) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON result ({exc})", path=path) from None
    if not isinstance(result, dict) or "benchmark" not in result:
        raise InputError("not an `evaluate --out` result (no benchmark)", path=path)
    found = verdicts(result)
    if found is None:
        raise InputError("no per-item verdicts (write it with `evaluate --out`)", path=path,
                         field="per_item")
    return found


def run_compare(args: argparse.Namespace) -> None:
    """Print {benchmark, n, a, b, delta, ci_low, ci_high, p_value} as one JSON line."""
    if args.resamples < 100:
        raise ConfigError(f"--resamples must be at least 100, got {args.resamples}")
    a, b = _stored_verdicts(args.a), _stored_verdicts(args.b)
    if a.benchmark != b.benchmark:
        raise InputError(f"{args.a} is {a.benchmark}, {args.b} is {b.benchmark}: compare two "
                         "results of the same benchmark")
    if set(a.ids) != set(b.ids) or len(a.ids) != len(b.ids):
        raise InputError(f"{args.a} and {args.b} scored different {a.benchmark} items "
                         f"({len(a.ids)} and {len(b.ids)}; {len(set(a.ids) ^ set(b.ids))} not "
                         "in both): a paired comparison needs the same items")
    found = compare(a, b.subset(a.ids), resamples=args.resamples, seed=args.seed)
    print(json.dumps({"benchmark": found.benchmark, "n": found.n, "a": found.a, "b": found.b,
                      "delta": found.delta.value, "ci_low": found.delta.low,
                      "ci_high": found.delta.high, "p_value": found.p_value}))


def add_prompts_parser(subcommands: Any) -> None:
    """Add the `prompts` subcommand to an argparse subparsers object."""
    parser = subcommands.add_parser(
        "prompts", help="print the exact prompts a model sees for a benchmark",
        description="Print the first N prompts of a benchmark's seeded subsample exactly as a "
                    "model is given them under a protocol (few-shot turns and template "
                    "included), with the protocol's generation settings.")
    parser.add_argument("--benchmark", required=True, choices=list(BENCHMARKS))
    parser.add_argument("--n", type=int, default=1, help="how many items (default 1)")
    parser.add_argument("--data", default=None, help="benchmark data, as for `evaluate`")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=list(PROTOCOLS),
                        help=f"evaluation protocol (default {DEFAULT_PROTOCOL})")
    parser.add_argument("--model", default=None,
                        help="render with this model's chat template (default: as a model "
                             "without one sees it, in the plain training template)")
    parser.add_argument("--seed", type=int, default=0, help="subsample seed (default 0)")


def run_prompts(args: argparse.Namespace) -> None:
    """Print each prompt after a header naming the item and the decoding settings."""
    from ..lm.formatting import format_prompt

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    protocol = get_protocol(args.protocol)
    spec = protocol.spec(args.benchmark)
    items = load_items(get_benchmark(args.benchmark), spec, args.data, limit=args.n,
                       seed=args.seed)
    tokenizer = _tokenizer(args.model) if args.model else None
    decoding = "greedy" if spec.temperature == 0 else \
        f"temperature {spec.temperature}, median of {len(spec.seeds)} seeds"
    for item in items:
        print(f"===== {args.benchmark} {item.id} · protocol {protocol.name}: {spec.shots} shots, "
              f"max {spec.max_new_tokens} new tokens, {decoding}, stop {list(spec.stop)} =====")
        print(f"----- follows: {spec.source or 'this project (no reference harness)'} -----")
        print(format_prompt(tokenizer, item.model_input()))


def _tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    from ..lm.loading import resolve_model_source

    return AutoTokenizer.from_pretrained(resolve_model_source(model))
