"""Batched generation: greedy by default (sampled at a temperature, seeded), stop strings, prompts
formatted exactly as in training (few-shot chats turn by turn)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..lm.formatting import encode_prompt
from ..lm.prompts import Prompt
from ..progress import Progress



def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut a completion at the first stop string (the stop string itself removed)."""
    cut = len(text)
    for marker in stop:
        if marker and (position := text.find(marker)) != -1:
            cut = min(cut, position)
    return text[:cut]


class _StopOnStrings:
    """Ends generation once every sequence of the batch contains a stop string or EOS."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:],
                                            skip_special_tokens=True)
        done = [any(s in text for s in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, left: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded to one width (on the left for generation, on the right for scoring the
    last real position) and their attention mask."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        span = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
        attention[row, span] = 1
    return input_ids, attention


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[Prompt], max_new_tokens: int = 256,
             batch_size: int = 8, stop: Sequence[str] = (), max_prompt_tokens: int | None = None,
             use_chat_template: bool | None = None, temperature: float = 0.0, seed: int = 0,
             progress: Progress | None = None) -> list[str]:
    """Completions for `prompts`, in input order. Greedy unless `temperature` > 0.

    Prompts are left-padded in length-sorted batches; each completion is cut at the first stop
    string. A prompt longer than `max_prompt_tokens` (default: what the model's context leaves
    after `max_new_tokens`, so few-shot examples are kept) loses its start. The model is switched
    to eval mode (dropout off) for the duration.
    """
    from transformers import StoppingCriteriaList

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    if max_prompt_tokens is None:
        context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        max_prompt_tokens = max(1, (context or 2048) - max_new_tokens)
    encoded = [encode_prompt(tokenizer, p, max_prompt_tokens, use_chat_template) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    # Sampling as the reference harnesses sample (vLLM's defaults): the full distribution at the
    # temperature, no top-k (transformers would otherwise apply its default top_k=50).
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
        if temperature > 0 else {"do_sample": False, "temperature": None, "top_k": None,
                                 "top_p": None}
    if temperature > 0:
        torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            input_ids, attention = pad_batch([encoded[i] for i in rows], pad_id, left=True)
            width = input_ids.shape[1]
            criteria = StoppingCriteriaList([_StopOnStrings(tokenizer, stop, width)]) if stop \
                else None
            generated = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens, pad_token_id=pad_id, stopping_criteria=criteria,
                **sampling)
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            for i, text in zip(rows, texts, strict=True):
                outputs[i] = truncate_at_stop(text, stop)
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return outputs
