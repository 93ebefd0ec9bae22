"""How sure a score is: standard errors, 95 % intervals and paired differences, from the per-item
verdicts every stored result keeps.

Why a bootstrap through `scipy.stats.bootstrap` and not a formula: the scores are not all plain
means (BBH's items fall in 27 subtasks, IFEval's score is the median of three sampled runs, the
macro average spans every benchmark), and one resampling scheme serves them all:
- scipy resamples each *sample* it is given independently, so a benchmark's strata (BBH's
  subtasks) are passed as separate samples — resampled within each subtask;
- scipy resamples the *last axis* of a sample with the same indices for every leading row, so the
  rows of one sample are the methods evaluated on the same items — a *paired* resample;
- IFEval's per-seed verdicts are packed into one integer per item (bit s = seed s correct), so an
  item's seeds always travel together;
- a method trained on several seeded selections (the random baseline) gets one more sample, its
  seed indices, so the seed-to-seed spread is resampled together with the items.
Intervals are percentile intervals (robust for 0/1 data, where BCa can degenerate); the standard
error is the bootstrap distribution's standard deviation. All scores are in points (0–100).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..spine.errors import InputError

CONFIDENCE = 0.95
RESAMPLES = 2000
POWER = 0.80
STRATIFIED = {"bbh": "task"}  # benchmarks resampled within parts: per-item field naming the part
_BUDGET_CELLS = 20_000_000  # values one vectorised batch of resamples may hold


@dataclass(frozen=True)
class Verdicts:
    """A result's items as the bootstrap reads them: `values[i]` is item `ids[i]`'s verdict
    (1/0, or a partial credit), or its seeds' 0/1 verdicts packed as bits when `seeds` > 1."""

    benchmark: str
    ids: tuple[str, ...]
    values: np.ndarray
    strata: tuple[str, ...]  # one label per item ("" when the benchmark has no parts)
    seeds: int = 1

    def subset(self, keep: Sequence[str]) -> Verdicts:
        """The verdicts of the items `keep`, in that order (every id must be present)."""
        where = {item: index for index, item in enumerate(self.ids)}
        index = np.array([where[item] for item in keep], dtype=int)
        return Verdicts(self.benchmark, tuple(keep), self.values[index],
                        tuple(self.strata[i] for i in index), self.seeds)

    def item_means(self) -> np.ndarray:
        """Each item's verdict averaged over seeds (what a paired difference compares)."""
        return _unpack(self.values, self.seeds).mean(axis=0) if self.seeds > 1 else self.values


def verdicts(result: Mapping) -> Verdicts | None:
    """The per-item verdicts of a stored result (an `evaluate --out` file or an experiment's
    result), or None when it kept none (older imports)."""
    rows = result.get("per_item") or []
    if not rows:
        return None
    benchmark = str(result.get("benchmark", ""))
    part = STRATIFIED.get(benchmark)
    seeds = len(rows[0].get("seeds_correct") or []) or 1
    values = np.empty(len(rows), dtype=np.float64)
    for index, row in enumerate(rows):
        if "correct" not in row:
            raise InputError(f"item {index} of the {benchmark} result has no `correct` verdict",
                             field="per_item")
        if seeds > 1:
            flags = row.get("seeds_correct") or []
            if len(flags) != seeds:
                raise InputError(f"item {row.get('id')} has {len(flags)} seed verdicts, the "
                                 f"others {seeds}", field="seeds_correct")
            values[index] = sum(int(bool(flag)) << seed for seed, flag in enumerate(flags))
        else:
            values[index] = float(row["correct"])
    strata = tuple(str(row.get(part, "")) if part else "" for row in rows)
    return Verdicts(benchmark, tuple(str(row.get("id")) for row in rows), values, strata, seeds)


def _unpack(values: np.ndarray, seeds: int) -> np.ndarray:
    """Packed seed verdicts (any shape) → a leading axis of 0/1 per seed."""
    packed = values.astype(np.int64)
    return np.stack([(packed >> seed) & 1 for seed in range(seeds)])


@dataclass(frozen=True)
class _Layout:
    """Where one benchmark's strata sit among the bootstrap's samples."""

    first: int
    count: int
    seeds: int
    n: int


def _benchmark_score(samples: Sequence[np.ndarray], layout: _Layout) -> np.ndarray:
    """Points over the items of every stratum (resampled shape rows × batch × items): the mean
    over all items (the kit's aggregate), IFEval's the median over its seeds of that mean."""
    parts = samples[layout.first:layout.first + layout.count]
    if layout.seeds == 1:
        total = sum(part.sum(axis=-1) for part in parts)
        return 100.0 * total / layout.n
    per_seed = sum(_unpack(part, layout.seeds).sum(axis=-1) for part in parts)
    return 100.0 * np.median(per_seed, axis=0) / layout.n


def _unresampled(samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The samples shaped as one resample of themselves (rows × 1 × items): the statistics'
    point estimates come from the same code as their bootstrap distributions."""
    return [sample[:, None, :] for sample in samples]


@dataclass(frozen=True)
class Interval:
    """A score or a difference in points, with its standard error and 95 % interval."""

    value: float
    stderr: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _strata_samples(rows: Sequence[Verdicts]) -> tuple[list[np.ndarray], _Layout]:
    """One sample per stratum, the methods as leading rows (paired over the items)."""
    first = rows[0]
    labels = sorted(set(first.strata))
    samples = []
    for label in labels:
        index = [i for i, stratum in enumerate(first.strata) if stratum == label]
        samples.append(np.stack([row.values[index] for row in rows]))
    return samples, _Layout(0, len(samples), first.seeds, len(first.ids))


def _same_items(rows: Sequence[Verdicts]) -> None:
    first = rows[0]
    for row in rows[1:]:
        if row.benchmark != first.benchmark:
            raise InputError(f"different benchmarks: {first.benchmark} and {row.benchmark}")
        if row.ids != first.ids:
            raise InputError(f"different {first.benchmark} item sets ({len(first.ids)} and "
                             f"{len(row.ids)} items, {len(set(first.ids) ^ set(row.ids))} "
                             "not in both)")
        if row.seeds != first.seeds:
            raise InputError(f"{first.benchmark}: {first.seeds} and {row.seeds} sampled runs")


def _batch(rows: int, items: int, resamples: int) -> int:
    return max(1, min(resamples, _BUDGET_CELLS // max(1, rows * items)))


def score_interval(result: Verdicts, resamples: int = RESAMPLES, seed: int = 0,
                   confidence: float = CONFIDENCE) -> Interval:
    """One result's score with its standard error and interval (strata and seeds kept)."""
    samples, layout = _strata_samples([result])
    value = float(_benchmark_score(_unresampled(samples), layout)[0, 0])
    if len(result.ids) < 2:
        return Interval(value, float("nan"), float("nan"), float("nan"), len(result.ids))
    boot = stats.bootstrap(
        samples, lambda *parts, axis: _benchmark_score(parts, layout)[0],
        n_resamples=resamples, confidence_level=confidence, method="percentile",
        vectorized=True, axis=-1, rng=np.random.default_rng(seed),
        batch=_batch(1, len(result.ids), resamples))
    return Interval(value, float(boot.standard_error), float(boot.confidence_interval.low),
                    float(boot.confidence_interval.high), len(result.ids))


@dataclass(frozen=True)
class Comparison:
    """`b − a` on the same items: the difference, its interval and a two-sided p-value."""

    benchmark: str
    n: int
    a: float
    b: float
    delta: Interval
    p_value: float


def compare(a: Verdicts, b: Verdicts, resamples: int = RESAMPLES, seed: int = 0,
            confidence: float = CONFIDENCE) -> Comparison:
    """The paired difference of two results on the same items: a bootstrap interval over items
    (strata and seeds kept) and a sign-flip permutation p-value (`scipy.stats.permutation_test`,
    each item's two verdicts swapped or not)."""
    _same_items([a, b])
    samples, layout = _strata_samples([a, b])
    original = _benchmark_score(_unresampled(samples), layout)[:, 0]
    delta_value = float(original[1] - original[0])

    def difference(*parts: np.ndarray, axis: int) -> np.ndarray:
        scores = _benchmark_score(parts, layout)
        return scores[1] - scores[0]

    if len(a.ids) < 2:
        interval = Interval(delta_value, float("nan"), float("nan"), float("nan"), len(a.ids))
        return Comparison(a.benchmark, len(a.ids), float(original[0]), float(original[1]),
                          interval, float("nan"))
    boot = stats.bootstrap(samples, difference, n_resamples=resamples,
                           confidence_level=confidence, method="percentile", vectorized=True,
                           axis=-1, rng=np.random.default_rng(seed),
                           batch=_batch(2, len(a.ids), resamples))
    interval = Interval(delta_value, float(boot.standard_error),
                        float(boot.confidence_interval.low), float(boot.confidence_interval.high),
                        len(a.ids))
    return Comparison(a.benchmark, len(a.ids), float(original[0]), float(original[1]), interval,
                      _paired_p_value(a, b, layout, resamples, seed))


def _paired_p_value(a: Verdicts, b: Verdicts, layout: _Layout, resamples: int,
                    seed: int) -> float:
    if np.array_equal(a.values, b.values):
        return 1.0
    strata = np.array(a.strata)
    labels = sorted(set(a.strata))

    def statistic(first: np.ndarray, second: np.ndarray, axis: int) -> np.ndarray:
        parts = []
        for label in labels:
            mask = strata == label
            parts.append(np.stack([first[..., mask], second[..., mask]]))
        scores = _benchmark_score([p[:, None, ...] if p.ndim == 2 else p for p in parts], layout)
        return (scores[1] - scores[0]).reshape(first.shape[:-1])

    test = stats.permutation_test((a.values, b.values), statistic, permutation_type="samples",
                                  vectorized=True, n_resamples=max(resamples, 9999),
                                  alternative="two-sided", rng=np.random.default_rng(seed),
                                  batch=_batch(2, len(a.ids), resamples))
    return float(test.pvalue)


def minimum_detectable_difference(rows: Sequence[Verdicts], power: float = POWER,
                                  confidence: float = CONFIDENCE) -> float:
    """The smallest true difference (points) a paired two-sided test at `confidence` finds with
    probability `power` on these items: (z₁₋α/₂ + z_power) · σ_d / √n, where σ_d² is the
    variance of the per-item difference, averaged over every pair of the given results (their
    observed agreement: two methods that disagree on few items can show small differences).
    NaN where they agree on every item (all wrong, say): that agreement says nothing of σ_d."""
    if len(rows) < 2:
        return float("nan")
    _same_items(rows)
    means = np.stack([row.item_means() for row in rows])
    variances = [np.var(means[i] - means[j], ddof=1) for i in range(len(rows))
                 for j in range(i + 1, len(rows))]
    n = means.shape[1]
    if n < 2 or np.mean(variances) == 0:  # the results never disagree: no σ_d to plan from
        return float("nan")
    z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power)
    return float(100.0 * z * np.sqrt(np.mean(variances) / n))


@dataclass
class BlockIntervals:
    """The intervals of one budget's block of a results table.

    `scores[(method, column)]`, `vs_random[(method, column)]` and `vs_best[(method, column)]`
    are Intervals; a column is a benchmark or `macro`."""

    scores: dict[tuple[str, str], Interval]
    vs_random: dict[tuple[str, str], Interval]
    vs_best: dict[tuple[str, str], Interval]


MACRO = "macro"


def block_intervals(block: Mapping[str, Mapping[str, Sequence[Verdicts]]],
                    random_method: str | None = "random", resamples: int = RESAMPLES,
                    seed: int = 0, confidence: float = CONFIDENCE) -> BlockIntervals:
    """Intervals for every method × benchmark (and the macro average) of one budget, from one
    joint bootstrap: the items of every benchmark resampled (within strata), paired across the
    methods, and the seeds of a method with several seeded runs resampled with them.

    `block[method][benchmark]` lists the method's runs (one per seed) on that benchmark; every
    run of a benchmark must cover the same items. Δ vs random and Δ vs the column's best are
    paired differences; the macro average is the mean over the benchmarks every method has.
    """
    methods = list(block)
    benchmarks = sorted({b for runs in block.values() for b in runs})
    benchmarks = [b for b in benchmarks if all(block[m].get(b) for m in methods)]
    if not methods or not benchmarks:
        return BlockIntervals({}, {}, {})
    units = [(method, index) for method in methods
             for index in range(max(len(block[method][b]) for b in benchmarks))]
    samples: list[np.ndarray] = []
    layouts: dict[str, _Layout] = {}
    for benchmark in benchmarks:
        runs = [block[method][benchmark][index] for method, index in units]
        _same_items(runs)
        parts, layout = _strata_samples(runs)
        layouts[benchmark] = _Layout(len(samples), layout.count, layout.seeds, layout.n)
        samples += parts
    seeded = {m: len(block[m][benchmarks[0]]) for m in methods if len(block[m][benchmarks[0]]) > 1}
    seed_samples = {m: len(samples) + i for i, m in enumerate(seeded)}
    samples += [np.arange(count, dtype=np.float64)[None, :] for count in seeded.values()]
    unit_rows = {m: [i for i, (method, _) in enumerate(units) if method == m] for m in methods}
    columns = [*benchmarks, MACRO]

    def method_scores(parts: Sequence[np.ndarray]) -> np.ndarray:
        """methods × columns × batch."""
        per_unit = np.stack([_benchmark_score(parts, layouts[b]) for b in benchmarks], axis=1)
        rows = []
        for method in methods:
            scores = per_unit[unit_rows[method]]  # runs × benchmarks × batch
            if method in seeded:
                drawn = parts[seed_samples[method]][0].astype(int)  # batch × runs
                picked = np.take_along_axis(scores.transpose(2, 0, 1), drawn[:, :, None], axis=1)
                rows.append(picked.mean(axis=1).T)  # benchmarks × batch
            else:
                rows.append(scores.mean(axis=0))
        table = np.stack(rows)
        return np.concatenate([table, table.mean(axis=1, keepdims=True)], axis=1)

    original = method_scores(_unresampled(samples))[..., 0]
    best = original.argmax(axis=0)
    random_row = methods.index(random_method) if random_method in methods else None

    def statistic(*parts: np.ndarray, axis: int) -> np.ndarray:
        table = method_scores(parts)
        out = [table, table - table[best, np.arange(len(columns))][None]]
        if random_row is not None:
            out.append(table - table[random_row][None])
        return np.concatenate(out).reshape(-1, table.shape[-1])

    n_total = sum(layout.n for layout in layouts.values())
    if n_total < 2 or min(layout.n for layout in layouts.values()) < 2:
        return BlockIntervals({}, {}, {})
    boot = stats.bootstrap(samples, statistic, n_resamples=resamples,
                           confidence_level=confidence, method="percentile", vectorized=True,
                           axis=-1, rng=np.random.default_rng(seed),
                           batch=_batch(len(units), n_total, resamples))
    shape = (-1, len(methods), len(columns))
    low = boot.confidence_interval.low.reshape(shape)
    high = boot.confidence_interval.high.reshape(shape)
    error = boot.standard_error.reshape(shape)
    point = [original, original - original[best, np.arange(len(columns))][None]]
    if random_row is not None:
        point.append(original - original[random_row][None])
    counts = {**{b: layouts[b].n for b in benchmarks}, MACRO: n_total}

    def cells(part: int) -> dict[tuple[str, str], Interval]:
        return {(m, c): Interval(float(point[part][i, j]), float(error[part, i, j]),
                                 float(low[part, i, j]), float(high[part, i, j]), counts[c])
                for i, m in enumerate(methods) for j, c in enumerate(columns)}

    return BlockIntervals(cells(0), cells(2) if random_row is not None else {}, cells(1))


def held_out(result: Mapping, targeted: Sequence[str]) -> dict[str, object]:
    """What a result reports beside its all-items score: the validation instances among its
    items, and its score and item count without them (the benchmark's own score rule)."""
    found = verdicts(result)
    skip = set(targeted)
    if found is None:
        return {"validation_ids": sorted(skip)}
    kept = found.subset([item for item in found.ids if item not in skip])
    score = float("nan")
    if kept.ids:
        samples, layout = _strata_samples([kept])
        score = float(_benchmark_score(_unresampled(samples), layout)[0, 0])
    return {"validation_ids": [item for item in found.ids if item in skip],
            "held_out_n": len(kept.ids), "held_out_score": score}
