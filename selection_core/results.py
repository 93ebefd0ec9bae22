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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

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
METHOD_ORDER = ("base", "random", "kmeans-random", "kmeans-closest", "quality-top", "kmq",
                "iterative-kmq", "task-max", "instance-max", "sum", "rds", "bids")


def _method_key(method: str) -> tuple[int, str]:
    """Sort key: methods in METHOD_ORDER first, in that order, then the others by name."""
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return rank, method


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
    """Scores per (budget, method) row and (group, benchmark) column, with macro average and Δ."""

    scores: pd.DataFrame  # index (budget, method); columns MultiIndex (group, benchmark)
    best: set[tuple[int, int]]  # (row position, column position) of bold cells
    caption: str = ""  # the protocol that produced the numbers; how seeded runs are combined

    def flat(self) -> pd.DataFrame:
        """One header row (`group / benchmark`) and budget/method as columns (CSV export)."""
        frame = self.scores.copy()
        frame.columns = [b if g == "" else f"{g} / {LABELS.get(b, b)}" for g, b in frame.columns]
        return frame.reset_index()


def protocols(results: pd.DataFrame) -> list[str]:
    """The evaluation protocols the results come from (labels as recorded)."""
    if "protocol" not in results.columns:
        return []
    return sorted(str(p) for p in results["protocol"].dropna().unique())


def describe_protocol(label: str) -> str:
    """"Protocol: papers — <its description>" for a recorded protocol label."""
    from .evaluate.protocol import PROTOCOLS

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
    return ". ".join(parts) + "."


def benchmark_table(results: pd.DataFrame, model: str | None = None,
                    protocol: str | None = None) -> BenchmarkTable:
    """Pivot `experiment.load_results` rows into the Table-2 layout (one model, one protocol:
    `protocol` picks it when the results hold several)."""
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
    pivot[("", MACRO)] = pivot.mean(axis=1, skipna=False)
    random_macro = pivot[("", MACRO)].xs("random", level="method") \
        if "random" in pivot.index.get_level_values("method") else pd.Series(dtype=float)
    pivot[("", DELTA)] = [pivot.loc[(b, m), ("", MACRO)] - random_macro[b]
                          if b in random_macro.index and b != 0 else np.nan
                          for b, m in pivot.index]
    order = sorted(pivot.index, key=lambda bm: (bm[0], *_method_key(bm[1])))
    pivot = pivot.loc[order]
    best = set()
    positions = {key: i for i, key in enumerate(pivot.index)}
    for budget_value in pivot.index.get_level_values("budget").unique():
        rows = [positions[key] for key in pivot.index if key[0] == budget_value]
        block = pivot.iloc[rows]
        if len(rows) < 2:
            continue
        for c, column in enumerate(pivot.columns):
            if column == ("", DELTA):
                continue
            values = block[column]
            if values.notna().any():
                top = values.max()
                best |= {(r, c) for r, v in zip(rows, values, strict=True) if v == top}
    return BenchmarkTable(pivot, best, _caption(results))


def _cell(value: float, bold: bool, fmt: str, signed: bool = False) -> str:
    if pd.isna(value):
        return "–"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    if bold:
        return {"md": f"**{text}**", "tex": f"\\textbf{{{text}}}",
                "html": f"<b>{text}</b>"}[fmt]
    return text


def _rows(table: BenchmarkTable, fmt: str) -> list[list[str]]:
    rows = []
    for r, ((budget, method), values) in enumerate(table.scores.iterrows()):
        label_budget = "—" if budget == 0 else str(budget)
        cells = [_cell(v, (r, c) in table.best, fmt, signed=table.scores.columns[c] == ("", DELTA))
                 for c, v in enumerate(values)]
        rows.append([label_budget, method, *cells])
    return rows


def to_markdown(table: BenchmarkTable) -> str:
    header = ["budget", "method"] + [
        LABELS.get(b, b) if g in ("", "demo") else f"{g}: {LABELS.get(b, b)}"
        for g, b in table.scores.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(table, "md")]
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
    escape = str.maketrans({"&": r"\&", "%": r"\%", "_": r"\_", "Δ": r"$\Delta$"})
    top = " & ".join(["", ""] + [f"\\multicolumn{{{n}}}{{c}}{{{g.title()}}}" if g else
                                 " & ".join([""] * n) for g, n in spans])
    second = " & ".join(["Budget", "Method"] + [LABELS.get(b, b).translate(escape)
                                                for _, b in columns])
    body = [" & ".join(row).translate(str.maketrans({"_": r"\_"})) + r" \\"
            for row in _rows(table, "tex")]
    note = rf"\multicolumn{{{len(columns) + 2}}}{{l}}{{\footnotesize " + \
        table.caption.translate(escape) + r"} \\"
    return "\n".join([r"\begin{tabular}{ll" + "r" * len(columns) + "}", r"\toprule",
                      top + r" \\", second + r" \\", r"\midrule", *body, r"\bottomrule",
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
    return ('<table class="results">'
            f'<caption style="caption-side:bottom">{html.escape(table.caption)}</caption>'
            '<thead><tr><th rowspan="2">budget</th>'
            f'<th rowspan="2">method</th>{top}</tr><tr>{second}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def balance_figure(results: pd.DataFrame, budget: int | None = None,
                   title: str | None = "Balance across benchmarks") -> go.Figure:
    """Radar chart: one closed line per method over the benchmarks (at one budget), so a method
    that trades one capability for another shows as a lopsided shape."""
    from .viz.figures import FONT, TEMPLATE, color_for

    frame = results.copy()
    frame["budget"] = _int_budgets(frame["budget"])
    if budget is None:
        budgets = sorted(b for b in frame["budget"].unique() if b != 0)
        budget = budgets[-1] if budgets else 0
    frame = frame[(frame["budget"] == budget) | (frame["method"] == "base")]
    benchmarks = [b for _, b in _column_order(list(frame["benchmark"].unique()))]
    fig = go.Figure()
    methods = sorted(frame["method"].unique(), key=_method_key)
    for i, method in enumerate(methods):
        scores = frame[frame["method"] == method].groupby("benchmark")["score"].mean()
        values = [float(scores.get(b, np.nan)) for b in benchmarks]
        labels = [LABELS.get(b, b) for b in benchmarks]
        fig.add_trace(go.Scatterpolar(r=values + values[:1], theta=labels + labels[:1],
                                      name=method, mode="lines+markers",
                                      line=dict(color=color_for(i), width=2.5)))
    fig.update_layout(template=TEMPLATE, font=FONT, height=460,
                      title=dict(text=f"{title} (budget {budget})" if title else None, x=0.01),
                      polar=dict(radialaxis=dict(range=[0, 100], ticksuffix="")))
    return fig


def sub_scores(results: pd.DataFrame, benchmark: str, prefix: str, model: str | None = None
               ) -> pd.DataFrame:
    """A benchmark's breakdown (e.g. the demo's `skill/…` accuracies, BBH's `task/…`) as a
    (budget, method) × part table, on the same 0–100 scale as the scores."""
    part = results[(results["benchmark"] == benchmark) &
                   ((results["model"] == model) if model else True)]
    rows = []
    for row in part.itertuples():
        metrics = row.metrics if isinstance(row.metrics, dict) else {}
        values = {k.removeprefix(prefix): 100 * v if v <= 1 else v
                  for k, v in metrics.items() if k.startswith(prefix)}
        budget = 0 if pd.isna(row.budget) else int(row.budget)
        rows.append({"budget": budget, "method": row.method, **values})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).groupby(["budget", "method"]).mean()
    return frame.loc[sorted(frame.index, key=lambda bm: (bm[0], *_method_key(bm[1])))]
