"""The selection methods, one entry each: name, description, family and config, select function,
rationale, what the selection reads, and the place in the app and the result tables.

The CLI (`select --method` choices and help), the API (`KMQSelector(method=…)`), the Selection
page, the rationale (`select.rationale`), the report, the result tables' order and the
experiment's method list all read this registry, so a method is added by one `register(Method(…))`
call (see README, "Adding a method"); the built-in entries are `select.methods`.

Families: "static" methods select on one clustering with a `SelectionConfig`; their `select` is
`(config, labels, quality, distances) -> row indices` and `select.rationale` explains their
rows with the entry's `inclusion`, `how` and `ranks`. "iterative" (iterative kMQ, `iterative.loop.RefinementLoop`) and "influence" methods
(`select.bids.select_on_matrix`, RDS) run as their own stages; their entries give the name,
description and table order.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spine.config import METHOD_TABLE, SelectionConfig, register_once, static_method_names
from ..spine.errors import ConfigError

# A static method's rationale pieces (`select.rationale` has the built-in methods'):
# inclusion(config, labels, quality, budgets, chosen, draws) -> (p per row, exact per row),
# how(config, row, n_rows, probability text, rank) -> the end of the row's "why",
# ranks(labels, quality, distances) -> the per-row rank `how` quotes.
Inclusion = Callable[[SelectionConfig, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int],
                     tuple[np.ndarray, np.ndarray]]
How = Callable[[SelectionConfig, Any, int, str, "int | None"], str]
Ranks = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """One selection method.

    `clustered`: its budget is split over clusters ∝ their size (the rationale's per-cluster
    budgets; otherwise they are what each cluster ended up giving). `inclusion(config, labels,
    quality, budgets, chosen, draws) -> (p, exact)` is each pool row's inclusion probability
    (None: deterministic, 1 for a chosen row); `how(config, row, n_rows, probability, rank)` the
    end of a row's "why" sentence, with `rank` from `ranks(labels, quality, distances)` when the
    method ranks rows by something of its own. `reads`: what a selection reads besides the pool
    and its budget (an experiment recomputes a selection only when one of these changes).
    `order`: the place in the Selection page's list and in result tables."""

    name: str
    description: str
    order: int
    family: str = "static"
    config: type | None = SelectionConfig
    select: Callable[..., np.ndarray] | None = None
    clustered: bool = False
    needs_quality: bool = False
    inclusion: Inclusion | None = None
    how: How | None = None
    ranks: Ranks | None = None
    reads: frozenset[str] = frozenset()


METHODS: dict[str, Method] = METHOD_TABLE  # the one table: the configs read its names


def register(method: Method) -> Method:
    """Add a method (a second method of the same name is refused)."""
    return register_once(METHODS, method.name, method, "selection methods")


def methods(family: str | None = None) -> list[Method]:
    """The registered methods of `family` (all by default), in their order."""
    return sorted((m for m in METHODS.values() if family is None or m.family == family),
                  key=lambda m: (m.order, m.name))


def method_names(family: str = "static") -> tuple[str, ...]:
    """The names `SelectionConfig.method` accepts (static), or another family's."""
    return static_method_names() if family == "static" else \
        tuple(m.name for m in methods(family))


def get_method(name: str, family: str = "static") -> Method:
    method = METHODS.get(name)
    if method is None or method.family != family:
        raise ConfigError(f"unknown method '{name}'; use {', '.join(method_names(family))}")
    return method


def method_rank(name: str) -> tuple[int, str]:
    """Sort key of a method in result tables: registered methods in their order, then any
    other by name."""
    method = METHODS.get(name)
    return (method.order, name) if method else (10**9, name)


def description(name: str) -> str:
    """A method's one-line description ("" for a name not registered); "iterative" is the
    iterative kMQ of a selection saved by the Iterative page."""
    method = METHODS.get("iterative-kmq" if name == "iterative" else name)
    return method.description if method else ""
