"""Generation from few-shot chats and raw text: the model sees exactly the rendered prompt, long
few-shot prompts are kept whole (the context, not a fixed 1024 tokens, bounds them), sampling is
seeded."""
from __future__ import annotations

from pathlib import Path

import pytest

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


def test_generation_starts_from_the_rendered_prompt(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    monkeypatch.setattr(model.config, "max_position_embeddings", 8192)
    seen = []
    real = model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"][0].tolist())
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
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


def test_sampling_is_seeded_and_unrestricted(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    settings = []
    real = model.generate

    def spy(**kwargs):
        settings.append({key: kwargs[key] for key in ("do_sample", "top_k", "top_p")})
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    prompts = ["Say something.", "Say more."]
    first = generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                seed=1)
    again = generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                seed=1)
    other = [generation.generate(model, tokenizer, prompts, max_new_tokens=8, temperature=50.0,
                                 seed=seed) for seed in (2, 3, 4)]
    assert first == again and any(texts != first for texts in other)
    # the full distribution at the temperature, as vLLM samples: no top-k (transformers' 50)
    assert settings[0] == {"do_sample": True, "top_k": 0, "top_p": 1.0}
    generation.generate(model, tokenizer, prompts, max_new_tokens=2)
    assert settings[-1]["do_sample"] is False
