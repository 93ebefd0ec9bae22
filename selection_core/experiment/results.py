"""Per-benchmark results tables in the layout of the BIDS paper's Table 2, and a balance chart.

Columns are grouped by capability (coding, logic, knowledge, math, instruction following — and
the demo pool's skills), followed by the macro average over benchmarks and the difference to
random selection at the same budget; rows are (budget, method). A method run with several seeds
(the random baseline: two, as in both papers) shows the mean of its runs. The best value of each
column within a budget is bold in every export (HTML, Markdown, LaTeX), and every export says
which evaluation protocol produced the numbers: one table never mixes protocols.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..spine.errors import InputError
from ..evaluate.uncertainty import MACRO as UNCERTAINTY_MACRO
from ..evaluate.uncertainty import RESAMPLES, BlockIntervals, Interval, Verdicts, block_intervals, \
    minimum_detectable_difference, verdicts
from ..select.registry import method_rank

GROUPS: dict[str, tuple[str, ...]] = {
    "coding": ("humaneval", "mbpp"),
    "logic": ("bbh",),
    "knowledge": ("mmlu",),
    "math": ("gsm8k", "gsm-plus", "math"),
    "instruction following": ("ifeval",),
    "demo": ("demo",),
}
LABELS = {"humaneval": "HumanEval", "mbpp": "MBPP", "bbh": "BBH", "mmlu": "MMLU",
          "gsm8k": "GSM8K", "gsm-plus": "GSM-Plus", "math": "MATH", "ifeval": "IFEval",
          "demo": "Demo"}
MACRO = "macro avg"
DELTA = "Δ vs random"
HELD_OUT = "held-out"  # the test items no selection targeted (not influence validation instances)
ALL_ITEMS = "all"
PLAIN_BOLD = "◆"  # bold in text-only exports: not significantly worse than the column's best


def _method_key(method: str) -> tuple[int, str]:
    """Sort key: the untuned base model first, then the registered methods in their order
    (`select.registry`), then any other by name."""
    return (-1, method) if method == "base" else method_rank(method)


def _int_budgets(budgets: pd.Series) -> pd.Series:
    """Budgets as ints, 0 for the untuned base model's missing budget."""
    return budgets.astype("Float64").fillna(0).astype(int)


def _group_of(benchmark: str) -> str:
    for group, names in GROUPS.items():
        if benchmark in names or benchmark.split(":")[0] in names:
            return group
    return "other"


def _column_order(benchmarks: list[str]) -> list[tuple[str, str]]:
    ordered = []
    for group, names in GROUPS.items():
        for name in names:
            ordered += [(group, b) for b in sorted(benchmarks) if b == name or
                        b.startswith(f"{name}:")]
    ordered += [(_group_of(b), b) for b in sorted(benchmarks)
                if (_group_of(b), b) not in ordered]
    return ordered


@dataclass
class BenchmarkTable:
    """Scores per (budget, method) row and (group, benchmark) column, with macro average and Δ,
    and — where the results kept their per-item verdicts — every cell's uncertainty."""

    scores: pd.DataFrame  # index (budget, method); columns MultiIndex (group, benchmark)
    best: set[tuple[int, int]]  # (row position, column position) of bold cells
    caption: str = ""  # the protocol, the items, how seeds and intervals are combined
    intervals: dict[tuple[int, int], Interval] = field(default_factory=dict)  # score cells; the
    # Δ column's cell holds the macro average's Δ vs random
    vs_random: dict[tuple[int, str, str], Interval] = field(default_factory=dict)  # (budget,
    # method, benchmark or "macro") → Δ vs random, paired
    counts: dict[str, int] = field(default_factory=dict)  # items per benchmark
    detectable: dict[str, float] = field(default_factory=dict)  # smallest detectable Δ
    items: str = HELD_OUT

    def flat(self) -> pd.DataFrame:
        """One header row (`group / benchmark`) and budget/method as columns (CSV export), then
        per benchmark its standard error, interval, item count and detectable difference, and
        the Δ's interval."""
        frame = self.scores.copy()
        names = [b for _, b in frame.columns]
        frame.columns = [b if g == "" else f"{g} / {LABELS.get(b, b)}" for g, b in frame.columns]
        frame = frame.reset_index()
        for c, name in enumerate(names):
            column = {MACRO: "macro", DELTA: "delta"}.get(name, name)
            for field_name, attribute in (("stderr", "stderr"), ("ci_low", "low"),
                                          ("ci_high", "high")):
                frame[f"{column}_{field_name}"] = [
                    getattr(self.intervals[(r, c)], attribute) if (r, c) in self.intervals
                    else np.nan for r in range(len(frame))]
            if name == DELTA:
                frame["delta_excludes_0"] = [
                    self.intervals[(r, c)].excludes_zero if (r, c) in self.intervals else pd.NA
                    for r in range(len(frame))]
            elif name != MACRO:
                frame[f"{column}_n"] = self.counts.get(name, pd.NA)
                frame[f"{column}_detectable"] = self.detectable.get(name, np.nan)
        frame["items"] = self.items
        return frame


def protocols(results: pd.DataFrame) -> list[str]:
    """The evaluation protocols the results come from (labels as recorded)."""
    if "protocol" not in results.columns:
        return []
    return sorted(str(p) for p in results["protocol"].dropna().unique())


def describe_protocol(label: str) -> str:
    """"Protocol: papers — <its description>" for a recorded protocol label."""
    from ..evaluate.protocol import PROTOCOLS

    known = PROTOCOLS.get(label.split(" (", 1)[0])
    return f"Protocol: {label}" + (f" — {known.description}" if known else "")


def _caption(results: pd.DataFrame) -> str:
    found = protocols(results)
    parts = [describe_protocol(found[0]) if found else "Protocol: not recorded"]
    if "seed" in results.columns:
        seeds = results.dropna(subset=["seed"]).groupby(["budget", "method"])["seed"].nunique()
        for method, count in seeds.groupby(level="method").max().items():
            if count > 1:
                parts.append(f"{method}: mean of {count} seeds")
    if "pool_cleaning" in results.columns:
        notes = sorted(str(n) for n in results["pool_cleaning"].dropna().unique())
        parts += [note[0].upper() + note[1:] for note in notes]
    return ". ".join(parts) + "."


def _held_out_ids(results: pd.DataFrame) -> dict[str, set[str]]:
    """Per benchmark, the item ids used as influence validation instances by any result."""
    targeted: dict[str, set[str]] = {}
    if "validation_ids" not in results.columns:
        return targeted
    for benchmark, ids in zip(results["benchmark"], results["validation_ids"], strict=True):
        if isinstance(ids, (list, tuple, np.ndarray)):
            targeted.setdefault(benchmark, set()).update(str(i) for i in ids)
    return targeted


def _verdict_blocks(results: pd.DataFrame, items: str
                    ) -> tuple[dict[int, dict[str, dict[str, list[Verdicts]]]], dict[str, int],
                               dict[str, int]]:
    """budget → method → benchmark → runs' verdicts (by seed) on the table's items; the item
    count per benchmark; how many validation items were left out per benchmark."""
    targeted = _held_out_ids(results) if items == HELD_OUT else {}
    blocks: dict[int, dict[str, dict[str, list[Verdicts]]]] = {}
    counts: dict[str, int] = {}
    left_out: dict[str, int] = {}
    if "per_item" not in results.columns:
        return blocks, counts, left_out
    ordered = results.sort_values("seed", na_position="first") if "seed" in results.columns \
        else results
    for row in ordered.itertuples():
        found = verdicts({"benchmark": row.benchmark, "per_item": row.per_item}) \
            if isinstance(row.per_item, list) else None
        if found is None:
            continue
        skip = targeted.get(row.benchmark, set())
        if skip:
            kept = [i for i in found.ids if i not in skip]
            left_out[row.benchmark] = len(found.ids) - len(kept)
            found = found.subset(kept)
        counts[row.benchmark] = len(found.ids)
        blocks.setdefault(int(row.budget), {}).setdefault(row.method, {}) \
            .setdefault(row.benchmark, []).append(found)
    return blocks, counts, left_out


def _interval_caption(table: BenchmarkTable, left_out: dict[str, int]) -> str:
    if not table.intervals:
        return " No per-item verdicts: bare means, no intervals."
    counts = ", ".join(f"{LABELS.get(b, b)} n={n}" for b, n in sorted(table.counts.items()))
    which = ("held-out items only (the test items never used as influence validation "
             "instances" + (": " + ", ".join(f"{LABELS.get(b, b)} {n} left out" for b, n in
                                              sorted(left_out.items())) if left_out else
                            ": none were") + ")") if table.items == HELD_OUT else "all test items"
    detectable = ", ".join(f"{LABELS.get(b, b)} {d:.1f}" for b, d in
                           sorted(table.detectable.items()) if np.isfinite(d))
    return (f" Scored on {which}; items per benchmark: {counts}. ± is the standard error; "
            f"intervals are 95 % percentile bootstrap intervals over items ({RESAMPLES:,} "
            "resamples; BBH within subtasks, IFEval's seeds kept together, the macro average "
            "over all benchmarks' items jointly). Δ vs random is paired over the same items, "
            "random's seeds resampled too; * marks a Δ whose interval excludes 0. Bold: not "
            "significantly worse than the column's best within the budget (paired, 95 %)."
            + (f" Smallest difference each benchmark detects (paired, 80 % power, from the "
               f"methods' observed agreement): {detectable} points." if detectable else ""))


def benchmark_table(results: pd.DataFrame, model: str | None = None,
                    protocol: str | None = None, items: str = HELD_OUT) -> BenchmarkTable:
    """Pivot `experiment.load_results` rows into the Table-2 layout (one model, one protocol:
    `protocol` picks it when the results hold several), with intervals where the rows carry
    their per-item verdicts; `items` = "held-out" (default) leaves out every benchmark item
    that served as an influence validation instance, "all" scores every test item."""
    if items not in (HELD_OUT, ALL_ITEMS):
        raise ValueError(f"items must be {HELD_OUT!r} or {ALL_ITEMS!r}, got {items!r}")
    if model is not None:
        results = results[results["model"] == model]
    if protocol is not None:
        results = results[results["protocol"] == protocol]
    elif len(protocols(results)) > 1:
        raise ValueError(f"these results come from several evaluation protocols "
                         f"({', '.join(protocols(results))}); tabulate one at a time")
    if results.empty:
        raise ValueError("no results to tabulate")
    frame = results.assign(budget=_int_budgets(results["budget"]))
    pivot = frame.pivot_table(index=["budget", "method"], columns="benchmark", values="score",
                              aggfunc="mean")
    columns = _column_order(list(pivot.columns))
    pivot = pivot[[b for _, b in columns]]
    pivot.columns = pd.MultiIndex.from_tuples(columns)
    blocks, counts, left_out = _verdict_blocks(frame, items)
    computed = {budget: block_intervals(block) for budget, block in blocks.items()}
    for budget, block in computed.items():
        for (method, column), interval in block.scores.items():
            if column != UNCERTAINTY_MACRO:
                pivot.loc[(budget, method), (_group_of(column), column)] = interval.value
    pivot[("", MACRO)] = pivot.mean(axis=1, skipna=False)
    random_macro = pivot[("", MACRO)].xs("random", level="method") \
        if "random" in pivot.index.get_level_values("method") else pd.Series(dtype=float)
    pivot[("", DELTA)] = [pivot.loc[(b, m), ("", MACRO)] - random_macro[b]
                          if b in random_macro.index and b != 0 and m != "random" else np.nan
                          for b, m in pivot.index]
    order = sorted(pivot.index, key=lambda bm: (bm[0], *_method_key(bm[1])))
    pivot = pivot.loc[order]
    table = BenchmarkTable(pivot, set(), counts=counts, items=items)
    _fill_intervals(table, computed)
    table.best = _bold_cells(pivot, computed)
    table.detectable = {benchmark: minimum_detectable_difference(
        [run for block in blocks.values() for runs in block.values()
         for run in runs.get(benchmark, [])]) for benchmark in counts}
    table.caption = _caption(results) + _interval_caption(table, left_out)
    return table


def _fill_intervals(table: BenchmarkTable, computed: dict[int, BlockIntervals]) -> None:
    columns = list(table.scores.columns)
    for r, (budget, method) in enumerate(table.scores.index):
        block = computed.get(budget)
        if block is None:
            continue
        for c, (_, name) in enumerate(columns):
            key = (method, UNCERTAINTY_MACRO if name == MACRO else name)
            if name == DELTA:
                delta = block.vs_random.get((method, UNCERTAINTY_MACRO))
                if delta is not None and method != "random" and budget != 0:
                    table.intervals[(r, c)] = delta
            elif key in block.scores:
                table.intervals[(r, c)] = block.scores[key]
        for (m, column), delta in block.vs_random.items():
            if m == method and m != "random":
                table.vs_random[(budget, method, column)] = delta


def _bold_cells(pivot: pd.DataFrame, computed: dict[int, BlockIntervals]) -> set[tuple[int, int]]:
    """Per budget and column, the cells not significantly worse than the best (their paired
    interval to the best reaches 0); the best alone where no verdicts were kept."""
    best = set()
    positions = {key: i for i, key in enumerate(pivot.index)}
    for budget_value in pivot.index.get_level_values("budget").unique():
        rows = [positions[key] for key in pivot.index if key[0] == budget_value]
        if len(rows) < 2:
            continue
        block = computed.get(budget_value)
        for c, (_, name) in enumerate(pivot.columns):
            if name == DELTA:
                continue
            key_name = UNCERTAINTY_MACRO if name == MACRO else name
            values = pivot.iloc[rows][(pivot.columns[c])]
            if block is not None and all((pivot.index[r][1], key_name) in block.vs_best
                                         for r in rows):
                best |= {(r, c) for r in rows
                         if block.vs_best[(pivot.index[r][1], key_name)].high >= 0}
            elif values.notna().any():
                top = values.max()
                best |= {(r, c) for r, v in zip(rows, values, strict=True) if v == top}
    return best


def _cell(value: float, bold: bool, fmt: str, signed: bool = False,
          interval: Interval | None = None) -> str:
    if pd.isna(value):
        return "–"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    if interval is not None and np.isfinite(interval.stderr):
        if signed:
            star = "*" if interval.excludes_zero else ""
            text += f" [{interval.low:+.1f}, {interval.high:+.1f}]{star}"
        else:
            text += {"tex": f" $\\pm$ {interval.stderr:.1f}"}.get(fmt, f" ± {interval.stderr:.1f}")
    if bold:
        return {"md": f"**{text}**", "tex": f"\\textbf{{{text}}}",
                "html": f"<b>{text}</b>", "plain": f"{text} {PLAIN_BOLD}"}[fmt]
    return text


def _rows(table: BenchmarkTable, fmt: str) -> list[list[str]]:
    rows = []
    for r, ((budget, method), values) in enumerate(table.scores.iterrows()):
        label_budget = "—" if budget == 0 else str(budget)
        cells = [_cell(v, (r, c) in table.best, fmt, signed=table.scores.columns[c] == ("", DELTA),
                       interval=table.intervals.get((r, c)))
                 for c, v in enumerate(values)]
        rows.append([label_budget, method, *cells])
    return rows


def _footer(table: BenchmarkTable) -> list[list[str]]:
    """The item count and the smallest detectable difference under each benchmark column."""
    if not table.counts:
        return []
    names = [b for _, b in table.scores.columns]
    count = [str(table.counts.get(b, "")) if b not in (MACRO, DELTA) else
             (str(sum(table.counts.values())) if b == MACRO else "") for b in names]
    detectable = [f"{table.detectable[b]:.1f}" if np.isfinite(table.detectable.get(b, np.nan))
                  else "" for b in names]
    return [["", "items (n)", *count], ["", "detectable Δ (80 % power)", *detectable]]


def display_frame(table: BenchmarkTable) -> pd.DataFrame:
    """The table as text cells (a report's table, which escapes markup): bold cells end with
    ◆, the footer rows give each benchmark's items and detectable difference."""
    header = ["budget", "method"] + [LABELS.get(b, b) for _, b in table.scores.columns]
    return pd.DataFrame(_rows(table, "plain") + _footer(table), columns=header)


def to_markdown(table: BenchmarkTable) -> str:
    header = ["budget", "method"] + [
        LABELS.get(b, b) if g in ("", "demo") else f"{g}: {LABELS.get(b, b)}"
        for g, b in table.scores.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(table, "md") + _footer(table)]
    return "\n".join(lines) + f"\n\n*{table.caption}*\n"


def _group_spans(columns: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """(group, how many adjacent columns) for a grouped two-row header."""
    spans: list[tuple[str, int]] = []
    for group, _ in columns:
        if spans and spans[-1][0] == group:
            spans[-1] = (group, spans[-1][1] + 1)
        else:
            spans.append((group, 1))
    return spans


def to_latex(table: BenchmarkTable) -> str:
    columns = list(table.scores.columns)
    spans = _group_spans(columns)
    escape = str.maketrans({"&": r"\&", "%": r"\%", "_": r"\_", "Δ": r"$\Delta$",
                            "±": r"$\pm$"})
    top = " & ".join(["", ""] + [f"\\multicolumn{{{n}}}{{c}}{{{g.title()}}}" if g else
                                 " & ".join([""] * n) for g, n in spans])
    second = " & ".join(["Budget", "Method"] + [LABELS.get(b, b).translate(escape)
                                                for _, b in columns])
    body = [" & ".join(row).translate(str.maketrans({"_": r"\_"})) + r" \\"
            for row in _rows(table, "tex")]
    footer = [" & ".join(row).translate(escape) + r" \\" for row in _footer(table)]
    note = rf"\multicolumn{{{len(columns) + 2}}}{{l}}{{\footnotesize " + \
        table.caption.translate(escape) + r"} \\"
    return "\n".join([r"\begin{tabular}{ll" + "r" * len(columns) + "}", r"\toprule",
                      top + r" \\", second + r" \\", r"\midrule", *body,
                      *([r"\midrule", *footer] if footer else []), r"\bottomrule",
                      note, r"\end{tabular}"]) + "\n"


def to_html(table: BenchmarkTable) -> str:
    """A table with a grouped two-row header and bold bests (the app and the HTML report)."""
    columns = list(table.scores.columns)
    spans = _group_spans(columns)
    top = "".join(f'<th colspan="{n}" style="text-align:center">{html.escape(g.title())}</th>'
                  for g, n in spans)
    second = "".join(f"<th>{html.escape(LABELS.get(b, b))}</th>" for _, b in columns)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in _rows(table, "html"))
    footer = "".join("<tr class=\"footer\">" + "".join(f"<td><i>{html.escape(c)}</i></td>"
                                                       for c in row) + "</tr>"
                     for row in _footer(table))
    return ('<table class="results">'
            f'<caption style="caption-side:bottom">{html.escape(table.caption)}</caption>'
            '<thead><tr><th rowspan="2">budget</th>'
            f'<th rowspan="2">method</th>{top}</tr><tr>{second}</tr></thead>'
            f"<tbody>{body}{footer}</tbody></table>")


def balance_figure(results: pd.DataFrame, budget: int | None = None,
                   title: str | None = "Balance across benchmarks",
                   table: BenchmarkTable | None = None) -> go.Figure:
    """Radar chart: one closed line per method over the benchmarks (at one budget), so a method
    that trades one capability for another shows as a lopsided shape. With the `table`, its
    scores (on its items) are drawn, each with its 95 % interval as a shaded band. Under three
    benchmarks a radar has no shape: grouped bars, with the intervals as error bars."""
    from ..viz.figures import FONT, TEMPLATE, color_for

    frame = results.copy()
    frame["budget"] = _int_budgets(frame["budget"])
    if budget is None:
        budgets = sorted(b for b in frame["budget"].unique() if b != 0)
        budget = budgets[-1] if budgets else 0
    frame = frame[(frame["budget"] == budget) | (frame["method"] == "base")]
    benchmarks = [b for _, b in _column_order(list(frame["benchmark"].unique()))]
    labels = [LABELS.get(b, b) for b in benchmarks]
    radar = len(benchmarks) >= 3
    fig = go.Figure()
    methods = sorted(frame["method"].unique(), key=_method_key)
    for i, method in enumerate(methods):
        scores = frame[frame["method"] == method].groupby("benchmark")["score"].mean()
        values = [float(scores.get(b, np.nan)) for b in benchmarks]
        band = None
        if table is not None:
            values, band = _table_row(table, 0 if method == "base" else budget, method,
                                      benchmarks, values)
        if not radar:
            errors = None if band is None else dict(
                type="data", symmetric=False, array=[h - v for h, v in zip(band[1], values)],
                arrayminus=[v - lo for v, lo in zip(values, band[0])])
            fig.add_trace(go.Bar(x=labels, y=values, name=method, error_y=errors,
                                 marker_color=color_for(i)))
            continue
        if band is not None:
            low, high = band
            fig.add_trace(go.Scatterpolar(
                r=high + high[:1] + low[::-1] + low[-1:], theta=labels + labels[:1] +
                labels[::-1] + labels[-1:], fill="toself", mode="lines", line=dict(width=0),
                fillcolor=color_for(i), opacity=0.18, hoverinfo="skip", showlegend=False,
                legendgroup=method, name=f"{method} 95 % interval"))
        fig.add_trace(go.Scatterpolar(r=values + values[:1], theta=labels + labels[:1],
                                      name=method, mode="lines+markers", legendgroup=method,
                                      line=dict(color=color_for(i), width=2.5)))
    fig.update_layout(template=TEMPLATE, font=FONT, height=460,
                      title=dict(text=f"{title} (budget {budget})" if title else None, x=0.01))
    if radar:
        fig.update_layout(polar=dict(radialaxis=dict(range=[0, 100], ticksuffix="")))
    else:
        fig.update_layout(barmode="group", yaxis=dict(range=[0, 100], title="score (0–100)"))
    return fig


def _table_row(table: BenchmarkTable, budget: int, method: str, benchmarks: list[str],
               fallback: list[float]) -> tuple[list[float], tuple[list[float], list[float]] | None]:
    """A table row's scores over `benchmarks` and, when every cell has one, its interval."""
    if (budget, method) not in table.scores.index:
        return fallback, None
    r = list(table.scores.index).index((budget, method))
    columns = [name for _, name in table.scores.columns]
    cells = [table.intervals.get((r, columns.index(b))) for b in benchmarks]
    values = [float(table.scores.iloc[r][(_group_of(b), b)]) for b in benchmarks]
    if any(cell is None or not np.isfinite(cell.low) for cell in cells):
        return values, None
    return values, ([cell.low for cell in cells], [cell.high for cell in cells])


def delta_forest_figure(table: BenchmarkTable, budget: int,
                        title: str | None = "Δ vs random, with 95 % intervals") -> go.Figure:
    """Forest plot: each method's paired difference to random selection at one budget, per
    benchmark and for the macro average, with its interval; a line at 0 (no difference). The
    methods of one row sit side by side, so their intervals never overlap."""
    from ..viz.figures import FONT, TEMPLATE, color_for

    columns = [b for _, b in table.scores.columns if b not in (MACRO, DELTA)]
    columns += [UNCERTAINTY_MACRO] if len(columns) > 1 else []  # one benchmark: its own macro
    methods = sorted({m for b, m, _ in table.vs_random if b == budget}, key=_method_key)
    step = 0.8 / max(1, len(methods))
    fig = go.Figure()
    for i, method in enumerate(methods):
        cells = [(row, table.vs_random.get((budget, method, c))) for row, c in enumerate(columns)]
        cells = [(row, cell) for row, cell in cells if cell is not None]
        fig.add_trace(go.Scatter(
            x=[cell.value for _, cell in cells],
            y=[row + (i - (len(methods) - 1) / 2) * step for row, _ in cells],
            mode="markers", name=method, marker=dict(color=color_for(i), size=9),
            error_x=dict(type="data", symmetric=False,
                         array=[cell.high - cell.value for _, cell in cells],
                         arrayminus=[cell.value - cell.low for _, cell in cells]),
            customdata=[[cell.low, cell.high, cell.n] for _, cell in cells],
            hovertemplate="Δ %{x:+.1f} [%{customdata[0]:+.1f}, %{customdata[1]:+.1f}], "
                          "n=%{customdata[2]}<extra>" + method + "</extra>"))
    fig.add_vline(x=0, line=dict(color="#888", dash="dash"))
    fig.update_layout(template=TEMPLATE, font=FONT,
                      height=max(300, 140 + len(columns) * (30 + 16 * len(methods))),
                      xaxis_title="points (method − random)",
                      yaxis=dict(tickvals=list(range(len(columns))), autorange="reversed",
                                 ticktext=[MACRO if c == UNCERTAINTY_MACRO else LABELS.get(c, c)
                                           for c in columns], zeroline=False),
                      title=dict(text=f"{title} (budget {budget})" if title else None, x=0.01))
    return fig


PARTS = {"demo": "skill"}  # benchmarks whose tables are also shown per part: the per-item field


def split_parts(results: pd.DataFrame, benchmark: str, part: str) -> pd.DataFrame:
    """`benchmark`'s results as one pseudo-benchmark per part (`demo:world_qa` for the demo's
    skills), each row keeping only that part's per-item verdicts — so `benchmark_table` gives
    every part its own score, interval, paired Δ vs random and item count. Why: a total can hide
    that selection moved one skill and left the others, or traded one for another."""
    rows = []
    for row in results[results["benchmark"] == benchmark].to_dict(orient="records"):
        items = row.get("per_item")
        if not isinstance(items, list) or not items:
            continue
        by_part: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if part not in item:
                raise InputError(f"a {benchmark} item ({item.get('id')}) has no `{part}` "
                                 "field to split by", field="per_item")
            by_part.setdefault(str(item[part]), []).append(item)
        for name, kept in sorted(by_part.items()):
            found = verdicts({"benchmark": benchmark, "per_item": kept})
            rows.append({**row, "benchmark": f"{benchmark}:{name}", "per_item": kept,
                         "n": len(kept), "score": 100.0 * float(found.item_means().mean()),
                         "metrics": {}})
    return pd.DataFrame(rows)
