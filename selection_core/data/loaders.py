"""Load instruction pools from files or Hugging Face datasets into one normalised schema.

Every pool row has `id`, `prompt`, `response`, `source`, plus the record's other fields. Known
shapes (detected per file from its first record):

- normalised: `prompt` + `response` (or `completion`)
- chat:       `messages` [{role, content}] (or ShareGPT `conversations` [{from, value}]);
              prompt = system + user turns up to the last assistant turn, response = that turn
- dolly:      `instruction`, `response`, optional `context`
- alpaca:     `instruction`, `output`, optional `input`
- gsm8k:      `question`, `answer`

Any problem raises one `InputError` naming the file, the line (or row) and the field.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError

CORE_COLUMNS = ("id", "prompt", "response", "source")
_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".csv", ".parquet")
_GENERIC_STEMS = {"train", "test", "dev", "val", "valid", "validation", "data", "dataset"}


@dataclass(frozen=True)
class Shape:
    """How one record layout maps onto (prompt, response)."""

    name: str
    prompt_fields: tuple[str, ...]  # joined with a blank line; the first is required
    response_field: str
    optional: tuple[str, ...] = ()

    @property
    def consumed(self) -> tuple[str, ...]:
        return (*self.prompt_fields, self.response_field, *self.optional)


SHAPES = (
    Shape("normalised", ("prompt",), "response"),
    Shape("normalised", ("prompt",), "completion"),
    Shape("chat", ("messages",), "messages"),
    Shape("sharegpt", ("conversations",), "conversations"),
    Shape("dolly", ("instruction", "context"), "response", optional=("context",)),
    Shape("alpaca", ("instruction", "input"), "output", optional=("input",)),
    Shape("gsm8k", ("question",), "answer"),
)
_CHAT_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant",
               "gpt": "assistant", "model": "assistant", "bot": "assistant"}


@dataclass(frozen=True)
class DataSpec:
    """One input: a file, a `load_from_disk` folder or a HF dataset name, with its source label."""

    location: str
    source: str | None = None
    split: str = "train"

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """`[SOURCE=]LOCATION[@SPLIT]`: e.g. `code=data/code.jsonl`, `tatsu-lab/alpaca@train`."""
        source = None
        if "=" in text and not Path(text).exists():
            source, text = text.split("=", 1)
        split = "train"
        if "@" in text and not Path(text).exists():
            text, split = text.rsplit("@", 1)
        return cls(location=text, source=source or None, split=split)

    @property
    def label(self) -> str:
        if self.source:
            return self.source
        path = Path(self.location.rstrip("/"))
        name = path.name
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name in _GENERIC_STEMS and path.parent.name:  # gsm8k/train.jsonl -> gsm8k-train
            name = f"{path.parent.name}-{name}"
        return name


# --------------------------------------------------------------------------- raw records
def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                         path=str(path), line=line) from None


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"not a valid gzip file ({exc})", path=str(path)) from None
    return _decode(path, raw)


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})",
                             path=str(path), line=number) from None


def _json_array_records(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line where it starts."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if not stripped.startswith("["):
        if stripped.startswith("{") and "\n{" in stripped:  # JSON Lines saved as .json
            yield from _jsonl_records(path, text)
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg})", path=str(path), line=exc.lineno) from None
        raise InputError(f"expected a JSON array of records, got a JSON {type(obj).__name__}",
                         path=str(path), line=1)
    pos = text.index("[") + 1
    length = len(text)
    while True:
        while pos < length and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= length:
            raise InputError("malformed JSON (the array is never closed)", path=str(path),
                             line=text.count("\n") + 1)
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})",
                             path=str(path), line=exc.lineno) from None
        yield line, obj


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        return
    for row in reader:
        if None in row:
            raise InputError(f"{len(reader.fieldnames)} columns in the header but more values "
                             "in this row", path=str(path), line=reader.line_num)
        yield reader.line_num, row


def _parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(f"not a readable parquet file ({exc})", path=str(path)) from None
    for number, record in enumerate(frame.to_dict(orient="records"), start=1):
        yield number, record


def _hf_records(spec: DataSpec) -> Iterator[tuple[int, Any]]:
    """Rows of a `save_to_disk` folder or a Hub dataset (network permitting)."""
    import datasets

    location = Path(spec.location)
    try:
        if location.is_dir():
            dataset = datasets.load_from_disk(str(location))
        else:
            dataset = datasets.load_dataset(spec.location, split=spec.split)
    except Exception as exc:  # the hub client raises many types; all mean "cannot load"
        raise InputError(f"could not load as a Hugging Face dataset ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); for a local file use "
                         f"one of {', '.join(_SUFFIXES)}", path=spec.location) from None
    if isinstance(dataset, datasets.DatasetDict):
        if spec.split not in dataset:
            raise InputError(f"no split '{spec.split}'; available: {', '.join(dataset)} "
                             f"(choose one with {spec.location}@SPLIT)", path=spec.location)
        dataset = dataset[spec.split]
    for number, record in enumerate(dataset, start=1):
        yield number, record


def iter_raw_records(spec: DataSpec) -> tuple[Iterator[tuple[int, Any]], str]:
    """(records with their line/row numbers, the unit those numbers count)."""
    path = Path(spec.location)
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".parquet"):
            return _parquet_records(path), "row"
        text = _read_text(path)
        if name.endswith((".jsonl", ".jsonl.gz")):
            return _jsonl_records(path, text), "line"
        if name.endswith((".json", ".json.gz")):
            return _json_array_records(path, text), "line"
        if name.endswith(".csv"):
            return _csv_records(path, text), "line"
        raise InputError(f"unsupported file type; use one of {', '.join(_SUFFIXES)}",
                         path=str(path))
    looks_like_hub_name = (not name.endswith(_SUFFIXES) and spec.location.count("/") <= 1
                           and not spec.location.startswith((".", "/", "~")))
    if path.is_dir() or (looks_like_hub_name and not path.exists()):
        return _hf_records(spec), "row"
    raise InputError("no such file or directory", path=spec.location)


# --------------------------------------------------------------------------- normalisation
def detect_shape(record: dict[str, Any]) -> Shape | None:
    for shape in SHAPES:
        required = [f for f in (shape.prompt_fields[0], shape.response_field)]
        if all(field in record for field in required):
            return shape
    return None


def _text(value: Any, where: dict[str, Any], field: str, required: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise InputError("is empty (null); expected text", field=field, **where)
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"expected text, got {type(value).__name__}", field=field, **where)


def _chat_turns(value: Any, where: dict[str, Any], field: str) -> tuple[str, str]:
    if not isinstance(value, list) or not value:
        raise InputError("expected a non-empty list of {role, content} turns", field=field, **where)
    role_key, content_key = ("from", "value") if field == "conversations" else ("role", "content")
    turns = []
    for number, turn in enumerate(value, start=1):
        if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
            raise InputError(f"turn {number} must be an object with '{role_key}' and "
                             f"'{content_key}'", field=field, **where)
        role = _CHAT_ROLES.get(str(turn[role_key]).lower())
        if role is None:
            raise InputError(f"turn {number} has unknown role '{turn[role_key]}'", field=field,
                             **where)
        content = turn[content_key]
        if isinstance(content, list):  # multimodal-style parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        turns.append((role, _text(content, where, field, required=False)))
    last_answer = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last_answer is None:
        raise InputError("has no assistant turn to use as the response", field=field, **where)
    prompt = "\n\n".join(text for role, text in turns[:last_answer] if role in ("system", "user"))
    return prompt, turns[last_answer][1]


def normalise_record(record: Any, shape: Shape, where: dict[str, Any]) -> dict[str, Any]:
    """Map one raw record onto the pool schema (extra fields kept, nested ones as JSON text)."""
    if not isinstance(record, dict):
        raise InputError(f"expected an object (a record), got {type(record).__name__}", **where)
    if shape.name in ("chat", "sharegpt"):
        prompt, response = _chat_turns(record.get(shape.response_field), where,
                                       shape.response_field)
    else:
        for field in (shape.prompt_fields[0], shape.response_field):
            if field not in record:
                raise InputError(f"missing (this file has the {shape.name} shape, detected from "
                                 "its first record)", field=field, **where)
        parts = [_text(record.get(f), where, f, required=f == shape.prompt_fields[0])
                 for f in shape.prompt_fields]
        prompt = "\n\n".join(p for p in parts if p.strip())
        response = _text(record[shape.response_field], where, shape.response_field,
                         required=False)
    row: dict[str, Any] = {"prompt": prompt, "response": response}
    for key, value in record.items():
        if key in shape.consumed or key in ("prompt", "response"):
            continue
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, ensure_ascii=False, default=str)
        elif hasattr(value, "tolist"):  # numpy arrays/scalars from parquet
            value = value.tolist()
            value = json.dumps(value) if isinstance(value, list) else value
        row[key] = value
    return row


def _records_from(spec: DataSpec) -> list[dict[str, Any]]:
    records, unit = iter_raw_records(spec)
    rows: list[dict[str, Any]] = []
    shape: Shape | None = None
    label = spec.label
    for number, record in records:
        where = {"path": spec.location, "line": number, "unit": unit}
        if shape is None:
            if not isinstance(record, dict):
                raise InputError(f"expected an object (a record), got {type(record).__name__}",
                                 **where)
            shape = detect_shape(record)
            if shape is None:
                raise InputError(
                    f"unknown record shape with fields {sorted(record)[:12]}; expected one of: "
                    "prompt+response, messages (chat), instruction+input+output (Alpaca), "
                    "instruction+context+response (Dolly), question+answer (GSM8K)", **where)
        row = normalise_record(record, shape, where)
        given_id = row.pop("id", None)
        row["id"] = str(given_id) if given_id not in (None, "") else f"{label}:{number}"
        source = row.get("source")
        row["source"] = str(source) if source not in (None, "") else label
        row["_where"] = (spec.location, number, unit)
        rows.append(row)
    if not rows:
        raise InputError("is empty: no records found", path=spec.location)
    return rows


def load_pool(inputs: Sequence[str | DataSpec] | str | DataSpec,
              limit: int | None = None) -> pd.DataFrame:
    """Load and combine inputs into one pool frame: id, prompt, response, source, extras.

    `limit` keeps the first rows of each input (for quick looks at a large pool).
    """
    if isinstance(inputs, (str, DataSpec)):
        inputs = [inputs]
    specs = [s if isinstance(s, DataSpec) else DataSpec.parse(s) for s in inputs]
    if not specs:
        raise InputError("no data given")
    labels = [s.label for s in specs]
    for label in set(labels):
        if labels.count(label) > 1:
            raise InputError(f"two inputs share the source name '{label}'; name them "
                             "with SOURCE=PATH")
    rows: list[dict[str, Any]] = []
    for spec in specs:
        records = _records_from(spec)
        rows.extend(records[:limit] if limit else records)
    _check_unique_ids(rows)
    for row in rows:
        del row["_where"]
    return _frame(rows)


def _check_unique_ids(rows: Iterable[dict[str, Any]]) -> None:
    seen: dict[str, tuple[str, int, str]] = {}
    for row in rows:
        first = seen.setdefault(row["id"], row["_where"])
        if first is not row["_where"]:
            path, line, unit = row["_where"]
            raise InputError(f"duplicate id '{row['id']}' (first at {first[0]} {first[2]} "
                             f"{first[1]}); ids must be unique in a pool — drop the id column to "
                             "derive ids from file and line", path=path, line=line, field="id",
                             unit=unit)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows)
    extras = [c for c in frame.columns if c not in CORE_COLUMNS]
    frame = frame[[*CORE_COLUMNS, *extras]]
    for column in extras:  # parquet needs one type per column
        values = frame[column].dropna()
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- helpers
def describe_input(spec: str | DataSpec) -> dict[str, str]:
    """How an input maps onto the pool schema (its detected shape, from its first record)."""
    spec = spec if isinstance(spec, DataSpec) else DataSpec.parse(spec)
    records, _ = iter_raw_records(spec)
    first = next(iter(records), (None, None))[1]
    shape = detect_shape(first) if isinstance(first, dict) else None
    if shape is None:
        return {"source": spec.label, "input": spec.location, "shape": "unknown"}
    if shape.name in ("chat", "sharegpt"):
        prompt_from = f"{shape.response_field}: system + user turns"
        response_from = f"{shape.response_field}: last assistant turn"
    else:
        prompt_from = " + ".join(shape.prompt_fields)
        response_from = shape.response_field
    extras = [k for k in first if k not in shape.consumed and k not in ("prompt", "response")]
    return {"source": spec.label, "input": spec.location, "shape": shape.name,
            "prompt ←": prompt_from, "response ←": response_from,
            "kept as extra columns": ", ".join(extras) or "—"}


def pool_texts(pool: pd.DataFrame, text: str = "prompt") -> list[str]:
    """The text embedded for each row: the prompt (default) or prompt + response."""
    if text == "prompt":
        return pool["prompt"].tolist()
    if text == "prompt+response":
        return [f"{p}\n\n{r}" for p, r in zip(pool["prompt"], pool["response"], strict=True)]
    raise InputError(f"unknown text field '{text}'; use prompt or prompt+response")


def fingerprint(values: Iterable[str]) -> str:
    """Content hash of a sequence of strings (order matters); keys caches."""
    digest = hashlib.sha256()
    for value in values:
        encoded = value.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:16]
