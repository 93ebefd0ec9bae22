"""What every benchmark evaluator shares: items, results, where data comes from, subsampling.

Why one module: the nine benchmarks differ only in how they read their data, what they ask a model
and how they judge an answer. Loading (a local file, a Hugging Face dataset name, or the offline
copy under ../shared/data), seeded subsampling for CPU demos and the result's shape are the same
everywhere, so the CLI, the app and comparison tables can treat every benchmark alike.
"""
from __future__ import annotations

import abc
import gzip
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..spine.apportion import allocate_budget
from ..spine.errors import ConfigError, InputError, SelectionError
from ..lm.prompts import Prompt

GROUPS = ("coding", "logic", "knowledge", "math", "instruction", "demo")
# A base model prompted with the plain template tends to go on with a new made-up turn: every
# protocol stops there (`evaluate.protocol`).
DEFAULT_STOP: tuple[str, ...] = ("### Instruction:",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # "name" or "org/name"
_FILE_SUFFIXES = (".json", ".jsonl", ".gz", ".csv", ".parquet", ".txt")


@dataclass(frozen=True)
class EvalItem:
    """One question of a benchmark, self-contained enough to prompt a model and judge its answer."""

    id: str
    prompt: str  # the question as the last user turn (a RawText is sent with no template)
    gold: Any
    gold_response: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    shots: tuple[tuple[str, str], ...] = ()  # few-shot (user, assistant) turns before `prompt`
    prefill: str = ""  # the start of the answer, written for the model (MBPP's "```python\ndef")

    def model_input(self) -> Prompt:
        """What a model is given: the prompt alone, or the few-shot turns and then the prompt;
        with a prefill, a last assistant turn the model continues."""
        if not self.shots and not self.prefill:
            return self.prompt
        turns = [{"role": role, "content": text} for user, assistant in self.shots
                 for role, text in (("user", user), ("assistant", assistant))]
        answer = [{"role": "assistant", "content": self.prefill}] if self.prefill else []
        return [*turns, {"role": "user", "content": self.prompt}, *answer]


@dataclass
class EvalResult:
    """A benchmark's score (0-100), its breakdown, and the verdict on every item."""

    benchmark: str
    group: str
    n: int
    score: float
    metrics: dict[str, float]
    per_item: list[dict[str, Any]]

    def to_dict(self, include_items: bool = True) -> dict[str, Any]:
        """Plain JSON types only, so the result can be written with `store.write_json`."""
        summary: dict[str, Any] = {"benchmark": self.benchmark, "group": self.group, "n": self.n,
                                   "score": self.score, "metrics": dict(self.metrics)}
        if include_items:
            summary["per_item"] = list(self.per_item)
        return summary


@runtime_checkable
class Benchmark(Protocol):
    """What a runner needs from a benchmark: its data and judge (how it is prompted and decoded
    is the protocol's: `evaluate.protocol`)."""

    name: str
    group: str
    id_field: str

    def load(self, data_path: str | Path | None = None, limit: int | None = None,
             seed: int = 0, shots: int = 0) -> list[EvalItem]: ...

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]: ...

    def evaluate(self, items: list[EvalItem], completions: Mapping[str, str]) -> EvalResult: ...


DATA_DIR_ENV = "SELECTION_CORE_DATA"


def default_data_dir() -> Path:
    """The offline copies of the benchmark data: $SELECTION_CORE_DATA when set (an installed
    package has no checkout beside it), else ../shared/data beside the checkout."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


_STRATA = ("skill", "task", "subject", "type")  # meta keys that split a benchmark into parts


def subsample(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """`limit` items drawn with `seed`, kept in their original order (all if limit is None).

    Stratified over the benchmark's parts (demo skills, BBH tasks, MMLU subjects, MATH types):
    each part gets a share proportional to its size, so a small CPU subset still covers them all
    and per-part scores stay meaningful.
    """
    if limit is None:
        return items
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    if limit >= len(items):
        return items
    key = next((k for k in _STRATA if items and k in items[0].meta), None)
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(str(item.meta.get(key)) if key else "", []).append(index)
    names = sorted(groups)
    shares = allocate_budget(np.array([len(groups[g]) for g in names]), limit)
    rng = random.Random(seed)
    keep = sorted(i for g, share in zip(names, shares, strict=True)
                  for i in rng.sample(groups[g], int(share)))
    return [items[index] for index in keep]


def few_shot_dir(data_path: str | Path | None, name: str, default: str, what: str) -> Path:
    """Where a benchmark's few-shot examples are: the folder `name` beside a local data folder
    or file (or beside its parent), else `default` under ../shared/data."""
    if data_path is not None and Path(data_path).exists():
        local = Path(data_path)
        for candidate in (local.parent / name, local.parent.parent / name):
            if candidate.is_dir():
                return candidate
    folder = default_data_dir() / default
    if not folder.is_dir():
        raise InputError(f"{what} not found beside the data nor in ../shared/data (or "
                         f"${DATA_DIR_ENV}); use shots = 0 or provide them", path=str(folder))
    return folder


def lookup(table: Mapping[str, Any], name: str, kind: str) -> Any:
    """`table[name]`, or a ConfigError naming the valid choices."""
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {kind} '{name}'; choose one of: "
                          f"{', '.join(table)}") from None


def is_hub_name(text: str) -> bool:
    """Whether `text` reads as a Hugging Face dataset name rather than a (missing) local file."""
    return bool(_HUB_ID.match(text)) and not text.lower().endswith(_FILE_SUFFIXES)


def load_hub_rows(name: str, config: str | None = None, split: str = "test") -> list[dict]:
    """Rows of a Hugging Face dataset split, for users with internet access (or a warm cache)."""
    try:
        import datasets
    except ImportError as exc:
        raise SelectionError("loading a benchmark from the Hugging Face hub needs the `datasets` "
                             "package: pip install datasets") from exc
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    # `datasets` raises many unrelated types (connection, missing config, bad split, offline mode):
    # each means the same to the user, who gets the reason on one line.
    except Exception as exc:
        where = f"{name}" + (f" (config {config})" if config else "") + f", split {split}"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"could not load {where} from the Hugging Face hub: {reason}. Offline? "
                         "Pass a local copy of the data instead.", field="data") from exc
    return [dict(row) for row in dataset]


def open_text(path: Path) -> IO[str]:
    """A text handle on a plain or gzip-compressed file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; an InputError names a line that is bad."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path=str(path),
                                 line=number) from None
            if not isinstance(record, dict):
                raise InputError(f"expected a JSON object, got {type(record).__name__}",
                                 path=str(path), line=number)
            yield number, record


def require(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path | str,
            line: int | None) -> Any:
    """`record[key]`, or an InputError naming the file, line and field when absent or mistyped
    (JSON true/false is no integer here)."""
    if key not in record:
        raise InputError("missing field", path=str(path), line=line, field=key)
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(t.__name__ for t in kinds)
        raise InputError(f"expected {names}, got {type(value).__name__}", path=str(path),
                         line=line, field=key)
    return value


def accuracy_by(items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]],
                key: str) -> dict[str, float]:
    """Accuracy (0-100) per value of `item.meta[key]`, as metrics named `key/value`."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item, row in zip(items, rows, strict=True):
        counts = totals[str(item.meta[key])]
        counts[0] += bool(row["correct"])
        counts[1] += 1
    return {f"{key}/{value}": 100.0 * right / total
            for value, (right, total) in sorted(totals.items())}


def with_strict_score(result: EvalResult, rows: Sequence[Mapping[str, Any]]) -> EvalResult:
    """Add `strict`: the percentage of items the published, stricter rule credits (each row's
    `strict` flag), reported beside our score (which credits any common answer format)."""
    result.metrics["strict"] = 100.0 * sum(bool(row["strict"]) for row in rows) / len(rows)
    return result


class BaseBenchmark(abc.ABC):
    """Loading and the default evaluation loop; subclasses read data and judge one answer."""

    name: ClassVar[str]
    group: ClassVar[str]
    id_field: ClassVar[str] = "id"  # the field naming an item in a predictions file
    default_path: ClassVar[str]  # relative to default_data_dir()
    hub_name: ClassVar[str]  # the Hugging Face dataset the local copy mirrors

    def load(self, data_path: str | Path | None = None, limit: int | None = None,
             seed: int = 0, shots: int = 0) -> list[EvalItem]:
        """All items, or a seeded subsample of `limit` of them in their original order, each
        with `shots` few-shot examples (from the benchmark's own few-shot source)."""
        items = self._load_all(data_path)
        if not items:
            raise InputError(f"no {self.name} items found",
                             path=None if data_path is None else str(data_path))
        items = subsample(items, limit, seed)
        return self.with_shots(items, shots, data_path) if shots else items

    def load_validation(self, data_path: str | Path | None = None) -> list[EvalItem] | None:
        """The items of the benchmark's validation split, or None where it has none (then
        influence selection draws its validation instances from test, as BIDS A.2 says)."""
        return None

    def with_shots(self, items: list[EvalItem], shots: int,
                   data_path: str | Path | None) -> list[EvalItem]:
        """The items as `shots`-shot prompts; benchmarks without few-shot examples refuse."""
        raise ConfigError(f"{self.name} has no few-shot examples; use shots = 0")

    def local_path(self, data_path: str | Path | None) -> Path | None:
        """The local copy the benchmark reads (given, or the default one), None for a hub
        name."""
        if data_path is None:
            return default_data_dir() / self.default_path
        path = Path(data_path).expanduser()
        return path if path.exists() or not is_hub_name(str(data_path)) else None

    def _load_all(self, data_path: str | Path | None) -> list[EvalItem]:
        if data_path is None:
            path = default_data_dir() / self.default_path
            if not path.exists():
                raise InputError(f"no {self.name} data at the default location; pass a local "
                                 f"copy, or a Hugging Face dataset name such as "
                                 f"'{self.hub_name}', as the data path", path=str(path))
            return self.read_local(path)
        path = Path(data_path).expanduser()
        if path.exists():
            return self.read_local(path)
        if is_hub_name(str(data_path)):
            return self.read_hub(str(data_path))
        raise InputError("data file or folder not found", path=str(path))

    @abc.abstractmethod
    def read_local(self, path: Path) -> list[EvalItem]:
        """Items from a local copy laid out like the one under ../shared/data."""

    @abc.abstractmethod
    def read_hub(self, name: str) -> list[EvalItem]:
        """Items from a Hugging Face dataset laid out like `hub_name`."""

    @abc.abstractmethod
    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        """{"correct": bool, ...details} for one completion."""

    def evaluate(self, items: list[EvalItem], completions: Mapping[str, str]) -> EvalResult:
        """Judge every item; one without a completion is judged on an empty answer (wrong)."""
        rows = [self._row(item, completions, self.score_item(item, completions.get(item.id, "")))
                for item in items]
        return self.summarise(items, rows)

    @staticmethod
    def _row(item: EvalItem, completions: Mapping[str, str],
             details: Mapping[str, Any]) -> dict[str, Any]:
        row = {"id": item.id, **details}
        if item.id not in completions:
            row["missing"] = True
        return row

    def summarise(self, items: Sequence[EvalItem], rows: list[dict[str, Any]]) -> EvalResult:
        """Score = percentage correct, with `breakdown` metrics and the count of missing answers."""
        if not rows:
            raise ConfigError(f"nothing to evaluate: no {self.name} items")
        score = 100.0 * sum(bool(row["correct"]) for row in rows) / len(rows)
        metrics = {"accuracy": score, "missing": float(sum("missing" in row for row in rows)),
                   **self.breakdown(items, rows)}
        return EvalResult(self.name, self.group, len(rows), score, metrics, rows)

    def breakdown(self, items: Sequence[EvalItem], rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, float]:
        """Extra metrics (per task, subject, skill, ...); none by default."""
        return {}
