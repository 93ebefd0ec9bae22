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

import array
import codecs
import csv
import gzip
import hashlib
import json
import math
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from ..spine.config import param, value_problem
from ..spine.errors import InputError

CORE_COLUMNS = ("id", "prompt", "response", "source")
_SUFFIXES = (".jsonl.gz", ".json.gz", ".csv.gz", ".jsonl", ".json", ".csv", ".parquet")
_GENERIC_STEMS = {"train", "test", "dev", "val", "valid", "validation", "data", "dataset"}
_COMPUTED_RENAMES = {"cluster": "input_cluster", "quality": "input_quality"}


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


# --------------------------------------------------------------------------- limits
@dataclass(frozen=True)
class IngestLimits:
    """Caps that keep ingestion bounded: past one, loading stops with one line naming it.

    Why: a 2.8 MB gzip can hold 38 million rows and a 2.5 MB one can inflate to 5 GB; rows are
    streamed, so memory does not grow with the file, but time and disk would.
    """

    max_rows: int = param(10_000_000, help="refuse inputs with more rows in all", low=1)
    max_line_bytes: int = param(16 * 1024 * 1024, low=1, flag="--max-line-length",
                                help="refuse a longer line, JSON record or CSV field, in bytes")
    max_bytes: int | None = param(None, low=1, help="decompressed bytes per input (the app's "
                                                    "upload limit)")

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_line_bytes", "max_bytes"):
            problem = value_problem(IngestLimits, name, getattr(self, name), named=True)
            if problem:
                raise InputError(problem)


_READ_BYTES = 1 << 20  # one read of a JSON array file
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pkl.gz", ".joblib")


class _NonFiniteNumber(ValueError):
    """json's parse_constant hook: NaN and Infinity are not JSON."""


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class _Reader:
    """The decompressed bytes of one input file, read in bounded pieces with one-line errors."""

    def __init__(self, path: Path, limits: IngestLimits) -> None:
        self.path = path
        self.limits = limits
        self.line = 0  # lines consumed so far (callers advance it), for error messages
        self.bytes_read = 0
        self.gzipped = path.name.lower().endswith(".gz")

    def __enter__(self) -> _Reader:
        raw = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
        self._stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if self.gzipped else raw
        self._raw = raw
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._raw.close()

    def readline(self) -> bytes:
        return self._checked(self._stream.readline, self.limits.max_line_bytes + 1)

    def read(self, size: int) -> bytes:
        return self._checked(self._stream.read, size)

    def _checked(self, read: Any, size: int) -> bytes:
        try:
            data = read(size)
        except (OSError, EOFError, zlib.error) as exc:
            kind = "a valid gzip file" if self.gzipped else "readable"
            raise InputError(f"not {kind} ({exc})", path=str(self.path),
                             line=self.line + 1 if self.line else None) from None
        self.bytes_read += len(data)
        if self.limits.max_bytes is not None and self.bytes_read > self.limits.max_bytes:
            raise _too_large(self.path, self.limits.max_bytes)
        return data


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1024 ** 2:,.0f} MB" if n_bytes >= 1024 ** 2 else f"{n_bytes:,} bytes"


def _too_large(path: Path, max_bytes: int) -> InputError:
    return InputError(f"holds more than {_size(max_bytes)} once decompressed, the limit for one "
                      "input", path=str(path))


def _decode(path: Path, raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                         path=str(path), line=line) from None


def _loads(text: str, path: Path, line: int) -> Any:
    try:
        return _DECODER.decode(text)
    except _NonFiniteNumber as exc:
        raise InputError(f"{exc} is not valid JSON (write null, or a number)", path=str(path),
                         line=line) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", path=str(path),
                         line=line) from None


def _text_lines(reader: _Reader) -> Iterator[str]:
    """Decoded lines, each at most `max_line_bytes` long (else one line naming the cap)."""
    while True:
        raw = reader.readline()
        if not raw:
            return
        reader.line += 1
        if len(raw) > reader.limits.max_line_bytes and not raw.endswith(b"\n"):
            raise InputError(f"the line is longer than {_size(reader.limits.max_line_bytes)} "
                             "(raise --max-line-length to load it)", path=str(reader.path),
                             line=reader.line)
        yield _decode(reader.path, raw, reader.line)


def _jsonl_records(reader: _Reader) -> Iterator[tuple[int, Any]]:
    for text in _text_lines(reader):
        if text.strip():
            yield reader.line, _loads(text, reader.path, reader.line)


class _JsonWindow:
    """A sliding window of decoded text over a JSON file: values are parsed from `pos`, and what
    lies behind is dropped, so memory holds one record (at most `max_line_bytes`) at a time."""

    _SEPARATORS = re.compile(r"[ \t\r\n,]*")
    _BLANK = re.compile(r"[ \t\r\n]*")

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.text = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def _fill(self) -> None:
        chunk = self.reader.read(_READ_BYTES)
        self.eof = not chunk
        try:
            text = self._decoder.decode(chunk, final=self.eof)
        except UnicodeDecodeError:
            raise InputError("not valid UTF-8; save the file as UTF-8", path=str(self.reader.path),
                             line=self.line + self.text.count("\n", self.pos)) from None
        self.text = self.text[self.pos:] + text
        self.pos = 0

    def _advance(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end
        self.reader.line = self.line

    def peek(self, skip: re.Pattern[str] = _BLANK) -> str | None:
        """The next character after `skip` (None at the end of the file)."""
        while True:
            self._advance(skip.match(self.text, self.pos).end())
            if self.pos < len(self.text):
                return self.text[self.pos]
            if self.eof:
                return None
            self._fill()

    def take(self, chars: int = 1) -> None:
        self._advance(self.pos + chars)

    def value(self) -> Any:
        """Parse one JSON value at `pos`, reading more while it is incomplete."""
        path, cap = str(self.reader.path), self.reader.limits.max_line_bytes
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except _NonFiniteNumber as exc:
                raise InputError(f"{exc} is not valid JSON (write null, or a number)", path=path,
                                 line=self.line) from None
            except json.JSONDecodeError as exc:
                if len(self.text) - self.pos > cap:
                    raise InputError(f"a record is longer than {_size(cap)} (raise "
                                     "--max-line-length to load it)", path=path,
                                     line=self.line) from None
                if self.eof:
                    raise InputError(f"malformed JSON ({exc.msg})", path=path,
                                     line=self.line + self.text.count("\n", self.pos, exc.pos)
                                     ) from None
                self._fill()
                continue
            self._advance(end)
            return value


def _json_records(reader: _Reader) -> Iterator[tuple[int, Any]]:
    """Records of a JSON array (or of JSON Lines saved as .json), streamed."""
    window = _JsonWindow(reader)
    first = window.peek()
    if first is None:
        return
    if first == "[":
        window.take()
        while True:
            following = window.peek(_JsonWindow._SEPARATORS)
            if following is None:
                raise InputError("malformed JSON (the array is never closed)",
                                 path=str(reader.path), line=window.line)
            if following == "]":
                return
            line = window.line
            yield line, window.value()
    line = window.line
    value = window.value()
    if not isinstance(value, dict) or window.peek() is None:
        raise InputError(f"expected a JSON array of records, got a JSON {type(value).__name__}",
                         path=str(reader.path), line=line)
    yield line, value  # JSON Lines saved as .json: records one after another
    while window.peek() is not None:
        line = window.line
        yield line, window.value()


def _csv_records(reader: _Reader) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), reader.limits.max_line_bytes))
    rows = csv.DictReader(_text_lines(reader))
    try:
        if not rows.fieldnames:
            return
        for row in rows:
            if None in row:
                raise InputError(f"{len(rows.fieldnames)} columns in the header but more values "
                                 "in this row", path=str(reader.path), line=rows.line_num)
            yield rows.line_num, row
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path=str(reader.path),
                         line=rows.line_num) from None


def _open_parquet(path: Path) -> tuple[Any, int]:
    """The parquet file and the bytes its row groups hold once decompressed."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(f"not a readable parquet file ({exc})", path=str(path)) from None
    meta = parquet.metadata
    return parquet, sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def _parquet_records(path: Path, limits: IngestLimits) -> Iterator[tuple[int, Any]]:
    parquet, inflated = _open_parquet(path)
    if parquet.metadata.num_rows > limits.max_rows:
        raise InputError(f"holds {parquet.metadata.num_rows:,} rows, more than the "
                         f"{limits.max_rows:,} allowed (raise --max-rows to load it)",
                         path=str(path))
    if limits.max_bytes is not None and inflated > limits.max_bytes:
        raise _too_large(path, limits.max_bytes)
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                number += 1
                yield number, record
    except OSError as exc:
        raise InputError(f"not a readable parquet file ({exc})", path=str(path),
                         line=number + 1, unit="row") from None


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


def _file_records(path: Path, limits: IngestLimits) -> Iterator[tuple[int, Any]]:
    name = path.name.lower()
    readers = {(".jsonl", ".jsonl.gz"): _jsonl_records, (".json", ".json.gz"): _json_records,
               (".csv", ".csv.gz"): _csv_records}
    for suffixes, read in readers.items():
        if name.endswith(suffixes):
            with _Reader(path, limits) as reader:
                yield from read(reader)
            return
    yield from _parquet_records(path, limits)


def is_hub_name(spec: DataSpec) -> bool:
    """Whether `spec` is read as a Hugging Face Hub dataset name (`org/name`): no local path of
    that name, no file suffix, nothing that starts like a path."""
    return (not spec.location.lower().endswith(_SUFFIXES) and spec.location.count("/") <= 1
            and not spec.location.startswith((".", "/", "~")) and not Path(spec.location).exists())


def iter_raw_records(spec: DataSpec, limits: IngestLimits = IngestLimits()
                     ) -> tuple[Iterator[tuple[int, Any]], str]:
    """(records with their line/row numbers, the unit those numbers count), streamed."""
    path = Path(spec.location)
    name = path.name.lower()
    if path.is_file():
        if name.endswith(_PICKLE_SUFFIXES):
            raise InputError("pickle files are never loaded (unpickling runs arbitrary code); "
                             f"save the data as one of {', '.join(_SUFFIXES)}", path=str(path))
        if not name.endswith(_SUFFIXES):
            raise InputError(f"unsupported file type; use one of {', '.join(_SUFFIXES)}",
                             path=str(path))
        return _file_records(path, limits), "row" if name.endswith(".parquet") else "line"
    if path.is_dir() or is_hub_name(spec):
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
    """Map one raw record onto the pool schema (extra fields kept, nested ones as JSON text;
    `cluster` and `quality`, which the selection computes, kept as `input_cluster`, ...)."""
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
        elif hasattr(value, "tolist"):  # numpy arrays/scalars
            value = value.tolist()
            value = json.dumps(value) if isinstance(value, list) else value
        row[_COMPUTED_RENAMES.get(key, key)] = value
    return row


def _records_from(spec: DataSpec, limits: IngestLimits) -> Iterator[dict[str, Any]]:
    """Normalised rows of one input, streamed; each with its `_line` for later messages."""
    records, unit = iter_raw_records(spec, limits)
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
        row["_line"] = number
        yield row
    if shape is None:
        raise InputError("is empty: no records found", path=spec.location)


# --------------------------------------------------------------------------- ingestion
@dataclass(frozen=True)
class PoolSummary:
    """What an ingestion wrote: its rows, their content fingerprint, rows per source."""

    rows: int
    fingerprint: str
    sources: dict[str, int]


FINGERPRINT_KEY = b"selection_core.pool_fingerprint"  # parquet metadata: stages check it cheaply
_PART_ROWS = 20_000
_PART_CHARS = 64 * 1024 * 1024  # of prompt + response text held before a part is written


def _specs(inputs: Sequence[str | DataSpec] | str | DataSpec) -> list[DataSpec]:
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
    return specs


def ingest_pool(inputs: Sequence[str | DataSpec] | str | DataSpec, out: str | Path,
                limit: int | None = None, limits: IngestLimits = IngestLimits()) -> PoolSummary:
    """Stream the inputs into one pool parquet at `out` (written atomically).

    Memory holds one part of rows at a time plus 8 bytes per row (to find duplicate ids), so
    it does not grow with the files; `limit` keeps the first rows of each input, and past a cap
    of `limits` loading stops with one line.
    """
    from ..spine.store import atomic_path, temp_prefix

    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1 row, got {limit}")
    specs = _specs(inputs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(out), dir=out.parent) as folder:
        parts = _PartWriter(Path(folder))
        for index, spec in enumerate(specs):
            kept = 0
            for row in _records_from(spec, limits):
                if parts.rows >= limits.max_rows:
                    raise InputError(f"more than {limits.max_rows:,} rows in all (raise "
                                     "--max-rows to load more)", path=spec.location,
                                     line=row["_line"])
                parts.add(row, index)
                kept += 1
                if limit is not None and kept >= limit:
                    break
        parts.flush()
        _check_unique_ids(parts, specs)
        with atomic_path(out, suffix=".parquet") as tmp:
            parts.write(tmp)
    return PoolSummary(parts.rows, parts.fingerprint.hexdigest()[:16], dict(parts.sources))


def load_pool(inputs: Sequence[str | DataSpec] | str | DataSpec, limit: int | None = None,
              limits: IngestLimits = IngestLimits()) -> pd.DataFrame:
    """Load and combine inputs into one pool frame: id, prompt, response, source, extras.

    `limit` keeps the first rows of each input and reads no further (a preview's cost does not
    grow with the file).
    """
    with tempfile.TemporaryDirectory(prefix="pool-") as folder:
        path = Path(folder, "pool.parquet")
        ingest_pool(inputs, path, limit=limit, limits=limits)
        return pd.read_parquet(path)


class _PartWriter:
    """Rows go to parquet parts of bounded size; `write` joins them under one schema.

    A column's type is decided over all rows, as a frame of all of them would: one kind of
    value keeps its type, ints with floats become floats, any other mix becomes text.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[Path] = []
        self.buffer: list[dict[str, Any]] = []
        self.buffered_chars = 0
        self.columns: dict[str, set[type]] = {name: set() for name in CORE_COLUMNS}
        self.rows = 0
        self.sources: Counter[str] = Counter()
        self.fingerprint = hashlib.sha256()
        self.id_hashes = array.array("Q")
        self.where = array.array("q")  # input index << 40 | line, per row

    def add(self, row: dict[str, Any], input_index: int) -> None:
        line = row.pop("_line")
        for key, value in row.items():
            kinds = self.columns.setdefault(key, set())
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                kinds.add(type(value))
        _update(self.fingerprint, f"{row['id']}\x1f{row['prompt']}\x1f{row['response']}")
        self.id_hashes.append(int.from_bytes(
            hashlib.blake2b(row["id"].encode(), digest_size=8).digest(), "little"))
        self.where.append(input_index << 40 | line)
        self.sources[row["source"]] += 1
        self.buffer.append(row)
        self.rows += 1
        self.buffered_chars += len(row["prompt"]) + len(row["response"])
        if len(self.buffer) >= _PART_ROWS or self.buffered_chars >= _PART_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = list(dict.fromkeys(key for row in self.buffer for key in row))
        arrays = [_arrow_column([row.get(name) for row in self.buffer]) for name in names]
        path = self.folder / f"part-{len(self.parts):06d}.parquet"
        pq.write_table(pa.table(arrays, names=names), path)
        self.parts.append(path)
        self.buffer, self.buffered_chars = [], 0

    def ids_at(self, positions: list[int]) -> list[str]:
        import pyarrow.parquet as pq

        ids, offset, wanted = [], 0, sorted(positions)
        for path in self.parts:
            column = pq.read_table(path, columns=["id"]).column("id")
            ids += [column[p - offset].as_py() for p in wanted
                    if offset <= p < offset + len(column)]
            offset += len(column)
        found = dict(zip(wanted, ids, strict=True))
        return [found[p] for p in positions]

    def write(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = [*CORE_COLUMNS, *(c for c in self.columns if c not in CORE_COLUMNS)]
        schemas = [pq.read_schema(part) for part in self.parts]
        schema = pa.schema([(name, _final_type(name, self.columns[name], schemas))
                            for name in names],
                           metadata={FINGERPRINT_KEY: self.fingerprint.hexdigest()[:16].encode()})
        with pq.ParquetWriter(path, schema) as writer:
            for part in self.parts:
                table = pq.read_table(part)
                writer.write_table(pa.table([_conform(table, field) for field in schema],
                                            schema=schema))
            if not self.parts:
                writer.write_table(schema.empty_table())


def _arrow_column(values: list[Any]) -> Any:
    """One part's column: its own values' type (a mix other than ints with floats: text)."""
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if len(kinds) > 1 and not kinds <= {int, float}:
        values = [None if v is None else str(v) for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values])


def _final_type(name: str, kinds: set[type], schemas: list[Any]) -> Any:
    """The pool's type for a column from the kinds of value in all rows, as one frame of them
    would have it: one kind keeps its type, ints with floats become floats, else text."""
    import pyarrow as pa

    if kinds <= {int, float} and float in kinds:
        return pa.float64()
    if len(kinds) == 1 and str not in kinds:
        types = [s.field(name).type for s in schemas if name in s.names]
        return next((t for t in types if not pa.types.is_null(t)), pa.string())
    return pa.string()


def _conform(table: Any, field: Any) -> Any:
    """One part's column in the pool's type (missing or all-null: nulls)."""
    import pyarrow as pa

    if field.name not in table.column_names or pa.types.is_null(table.column(field.name).type):
        return pa.nulls(len(table), field.type)
    column = table.column(field.name)
    if column.type == field.type:
        return column
    if pa.types.is_string(field.type):
        return pa.array([None if v is None else str(v) for v in column.to_pylist()],
                        type=pa.string())
    return column.cast(field.type)


def _check_unique_ids(parts: _PartWriter, specs: list[DataSpec]) -> None:
    """Refuse a pool with a repeated id, naming both places (hash first, then the ids)."""
    hashes = np.frombuffer(parts.id_hashes, dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    repeated = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    if not len(repeated):
        return
    pairs = sorted((int(order[i + 1]), int(order[i])) for i in repeated)  # (later, earlier)
    for later, earlier in pairs:
        first = int(np.flatnonzero(hashes == hashes[later])[0])
        later_id, first_id = parts.ids_at([later, first])
        if later_id != first_id:
            continue  # two ids with one hash
        (first_input, first_line), (input_index, line) = (
            divmod(parts.where[p], 1 << 40) for p in (first, later))
        unit = _unit(specs[input_index])
        raise InputError(f"duplicate id '{later_id}' (first at {specs[first_input].location} "
                         f"{_unit(specs[first_input])} {first_line}); ids must be unique in a "
                         "pool — drop the id column to derive ids from file and line",
                         path=specs[input_index].location, line=line, field="id", unit=unit)


def _unit(spec: DataSpec) -> str:
    path = Path(spec.location)
    return "line" if path.is_file() and not path.name.lower().endswith(".parquet") else "row"


def check_decompressed_size(location: str | Path, max_bytes: int) -> int:
    """The bytes a file holds once decompressed, read through (bounded memory) and refused past
    `max_bytes`: an upload limit must hold for what the upload inflates to."""
    path = Path(location)
    if path.name.lower().endswith(".parquet"):
        inflated = _open_parquet(path)[1]
        if inflated > max_bytes:
            raise _too_large(path, max_bytes)
        return inflated
    with _Reader(path, IngestLimits(max_bytes=max_bytes)) as reader:
        while reader.read(_READ_BYTES):
            pass
        return reader.bytes_read


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
    extras = [k if k not in _COMPUTED_RENAMES else f"{k} → {_COMPUTED_RENAMES[k]}"
              for k in first if k not in shape.consumed and k not in ("prompt", "response")]
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
        _update(digest, value)
    return digest.hexdigest()[:16]


def local_fingerprint(name: str, path: Path) -> str:
    """`name`, with the size and modification time of the files at `path` when it exists (a
    file or a folder), so a model or data file replaced in place is a new input."""
    if not path.exists():
        return name
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return f"{name}|" + fingerprint(f"{p.relative_to(path) if path.is_dir() else p.name}|"
                                    f"{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in files)


def _update(digest: Any, value: str) -> None:
    encoded = value.encode("utf-8")
    digest.update(len(encoded).to_bytes(8, "little"))
    digest.update(encoded)
