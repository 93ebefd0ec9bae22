"""Run one benchmark on a loaded model under a protocol: prompts → completions → result.

Why one function: the experiment runner, the measurement scripts and anyone with a model must
evaluate the same way (few-shot turns, stop strings, the IFEval median of three sampled runs,
MMLU by log-likelihood), or their numbers would not be comparable.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import Benchmark, EvalItem, EvalResult
from .protocol import BenchmarkSpec, Protocol
from ..spine.progress import Progress



def load_items(benchmark: Benchmark, spec: BenchmarkSpec, data_path: str | Path | None = None,
               limit: int | None = None, seed: int = 0) -> list[EvalItem]:
    """The benchmark's items (a seeded subsample of `limit`) prompted as the spec says."""
    return benchmark.load(data_path, limit=limit, seed=seed, shots=spec.shots)


def run_benchmark(benchmark: Benchmark, items: Sequence[EvalItem], model: Any, tokenizer: Any,
                  spec: BenchmarkSpec, batch_size: int = 8, max_new_tokens: int | None = None,
                  progress: Progress | None = None, use_chat_template: bool | None = None
                  ) -> tuple[EvalResult, dict[str, str]]:
    """The result and the completions it judged.

    Under `scoring="letter-loglik"` (MMLU) the letter with the highest log-likelihood is the
    answer (no generation). Otherwise each item is
    generated for once per seed (greedy: one run); with several sampled runs the result is the
    run with the median score, and every metric is its median over the runs (BIDS A.2: "the
    median result of three random seeds"), with each run's score kept as `seed<s>_score`.
    `use_chat_template` is the format the model was trained on (`LoRAConfig.chat_template`): a
    model is evaluated in the format it was tuned in.
    """
    from ..train.generate import generate  # torch, only when a model runs

    items = list(items)
    if spec.scoring == "letter-loglik":
        from .mmlu import score_mmlu_loglik

        result = score_mmlu_loglik(model, tokenizer, items, batch_size=batch_size,
                                   progress=progress, use_chat_template=use_chat_template)
        return result, {row["id"]: row["extracted"] for row in result.per_item}
    runs = []
    for seed in spec.seeds:
        texts = generate(model, tokenizer, [item.model_input() for item in items],
                         max_new_tokens=max_new_tokens or spec.max_new_tokens,
                         batch_size=batch_size, stop=spec.stop, temperature=spec.temperature,
                         seed=seed, progress=progress, use_chat_template=use_chat_template)
        # a prefilled answer is judged whole: the prefill, then what the model wrote after it
        completions = {item.id: item.prefill + text for item, text in zip(items, texts,
                                                                          strict=True)}
        runs.append((benchmark.evaluate(items, completions), completions))
    return median_run(runs, spec.seeds)


def median_run(runs: Sequence[tuple[EvalResult, dict[str, str]]], seeds: Sequence[int]
               ) -> tuple[EvalResult, dict[str, str]]:
    """One run stands for several: the median-score run, with every metric its median."""
    if len(runs) == 1:
        return runs[0]
    order = sorted(range(len(runs)), key=lambda index: runs[index][0].score)
    result, completions = runs[order[(len(runs) - 1) // 2]]
    metrics = {name: statistics.median(run.metrics[name] for run, _ in runs)
               for name in result.metrics}
    metrics.update({f"seed{seed}_score": run.score for seed, (run, _) in zip(seeds, runs,
                                                                               strict=True)})
    # every seed's verdict on each item, so an interval resamples an item's runs together
    per_item = [{**row, "seeds_correct": [bool(run.per_item[index]["correct"]) for run, _ in runs]}
                for index, row in enumerate(result.per_item)]
    return EvalResult(result.benchmark, result.group, result.n,
                      statistics.median(run.score for run, _ in runs), metrics,
                      per_item), completions


def protocol_label(protocol: Protocol, max_new_tokens: int | None = None) -> str:
    """The protocol's name as results tables show it, naming an override of its lengths."""
    return protocol.name + (f" (max_new_tokens={max_new_tokens})" if max_new_tokens else "")
