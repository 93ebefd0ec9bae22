"""Log-likelihoods in bounded memory (issue 15 §5): the output head sees at most
LOGIT_CHUNK_POSITIONS scored positions at a time, never batch × length × vocabulary, and the
scores are those of the full forward pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selection_core.lm import formatting
from selection_core.lm.formatting import IGNORE_INDEX, collate, encode_pair, \
    response_log_likelihood
from selection_core.lm.loading import load_causal_lm
from selection_core.lm.tiny import build_tiny_causal_lm

PROMPTS = ["Name a colour.", "Write a haiku about autumn leaves falling slowly.", "2+2?",
           "Explain why the sky is blue in one sentence, please.", "Hi", "Say nothing."] * 3
RESPONSES = ["Blue.", "Leaves drift down, golden,\nwhispering to the cold ground.", "4",
             "Air scatters short blue wavelengths of sunlight more than red ones.", "Hello!",
             ""] * 3


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny_causal_lm(tmp_path_factory.mktemp("chunked") / "model")
    return load_causal_lm(str(path), device="cpu", cache=False)


def full_forward_sums(model, tokenizer, batch_size: int) -> np.ndarray:
    """The pre-issue-15 computation: the whole logits tensor, then the scored positions."""
    sums = []
    for start in range(0, len(PROMPTS), batch_size):
        examples = [encode_pair(tokenizer, p, r, max_length=512, add_eos=False)
                    for p, r in zip(PROMPTS[start:start + batch_size],
                                    RESPONSES[start:start + batch_size], strict=True)]
        batch = collate(examples, tokenizer.pad_token_id or 0)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets.clamp(min=0),
                              reduction="none")
        sums += (-(nll * (targets != IGNORE_INDEX)).double().sum(dim=1)).tolist()
    return np.array(sums)


def test_head_sees_bounded_chunks_and_scores_match_the_full_forward(
        model_and_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = model_and_tokenizer
    monkeypatch.setattr(formatting, "LOGIT_CHUNK_POSITIONS", 16)
    shapes: list[tuple[int, ...]] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, inputs, output: shapes.append(tuple(output.shape)))
    try:
        sums, counts = response_log_likelihood(model, tokenizer, PROMPTS, RESPONSES, batch_size=6)
    finally:
        hook.remove()
    kept = [shape for shape in shapes if len(shape) == 3]  # the model's own forward: 1 position
    chunks = [shape for shape in shapes if len(shape) == 2]
    assert kept and all(shape[1] == 1 for shape in kept), shapes
    assert chunks and all(shape[0] <= 16 for shape in chunks), shapes
    assert sum(shape[0] for shape in chunks) == counts.sum()
    np.testing.assert_allclose(sums, full_forward_sums(model, tokenizer, 6), rtol=1e-5, atol=1e-4)
