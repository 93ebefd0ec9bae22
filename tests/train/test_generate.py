"""Generation from few-shot chats and raw text: the model sees exactly the rendered prompt, long
few-shot prompts are kept whole (the context, not a fixed 1024 tokens, bounds them), greedy
decoding equals transformers' own while finished rows leave the batch, sampling is seeded and
unrestricted."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selection_core.lm.formatting import PLAIN_TEMPLATE, encode_prompt, format_prompt
from selection_core.lm.loading import load_causal_lm
from selection_core.lm.prompts import RawText
from selection_core.lm.tiny import build_tiny_causal_lm
from selection_core.train import generate as generation

CHAT = [{"role": "user", "content": "Q: 1 + 1?"}, {"role": "assistant", "content": "A: 2."},
        {"role": "user", "content": "Q: 2 + 2?"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm", seed=0,
                                chat_template=False)  # a base model: the plain template
    return load_causal_lm(str(path), device="cpu", cache=False)


def test_a_chat_without_template_is_the_plain_template_turn_by_turn(tiny) -> None:
    _, tokenizer = tiny
    assert format_prompt(tokenizer, CHAT) == (PLAIN_TEMPLATE.format(prompt="Q: 1 + 1?")
                                              + "A: 2.\n\n"
                                              + PLAIN_TEMPLATE.format(prompt="Q: 2 + 2?"))
    assert format_prompt(tokenizer, "Q: 2 + 2?") == PLAIN_TEMPLATE.format(prompt="Q: 2 + 2?")
    assert format_prompt(tokenizer, RawText("Q: 2 + 2?\nA:")) == "Q: 2 + 2?\nA:"


def first_forward_inputs(model, monkeypatch) -> list[list[int]]:
    """The prompt ids each batch's first forward pass (the prefill) receives."""
    seen: list[list[int]] = []
    real = model.forward

    def spy(*args, **kwargs):
        if kwargs.get("past_key_values") is None:
            seen.extend(kwargs["input_ids"][row][kwargs["attention_mask"][row].bool()].tolist()
                        for row in range(len(kwargs["input_ids"])))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return seen


def test_generation_starts_from_the_rendered_prompt(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    monkeypatch.setattr(model.config, "max_position_embeddings", 8192)
    seen = first_forward_inputs(model, monkeypatch)
    long_raw = RawText("example: 7\n" * 300 + "Q: 2 + 2?\nA:")  # ~4000 tokens, > 1024
    out = generation.generate(model, tokenizer, [CHAT, long_raw], max_new_tokens=3,
                              batch_size=1)
    assert len(out) == 2
    rendered = sorted(len(encode_prompt(tokenizer, p)) for p in (CHAT, long_raw))
    assert sorted(len(ids) for ids in seen) == rendered  # nothing cut: the context allows it
    assert rendered[-1] > 1024
    monkeypatch.setattr(model.config, "max_position_embeddings", 1024)
    generation.generate(model, tokenizer, [long_raw], max_new_tokens=3)
    assert len(seen[-1]) == 1024 - 3  # the context bounds prompt + generation


def test_greedy_decoding_equals_transformers_generate_as_rows_finish(tiny) -> None:
    """The reference is `model.generate`, one row at a time (no padding, no batch effects).
    Here rows of different prompt lengths share left-padded batches and leave them at
    different steps, when they reach EOS; each row's tokens must not change."""
    _, tokenizer = tiny
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, initializer_range=0.3)
    torch.manual_seed(0)  # wide weights: varied tokens that depend on every position
    model = LlamaForCausalLM(config).eval()
    eos = [8, 177]  # frequent under these weights, so rows end at different steps
    model.generation_config.eos_token_id = eos
    prompts = [encode_prompt(tokenizer, f"Q: {'word ' * (3 * i)}{i} + {i}?") for i in range(6)]
    reference = []
    for ids in prompts:
        row = torch.tensor([ids])
        out = model.generate(input_ids=row, attention_mask=torch.ones_like(row),
                             max_new_tokens=40, do_sample=False, pad_token_id=0)[0, len(ids):]
        tokens = out.tolist()
        reference.append(tokens[:next((i for i, t in enumerate(tokens) if t in eos),
                                      len(tokens))])
    input_ids, attention = generation.pad_batch(prompts, 0, left=True)
    got = generation._decode(model, tokenizer, input_ids, attention, 40, (), 0.0, None)
    assert got == reference
    assert len({len(tokens) for tokens in reference}) >= 3  # rows left at different steps


def test_sampling_is_seeded_and_unrestricted(tiny) -> None:
    model, tokenizer = tiny
    prompts = ["Say something.", "Say more."]
    first = generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                seed=1)
    again = generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                seed=1)
    other = [generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                 seed=seed) for seed in (2, 3, 4)]
    assert first == again and any(texts != first for texts in other)
    # the full distribution at the temperature, as vLLM samples: transformers' default top_k=50
    # would leave at most 50 distinct tokens; a near-flat distribution over the whole
    # vocabulary gives many more
    ids = torch.tensor([encode_prompt(tokenizer, "Say something.")] * 8)
    rows = generation._decode(model, tokenizer, ids, torch.ones_like(ids), 48, (), 1000.0,
                              torch.Generator().manual_seed(0))
    distinct = {token for row in rows for token in row}  # ids: bytes need not decode
    assert len(distinct) > 60, len(distinct)
