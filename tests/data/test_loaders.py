from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from selection_core.data.loaders import DataSpec, fingerprint, load_pool, pool_texts
from selection_core.spine.errors import InputError


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shapes
def test_alpaca_shape_joins_instruction_and_input(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
    ])
    pool = load_pool([str(path)])
    assert list(pool.columns[:4]) == ["id", "prompt", "response", "source"]
    assert pool["prompt"].tolist() == ["Translate\n\nbonjour", "Say hi"]
    assert pool["response"].tolist() == ["hello", "hi"]
    assert pool["source"].unique().tolist() == ["alpaca"]
    assert pool["id"].tolist() == ["alpaca:1", "alpaca:2"]
    assert "instruction" not in pool.columns


def test_dolly_shape_keeps_category(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dolly.jsonl", [
        {"instruction": "Summarise", "context": "Long text.", "response": "Short.",
         "category": "summarization"},
        {"instruction": "Capital of France?", "context": "", "response": "Paris",
         "category": "open_qa"},
    ])
    pool = load_pool(str(path))
    assert pool["prompt"].tolist() == ["Summarise\n\nLong text.", "Capital of France?"]
    assert pool["category"].tolist() == ["summarization", "open_qa"]


def test_chat_shape_prompt_is_system_and_user_turns(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "and 3+3?"},
                {"role": "assistant", "content": "6"}]
    path = write_jsonl(tmp_path / "chat.jsonl", [{"id": "c1", "messages": messages}])
    row = load_pool(str(path)).iloc[0]
    assert row["prompt"] == "Be brief.\n\n2+2?\n\nand 3+3?"
    assert row["response"] == "6"
    assert row["id"] == "c1"


def test_sharegpt_conversations(tmp_path: Path) -> None:
    convo = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello!"}]
    path = write_jsonl(tmp_path / "sg.jsonl", [{"conversations": convo}])
    row = load_pool(str(path)).iloc[0]
    assert (row["prompt"], row["response"]) == ("hi", "hello!")


def test_gsm8k_shape(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "1+1?", "answer": "#### 2"}])
    row = load_pool(str(path)).iloc[0]
    assert (row["prompt"], row["response"]) == ("1+1?", "#### 2")


def test_normalised_shape_keeps_given_ids_and_source(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "norm.jsonl", [
        {"id": 7, "prompt": "p", "response": "r", "source": "mine", "is_noise": False}])
    row = load_pool(str(path)).iloc[0]
    assert (row["id"], row["source"], bool(row["is_noise"])) == ("7", "mine", False)


@pytest.mark.parametrize("fmt", ["json", "jsonl.gz", "csv", "parquet"])
def test_every_file_format(tmp_path: Path, fmt: str) -> None:
    records = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(3)]
    path = tmp_path / f"pool.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(records, indent=2))
    elif fmt == "jsonl.gz":
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    elif fmt == "csv":
        pd.DataFrame(records).to_csv(path, index=False)
    else:
        pd.DataFrame(records).to_parquet(path)
    pool = load_pool(str(path))
    assert pool["prompt"].tolist() == ["q0", "q1", "q2"]
    assert pool["response"].tolist() == ["a0", "a1", "a2"]
    assert pool["source"].unique().tolist() == ["pool"]


def test_hf_save_to_disk_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf_pool"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [{"question": "q", "answer": "a"}])}).save_to_disk(str(folder))
    pool = load_pool(str(folder))
    assert pool["prompt"].tolist() == ["q"]
    with pytest.raises(InputError, match="no split 'test'"):
        load_pool(f"{folder}@test")


def test_hub_name_offline_gives_clear_error() -> None:
    with pytest.raises(InputError, match="could not load as a Hugging Face dataset"):
        load_pool("nonexistent-org/nonexistent-dataset")


def test_several_files_combine_with_sources_and_stable_ids(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"question": "q1", "answer": "a1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"instruction": "i", "output": "o"}])
    pool = load_pool([str(a), f"named={b}"])
    assert pool["source"].tolist() == ["a", "named"]
    assert pool["id"].tolist() == ["a:1", "named:1"]
    assert load_pool([str(a), f"named={b}"]).equals(pool)


def test_generic_file_names_take_the_folder_name(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    path = write_jsonl(tmp_path / "gsm8k" / "train.jsonl", [{"question": "q", "answer": "a"}])
    assert DataSpec.parse(str(path)).label == "gsm8k-train"


def test_pool_texts_and_fingerprint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "response": "r"}])
    pool = load_pool(str(path))
    assert pool_texts(pool, "prompt") == ["p"]
    assert pool_texts(pool, "prompt+response") == ["p\n\nr"]
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])


# --------------------------------------------------------------------------- bad input
def expect_error(path: Path, match: str, line: int | None, field: str | None) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        load_pool(str(path))
    error = info.value
    assert error.path == str(path)
    assert error.line == line
    assert error.field == field
    assert str(path) in str(error)
    return error


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "c", "response": }\n')
    expect_error(path, "malformed JSON", line=3, field=None)


def test_missing_field_names_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "missing.jsonl", [
        {"instruction": "a", "input": "", "output": "b"},
        {"instruction": "c", "input": ""}])
    error = expect_error(path, "missing", line=2, field="output")
    assert "alpaca" in str(error)


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "types.jsonl", [{"prompt": ["a"], "response": "b"}])
    expect_error(path, "expected text, got list", line=1, field="prompt")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    expect_error(path, "empty", line=None, field=None)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "ok", "response": "ok"}\n{"prompt": "caf\xe9", "response": "x"}\n')
    expect_error(path, "not valid UTF-8", line=2, field=None)


def test_unknown_shape_lists_expected_shapes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"foo": 1, "bar": 2}])
    error = expect_error(path, "unknown record shape", line=1, field=None)
    assert "Alpaca" in str(error) and "'bar'" in str(error)


def test_chat_without_assistant_turn(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    expect_error(path, "no assistant turn", line=1, field="messages")


def test_json_array_error_points_at_the_element_line(tmp_path: Path) -> None:
    path = tmp_path / "arr.json"
    path.write_text('[\n  {"prompt": "a", "response": "b"},\n  {"prompt": 3.5, "response": {"x": 1}}\n]')
    expect_error(path, "expected text, got dict", line=3, field="response")


def test_csv_row_with_extra_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("prompt,response\na,b\nc,d,e\n")
    expect_error(path, "more values", line=3, field=None)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "prompt": "p", "response": "r"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "prompt": "p", "response": "r"}])
    with pytest.raises(InputError, match="duplicate id 'x'") as info:
        load_pool([str(a), str(b)])
    assert (info.value.path, info.value.line, info.value.field) == (str(b), 1, "id")


def test_missing_file_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_pool(str(tmp_path / "nope.jsonl"))
    odd = tmp_path / "pool.txt"
    odd.write_text("hello")
    with pytest.raises(InputError, match="unsupported file type"):
        load_pool(str(odd))


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    expect_error(path, "not a valid gzip file", line=None, field=None)


# --------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_pools_load_with_expected_counts(shared_data: Path) -> None:
    pool = load_pool([str(shared_data / "dolly" / "dolly_filtered_3k.jsonl.gz"),
                      str(shared_data / "code_alpaca" / "code_alpaca_2k.jsonl.gz"),
                      str(shared_data / "gsm8k" / "train.jsonl.gz")])
    counts = pool["source"].value_counts().to_dict()
    assert counts == {"gsm8k-train": 7473, "dolly_filtered_3k": 2996, "code_alpaca_2k": 2017}
    assert pool["id"].is_unique
    assert (pool["prompt"].str.len() > 0).all()
