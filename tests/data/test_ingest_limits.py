"""Bombs, huge inputs and hostile files: ingestion streams with bounded memory, stops at a cap
with one line naming it, and never unpickles."""
from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from selection_core.data import loaders
from selection_core.data.loaders import FINGERPRINT_KEY, IngestLimits, check_decompressed_size, \
    ingest_pool, load_pool
from selection_core.spine.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def gzip_lines(path: Path, line: bytes, times: int) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for _ in range(times // 10_000):
            handle.write(line * 10_000)
        handle.write(line * (times % 10_000))
    return path


def peak_memory_mb(code: str) -> tuple[float, str]:
    """Run `code` in a fresh interpreter; its peak RSS (MB) and the error line it printed."""
    script = textwrap.dedent("""
        import resource, sys
        from selection_core.data import loaders
        from selection_core.spine.errors import SelectionError
        try:
            {code}
            message = "no error"
        except SelectionError as exc:
            message = str(exc)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(message)
    """).format(code=code)
    baseline = ("import pandas, pyarrow.parquet\nfrom selection_core.data import loaders\n"
                "import resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    run = [sys.executable, "-c"]
    base = subprocess.run([*run, baseline], capture_output=True, text=True, cwd=REPO, check=True)
    out = subprocess.run([*run, script], capture_output=True, text=True, cwd=REPO, check=True)
    peak, message = out.stdout.strip().splitlines()[-2:]
    return float(peak) - float(base.stdout.strip()), message


def test_a_row_bomb_stops_at_the_row_cap_in_bounded_memory(tmp_path: Path) -> None:
    # 2 million rows in ~0.2 MB of gzip: the cap is what stops it, long before memory does.
    bomb = gzip_lines(tmp_path / "rows.jsonl.gz", b'{"prompt": "p", "response": "r"}\n',
                      2_000_000)
    extra_mb, message = peak_memory_mb(
        f"loaders.ingest_pool([{str(bomb)!r}], {str(tmp_path / 'pool.parquet')!r}, "
        f"limits=loaders.IngestLimits(max_rows=20_000))")
    assert message == f"{bomb}, line 20001: more than 20,000 rows in all (raise --max-rows " \
                      "to load more)"
    assert extra_mb < 150
    assert IngestLimits().max_rows == 10_000_000  # the default cap


def test_an_inflating_line_stops_at_the_line_cap(tmp_path: Path) -> None:
    # 300 MB of spaces, no newline, in ~1.4 MB: read up to the cap, never inflated whole.
    bomb = gzip_lines(tmp_path / "spaces.jsonl.gz", b" " * 1024, 300 * 1024)
    extra_mb, message = peak_memory_mb(f"loaders.load_pool({str(bomb)!r})")
    assert message == f"{bomb}, line 1: the line is longer than 16 MB (raise " \
                      "--max-line-length to load it)"
    assert extra_mb < 150


def test_a_huge_single_line_and_a_huge_json_record(tmp_path: Path) -> None:
    record = json.dumps({"prompt": "x" * 3_000_000, "response": "r"})
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n" + record + "\n")
    limits = IngestLimits(max_line_bytes=1_000_000)
    with pytest.raises(InputError, match="line 2: the line is longer than 1,000,000 bytes"):
        load_pool(str(jsonl), limits=limits)
    array = tmp_path / "big.json"
    array.write_text("[\n" + json.dumps({"prompt": "p", "response": "r"}) + ",\n" + record + "]")
    with pytest.raises(InputError, match="line 3: a record is longer than 1,000,000 bytes"):
        load_pool(str(array), limits=limits)
    assert len(load_pool(str(array))) == 2  # under the default cap both load


def test_decompressed_size_cap_for_uploads(tmp_path: Path) -> None:
    bomb = gzip_lines(tmp_path / "many.jsonl.gz", b'{"prompt": "p", "response": "r"}\n',
                      200_000)  # 6.6 MB once decompressed, 30 kB compressed
    with pytest.raises(InputError, match="holds more than 1 MB once decompressed"):
        load_pool(str(bomb), limits=IngestLimits(max_bytes=1024 ** 2))


def test_corrupt_and_truncated_gzip_bodies(tmp_path: Path) -> None:
    body = "".join(json.dumps({"prompt": f"p{i}", "response": f"r{i}"}) + "\n"
                   for i in range(20_000)).encode()
    second = bytearray(gzip.compress(body))
    second[10] |= 0b110  # its first deflate block claims the reserved block type
    packed = gzip.compress(body) + bytes(second)  # a valid member, then a corrupt one
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(bytes(packed))
    with pytest.raises(InputError, match="not a valid gzip file") as info:
        load_pool(str(corrupt))
    assert (info.value.path, info.value.line) == (str(corrupt), 20_001)
    truncated = tmp_path / "truncated.json.gz"
    truncated.write_bytes(gzip.compress(body)[:-100])
    with pytest.raises(InputError, match="not a valid gzip file"):
        load_pool(str(truncated))


def test_pickles_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "pool.pkl"
    path.write_bytes(pickle.dumps([{"prompt": "p", "response": "r"}]))
    with pytest.raises(InputError, match="pickle files are never loaded"):
        load_pool(str(path))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_not_json(tmp_path: Path, constant: str) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"prompt": "p", "response": "r", "quality": 0.5}\n'
                     f'{{"prompt": "p2", "response": "r2", "quality": {constant}}}\n')
    with pytest.raises(InputError, match=f"line 2: {constant} is not valid JSON"):
        load_pool(str(jsonl))
    array = tmp_path / "q.json"
    array.write_text(f'[{{"prompt": "p", "response": "r", "quality": {constant}}}]')
    with pytest.raises(InputError, match=f"line 1: {constant} is not valid JSON"):
        load_pool(str(array))


def test_a_quality_column_of_the_input_is_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"prompt": "p", "response": "r", "quality": 0.25, "cluster": 3}\n')
    pool = load_pool(str(path))
    assert pool[["input_quality", "input_cluster"]].iloc[0].tolist() == [0.25, 3]
    assert "quality" not in pool.columns and "cluster" not in pool.columns


def test_json_arrays_stream_across_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "_READ_BYTES", 7)  # every record spans several reads
    records = [{"prompt": f"p{i} é", "response": "r" * i, "n": i} for i in range(30)]
    array = tmp_path / "a.json"
    array.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
                     + "\n]\n", encoding="utf-8")
    pool = load_pool(str(array))
    assert pool["prompt"].tolist() == [r["prompt"] for r in records]
    assert pool["id"].tolist()[:2] == ["a:2", "a:3"]  # each record's line
    lines = tmp_path / "lines.json"  # JSON Lines saved as .json
    lines.write_text("".join(json.dumps(r) + "\n" for r in records[:3]))
    assert load_pool(str(lines))["n"].tolist() == [0, 1, 2]
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"prompt": "p", "response": "r"},\n{"prompt": "q", "response": ]')
    with pytest.raises(InputError, match="malformed JSON") as info:
        load_pool(str(broken))
    assert info.value.line == 3


def test_preview_reads_only_what_it_shows(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "response": "r"}) + "\n"
                            for i in range(5)) + "{broken\n")
    assert load_pool(str(path), limit=5)["prompt"].tolist() == [f"p{i}" for i in range(5)]
    with pytest.raises(InputError, match="line 6"):
        load_pool(str(path))


def test_pool_parquet_carries_its_fingerprint_and_mixed_columns(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    records = [{"prompt": f"p{i}", "response": "r", "score": i if i % 2 else i + 0.5,
                "tag": "x" if i == 3 else i} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "pool.parquet"
    summary = ingest_pool(str(path), out)
    assert (summary.rows, summary.sources) == (6, {"mixed": 6})
    assert pq.read_schema(out).metadata[FINGERPRINT_KEY].decode() == summary.fingerprint
    pool = pd.read_parquet(out)
    assert pool["score"].tolist() == [0.5, 1.0, 2.5, 3.0, 4.5, 5.0]
    assert pool["tag"].tolist() == ["0", "1", "2", "x", "4", "5"]


def test_limits_must_be_positive() -> None:
    with pytest.raises(InputError, match="max_rows must be at least 1"):
        IngestLimits(max_rows=0)
    with pytest.raises(InputError, match="limit must be at least 1 row"):
        load_pool("unused.jsonl", limit=0)


def test_uploads_keep_long_names_short_and_their_limit_counts_inflated_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selection_core.frontends import workspace

    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path / "workspace"))
    content = gzip.compress(b'{"prompt": "p", "response": "r"}\n' * 100_000)  # 3.3 MB inflated
    path = workspace.upload_path("x" * 300 + ".jsonl.gz", content)
    assert path.name.endswith("x.jsonl.gz") and len(path.name) < 255
    with pytest.raises(InputError, match="holds more than 1 MB once decompressed"):
        check_decompressed_size(path, 1024 ** 2)
    assert check_decompressed_size(path, 10 * 1024 ** 2) == 3_300_000


def test_the_data_page_previews_without_reading_the_whole_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("SELECTION_CORE_DATA_ROOTS", str(tmp_path))  # the path box reads there
    monkeypatch.chdir(REPO)
    path = gzip_lines(tmp_path / "big.jsonl.gz", b'{"prompt": "p", "response": "r"}\n', 10)
    with gzip.open(path, "ab") as handle:  # a broken line far past the preview
        handle.write(b" " * (20 * 1024 ** 2) + b"\n{broken\n")
    page = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    page.switch_page("pages/data.py").run()
    page.radio(key="data_source").set_value("Local path or Hugging Face dataset").run()
    page.text_area[0].set_value(str(path)).run()
    assert not page.exception and not page.error
    assert any(b.label == "Use this pool" for b in page.button)
