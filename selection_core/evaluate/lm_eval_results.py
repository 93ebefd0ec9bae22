"""Read an lm-evaluation-harness results JSON into rows comparable with our own scores.

Why: models are often evaluated with lm-eval as well (or only), and comparison tables need its
numbers under our benchmark names and on our 0-100 scale. lm-eval writes
`"results": {task: {"metric,filter": value, ...}}` with values in 0-1; task names differ from
ours (`gsm_plus`, `minerva_math_algebra`, `bbh_cot_fewshot_navigate`, `mmlu_anatomy`, ...), and
some families (minerva_math; any family run as bare subtasks) have no aggregate row, so one is
computed here: the mean over subtasks, weighted by their sizes (`n-samples`) as lm-eval does.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spine.errors import InputError
from .bbh import TASKS as BBH_TASKS

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations", "security_studies",
    "sociology", "us_foreign_policy", "virology", "world_religions")
MATH_SUBJECTS = ("algebra", "counting_and_prob", "geometry", "intermediate_algebra",
                 "num_theory", "prealgebra", "precalc")
MMLU_CATEGORIES = ("stem", "other", "social_sciences", "humanities")
# lm-eval metrics that are fractions in 0-1 (shown as percentages); others are kept as they are.
FRACTION_METRICS = frozenset({
    "acc", "acc_norm", "exact_match", "em", "f1", "mcc", "mc1", "mc2", "pass@1", "pass_at_1",
    "pass@10", "math_verify", "prompt_level_strict_acc", "prompt_level_loose_acc",
    "inst_level_strict_acc", "inst_level_loose_acc"})


@dataclass(frozen=True)
class _Family:
    """lm-eval tasks that are one of our benchmarks: the task-name pattern (group `head`: the
    family's own task or group, `sub`: a subtask) and the headline metrics and filters, best
    first."""

    benchmark: str
    pattern: re.Pattern[str]
    metrics: tuple[str, ...]
    filters: tuple[str, ...] = ()


def _alternatives(names: tuple[str, ...]) -> str:
    return "|".join(sorted(names, key=len, reverse=True))  # longest first: no prefix wins early


_FAMILIES = (
    _Family("humaneval", re.compile(r"(?P<head>humaneval(?:_instruct)?)"), ("pass@1",)),
    _Family("mbpp", re.compile(r"(?P<head>mbpp(?:_instruct)?)"), ("pass_at_1", "pass@1")),
    _Family("gsm8k", re.compile(r"(?P<head>gsm8k(?:_cot(?:_zeroshot|_llama|_self_consistency)?)?)"),
            ("exact_match",), ("flexible-extract", "strict-match")),
    _Family("gsm-plus", re.compile(r"(?P<head>gsm_plus(?:_mini)?)"), ("exact_match",),
            ("flexible-extract", "strict-match")),
    _Family("math", re.compile(rf"(?P<head>(?:minerva|hendrycks)_math)"
                               rf"(?:_(?P<sub>{_alternatives(MATH_SUBJECTS)}))?"),
            ("exact_match", "math_verify")),
    _Family("bbh", re.compile(r"(?P<head>bbh(?:_cot_fewshot|_cot_zeroshot|_fewshot|_zeroshot)?)"
                              rf"(?:_(?P<sub>{_alternatives(BBH_TASKS)}))?"),
            ("exact_match",), ("get-answer", "flexible-extract", "strict-match", "none")),
    _Family("mmlu", re.compile(
        r"(?P<head>mmlu(?:_continuation|_generative|_flan_n_shot_generative"
        r"|_flan_n_shot_loglikelihood|_flan_cot_fewshot|_flan_cot_zeroshot)?)"
        rf"(?:_(?P<sub>{_alternatives(MMLU_SUBJECTS + MMLU_CATEGORIES)}))?"),
            ("acc", "exact_match")),
    _Family("ifeval", re.compile(r"(?P<head>ifeval)"), ("prompt_level_strict_acc",)),
)


def import_lm_eval_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows {benchmark, task, metric ("name,filter"), score, percent, primary}.

    `benchmark` is our name where the task is known, else lm-eval's task name. `score` is 0-100
    when `percent` (a fraction metric), else lm-eval's value. `primary` marks the headline number
    of a benchmark's task or group (the one to compare with our `score`); a family given only as
    subtasks gets an aggregate row with `subtasks` = how many were averaged.
    """
    path = Path(path)
    document = _read(path)
    tasks = _task_metrics(document, path)
    sizes = _sizes(document)
    rows: list[dict[str, Any]] = []
    subtasks: dict[tuple[_Family, str], list[str]] = defaultdict(list)
    for task, metrics in tasks.items():
        family, head, sub = _classify(task)
        if family and sub and sub not in MMLU_CATEGORIES:  # categories are aggregates already
            subtasks[(family, head)].append(task)
        headline = _headline(family, metrics) if family and not sub else None
        for key, value in metrics.items():
            rows.append(_row(family.benchmark if family else task, task, key, value,
                             key == headline))
    for (family, head), members in subtasks.items():
        if head in tasks:
            continue  # lm-eval wrote the group's aggregate itself
        rows += _aggregate(family, head, {task: tasks[task] for task in members}, sizes)
    return rows


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("lm-eval results file not found", path=str(path))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=str(path)) from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise InputError("expected lm-eval's results JSON: an object with a 'results' object",
                         path=str(path), field="results")
    return document


def _task_metrics(document: dict[str, Any], path: Path) -> dict[str, dict[str, float]]:
    """{task: {"metric,filter": value}} from `results` (and `groups`, written by older lm-eval),
    without aliases, standard errors and values that are not numbers."""
    sections = [document["results"]]
    if isinstance(document.get("groups"), dict):
        sections.append(document["groups"])
    tasks: dict[str, dict[str, float]] = {}
    for section in sections:
        for task, metrics in section.items():
            if not isinstance(metrics, dict):
                raise InputError(f"expected an object of metrics for task '{task}'",
                                 path=str(path), field="results")
            numeric = {key: float(value) for key, value in metrics.items()
                       if key != "alias" and not key.split(",")[0].endswith("_stderr")
                       and isinstance(value, int | float) and not isinstance(value, bool)}
            tasks.setdefault(task, numeric)
    return tasks


def _sizes(document: dict[str, Any]) -> dict[str, float]:
    """Items per task from `n-samples` (effective count), used to weight subtask means."""
    sizes = {}
    for task, counts in (document.get("n-samples") or {}).items():
        if isinstance(counts, dict) and isinstance(counts.get("effective"), int | float):
            sizes[task] = float(counts["effective"])
    return sizes


def _classify(task: str) -> tuple[_Family | None, str, str | None]:
    for family in _FAMILIES:
        match = family.pattern.fullmatch(task)
        if match:
            return family, match.group("head"), match.groupdict().get("sub")
    return None, task, None


def _headline(family: _Family, metrics: dict[str, float]) -> str | None:
    """The metric key that is the family's headline number: best metric, then best filter."""
    for metric in family.metrics:
        keys = [key for key in metrics if key.split(",")[0] == metric]
        for wanted in family.filters:
            for key in keys:
                if key.partition(",")[2] == wanted:
                    return key
        if keys:
            return keys[0]
    return None


def _row(benchmark: str, task: str, key: str, value: float, primary: bool) -> dict[str, Any]:
    percent = key.split(",")[0] in FRACTION_METRICS
    return {"benchmark": benchmark, "task": task, "metric": key,
            "score": 100.0 * value if percent else value, "percent": percent,
            "primary": primary}


def _aggregate(family: _Family, head: str, members: dict[str, dict[str, float]],
               sizes: dict[str, float]) -> list[dict[str, Any]]:
    """Size-weighted means over subtasks of each metric key that every subtask reports."""
    shared = set.intersection(*(set(metrics) for metrics in members.values()))
    weights = {task: sizes.get(task, 1.0) for task in members}
    total = sum(weights.values())
    means = {key: sum(metrics[key] * weights[task] for task, metrics in members.items()) / total
             for key in sorted(shared)}
    headline = _headline(family, means)
    rows = []
    for key, value in means.items():
        row = _row(family.benchmark, head, key, value, key == headline)
        row["subtasks"] = len(members)
        rows.append(row)
    return rows
