"""Prompt formatting, label masking, truncation, collation and batched response likelihoods."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selection_core.spine.errors import ConfigError
from selection_core.lm.formatting import (
    IGNORE_INDEX,
    PLAIN_TEMPLATE,
    collate,
    encode_pair,
    encode_tail,
    format_prompt,
    response_log_likelihood,
    special_prefix,
    truncate_tokens,
)
from selection_core.lm.loading import load_causal_lm
from selection_core.lm.tiny import build_tiny_causal_lm

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STORIES = SHARED / "data" / "models" / "stories260K"

PROMPTS = ["Name a colour.", "Write a haiku about autumn leaves falling slowly.", "2+2?",
           "Explain why the sky is blue in one sentence, please.", "Hi", "Say nothing."]
RESPONSES = ["Blue.", "Leaves drift down, golden,\nwhispering to the cold ground.", "4",
             "Air scatters short blue wavelengths of sunlight more than red ones.", "Hello!", ""]


@pytest.fixture(scope="module", params=["chat", "plain"])
def model_and_tokenizer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny_causal_lm(tmp_path_factory.mktemp(request.param) / "model",
                                chat_template=request.param == "chat")
    return load_causal_lm(str(path), device="cpu", cache=False)


def test_format_prompt_uses_the_template_when_there_is_one(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    plain = PLAIN_TEMPLATE.format(prompt="Hi {there}")
    assert plain == "### Instruction:\nHi {there}\n\n### Response:\n"
    assert format_prompt(tokenizer, "Hi {there}", use_chat_template=False) == plain
    if tokenizer.chat_template:
        assert format_prompt(tokenizer, "Hi") == "<s><|user|>\nHi</s>\n<|assistant|>\n"
    else:
        assert format_prompt(tokenizer, "Hi {there}") == plain
        with pytest.raises(ConfigError, match="no chat template"):
            format_prompt(tokenizer, "Hi", use_chat_template=True)


def test_prompt_tokens_are_masked_and_bos_appears_once(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    example = encode_pair(tokenizer, "Name a colour.", "Blue.")
    ids, labels = example["input_ids"], example["labels"]
    response_ids = tokenizer("Blue.", add_special_tokens=False)["input_ids"]
    response_ids += [tokenizer.eos_token_id]
    n_prompt = len(ids) - len(response_ids)
    assert ids[n_prompt:] == response_ids and labels[n_prompt:] == response_ids
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    prompt_text = format_prompt(tokenizer, "Name a colour.")
    assert tokenizer.decode(ids[:n_prompt]) == "<s>" + prompt_text.removeprefix("<s>")
    no_eos = encode_pair(tokenizer, "Name a colour.", "Blue.", add_eos=False)
    assert no_eos["input_ids"] == ids[:-1]


def test_truncation_cuts_the_prompt_first_then_the_response_end(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    response = "Short answer."
    full = encode_pair(tokenizer, "word " * 200, response)
    cut = encode_pair(tokenizer, "word " * 200, response, max_length=64)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    response_ids += [tokenizer.eos_token_id]
    assert len(full["input_ids"]) > 64 and len(cut["input_ids"]) == 64
    assert cut["input_ids"][-len(response_ids):] == response_ids  # the response is intact
    assert cut["input_ids"][0] == tokenizer.bos_token_id  # the prompt lost its start, not its BOS
    assert cut["input_ids"][1:-len(response_ids)] == full["input_ids"][-63:-len(response_ids)]

    long_response = "x" * 100
    cut = encode_pair(tokenizer, "prompt", long_response, max_length=32)
    assert cut["input_ids"] == [tokenizer.bos_token_id] + tokenizer(
        long_response, add_special_tokens=False)["input_ids"][:31]
    assert cut["labels"][0] == IGNORE_INDEX and IGNORE_INDEX not in cut["labels"][1:]


def test_collate_right_pads() -> None:
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                     {"input_ids": [8], "labels": [8]}], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert all(tensor.dtype == torch.long for tensor in batch.values())


def manual_log_likelihood(model, tokenizer, prompt: str, response: str) -> tuple[float, int]:
    """One unpadded example at a time: the reference for the batched computation."""
    example = encode_pair(tokenizer, prompt, response, add_eos=False)
    ids, labels = example["input_ids"], example["labels"]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    positions = [i for i in range(1, len(ids)) if labels[i] != IGNORE_INDEX]
    return sum(log_probs[i - 1, ids[i]].item() for i in positions), len(positions)


def test_response_log_likelihood_matches_a_per_example_loop(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    calls: list[tuple[int, int]] = []
    sums, counts = response_log_likelihood(model, tokenizer, PROMPTS, RESPONSES, batch_size=4,
                                           progress=lambda done, total: calls.append((done, total)))
    expected = [manual_log_likelihood(model, tokenizer, prompt, response)
                for prompt, response in zip(PROMPTS, RESPONSES, strict=True)]
    assert counts.tolist() == [count for _, count in expected]
    np.testing.assert_allclose(sums, [total for total, _ in expected], atol=1e-4, rtol=0)
    assert counts[-1] == 0 and sums[-1] == 0.0  # empty response
    assert calls[-1] == (len(PROMPTS), len(PROMPTS))

    empty_sums, empty_counts = response_log_likelihood(model, tokenizer, ["a"], [""])
    assert empty_sums.tolist() == [0.0] and empty_counts.tolist() == [0]


@pytest.mark.skipif(not (STORIES / "stories260K.bin").is_file(),
                    reason=f"shared data not found at {STORIES} (../shared beside the repo)")
def test_sentencepiece_model_prefers_a_fluent_response(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_CACHE", str(tmp_path))
    model, tokenizer = load_causal_lm(str(STORIES / "stories260K.bin"), device="cpu", cache=False)
    prompt = "Tell me a story."
    fluent, scrambled = "Once upon a time, there was a little girl.", "girl upon little a was, Once"
    sums, counts = response_log_likelihood(model, tokenizer, [prompt, prompt], [fluent, scrambled])
    assert sums[0] / counts[0] > sums[1] / counts[1]
    ids = encode_pair(tokenizer, prompt, fluent)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1


def test_truncate_tokens_cuts_long_texts_at_the_cap_and_keeps_the_rest(
        model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer  # byte-level: one token per byte
    texts = ["short", "x" * 40, "héllo wörld" * 3, ""]
    cut = truncate_tokens(tokenizer, texts, 12)
    assert cut[0] == "short" and cut[1] == "x" * 12 and cut[3] == ""
    assert cut[2] == tokenizer.decode(tokenizer(texts[2], add_special_tokens=False)
                                      ["input_ids"][:12])
    assert all(len(tokenizer(c, add_special_tokens=False)["input_ids"]) <= 12 for c in cut)


def test_encode_tail_keeps_the_real_end_of_a_long_text(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    full = encode_pair(tokenizer, PROMPTS[1], RESPONSES[1], max_length=10_000)["input_ids"]
    assert encode_tail(tokenizer, PROMPTS[1], RESPONSES[1], max_length=10_000) == full
    tail = encode_tail(tokenizer, PROMPTS[1], RESPONSES[1], max_length=20)
    prefix = special_prefix(tokenizer)
    assert len(tail) == 20 and tail[:len(prefix)] == prefix
    assert tail[-1] == tokenizer.eos_token_id and tail[len(prefix):] == full[-(20 - len(prefix)):]
    no_eos = encode_tail(tokenizer, PROMPTS[1], RESPONSES[1], max_length=20, add_eos=False)
    assert tokenizer.decode(no_eos[-5:]) == RESPONSES[1][-5:]
