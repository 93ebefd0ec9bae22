"""What a selection is influential for (Dai et al., 2025): AID and THI, and long tables comparing
methods that the figures in `viz.influence` draw directly.

Pass A for the raw variant and `normalise_columns(A)` (Â) for the normalised one: the paper
analyses LESS on raw A and compares BIDS on Â.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..spine.errors import ConfigError
from ..select.bids import normalise_columns, task_index

THI_LEVELS = ("task", "instance")


def _check_level(level: str) -> None:
    if level not in THI_LEVELS:
        raise ConfigError(f"unknown THI level '{level}'; use one of {', '.join(THI_LEVELS)}")


def aid(A: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Average influence distribution: the column means of A over the selected rows (float64).

    An empty selection has no average: all M values are NaN.
    """
    A = np.asarray(A)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.full(A.shape[1], np.nan)
    return A[rows].mean(axis=0, dtype=np.float64)


def aid_by_task(aid_values: np.ndarray, tasks: np.ndarray) -> pd.DataFrame:
    """One row per task (first-appearance order): mean, population std and count of its
    instances' AID values."""
    aid_values = np.asarray(aid_values, dtype=np.float64)
    names, codes = task_index(tasks, len(aid_values))
    frame = pd.DataFrame({"code": codes, "value": aid_values})
    stats = frame.groupby("code")["value"].agg(mean="mean", std=lambda v: v.std(ddof=0),
                                                n_instances="size")
    return pd.DataFrame({"task": names, "mean": stats["mean"].to_numpy(),
                         "std": stats["std"].to_numpy(),
                         "n_instances": stats["n_instances"].to_numpy()})


def thi(A: np.ndarray, tasks: np.ndarray, rows: np.ndarray, level: str = "task") -> pd.Series:
    """Task of highest influence: per task, how many selected rows influence it most.

    level="task": a row's task is argmax_t (mean of A over t's instances); level="instance":
    the task of the row's single most influenced instance. Ties go to the task listed first.
    Every task appears, with 0 when no row favours it, so methods compare task by task.
    """
    _check_level(level)
    A = np.asarray(A)
    names, codes = task_index(tasks, A.shape[1])
    chosen = A[np.asarray(rows, dtype=np.int64)]
    per_task = np.empty((len(chosen), len(names)))
    for t in range(len(names)):
        part = chosen[:, codes == t]
        per_task[:, t] = part.mean(axis=1, dtype=np.float64) if level == "task" else \
            part.max(axis=1)
    favourite = np.argmax(per_task, axis=1)  # first maximum = first task in task order
    counts = np.bincount(favourite, minlength=len(names))
    return pd.Series(counts, index=pd.Index(names, name="task"), name="count")


def compare_methods(A: np.ndarray, tasks: np.ndarray, selections: Mapping[str, np.ndarray],
                    normalised: bool) -> dict[str, pd.DataFrame]:
    """Long tables for the figures, one row per (method, ...):

    - "thi": method, task, count, share (of the selection; 0 when it is empty), level
      (both THI levels);
    - "aid": method, instance (column), task, value;
    - "aid_task": method, task, mean.

    With `normalised`, every number is computed on Â instead of A.
    """
    matrix = normalise_columns(A) if normalised else np.asarray(A)
    tasks = np.asarray(tasks)
    names, _ = task_index(tasks, matrix.shape[1])
    thi_parts, aid_parts, task_parts = [], [], []
    for method, rows in selections.items():
        for level in THI_LEVELS:
            counts = thi(matrix, tasks, rows, level=level)
            thi_parts.append(pd.DataFrame({
                "method": method, "task": names, "count": counts.to_numpy(),
                "share": counts.to_numpy() / len(rows) if len(rows) else 0.0, "level": level}))
        values = aid(matrix, rows)
        aid_parts.append(pd.DataFrame({"method": method, "instance": np.arange(len(values)),
                                       "task": tasks, "value": values}))
        by_task = aid_by_task(values, tasks)
        task_parts.append(pd.DataFrame({"method": method, "task": by_task["task"],
                                        "mean": by_task["mean"]}))
    columns = {"thi": ["method", "task", "count", "share", "level"],
               "aid": ["method", "instance", "task", "value"],
               "aid_task": ["method", "task", "mean"]}
    parts = {"thi": thi_parts, "aid": aid_parts, "aid_task": task_parts}
    return {key: pd.concat(parts[key], ignore_index=True) if parts[key]
            else pd.DataFrame(columns=columns[key]) for key in columns}


def thi_table(thi_frame: pd.DataFrame, level: str = "task") -> pd.DataFrame:
    """Tasks × methods row counts at one THI level, from `compare_methods(...)["thi"]`.

    The composition table that sits beside the THI bars: counts rather than shares, so it adds
    up to each selection's size; tasks and methods keep the frame's order (not alphabetical).
    """
    _check_level(level)
    frame = thi_frame[thi_frame["level"] == level]
    table = frame.pivot(index="task", columns="method", values="count").reindex(
        index=pd.unique(frame["task"]), columns=pd.unique(frame["method"]))
    table.columns.name = None
    return table.rename_axis("task").reset_index()
