"""Batched generation: greedy by default (sampled at a temperature, seeded), stop strings, prompts
formatted exactly as in training (few-shot chats turn by turn)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..lm.formatting import encode_prompt
from ..lm.prompts import Prompt
from ..spine.progress import Progress



def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut a completion at the first stop string (the stop string itself removed)."""
    cut = len(text)
    for marker in stop:
        if marker and (position := text.find(marker)) != -1:
            cut = min(cut, position)
    return text[:cut]


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


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos) if isinstance(eos, list) else {eos} if eos is not None else set()


def _decode(model: Any, tokenizer: Any, input_ids: torch.Tensor, attention: torch.Tensor,
            max_new_tokens: int, stop: Sequence[str], temperature: float,
            generator: torch.Generator | None) -> list[list[int]]:
    """New token ids for each left-padded row, greedy or sampled from the full distribution at
    `temperature` (as vLLM samples: no top-k, no top-p).

    Why not `model.generate`: it computes every row until the batch's longest answer ends. On a
    CPU a decoding step costs in proportion to the rows it carries, and most answers end long
    before the longest, so here a row leaves the batch (and its KV cache) as soon as it reaches
    EOS or a stop string. Greedy choices are the same; only finished rows' padding is skipped.
    """
    eos = _eos_ids(model, tokenizer)
    stop = [s for s in stop if s]
    new_tokens: list[list[int]] = [[] for _ in range(len(input_ids))]
    running = torch.arange(len(input_ids))
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    for step in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        if temperature > 0:
            chosen = torch.multinomial(torch.softmax(logits / temperature, -1), 1,
                                       generator=generator).squeeze(1)
        else:
            chosen = logits.argmax(-1)
        finished = []
        for slot, (row, token) in enumerate(zip(running.tolist(), chosen.tolist(), strict=True)):
            if token in eos:
                finished.append(True)
                continue
            new_tokens[row].append(token)
            finished.append(bool(stop) and any(
                s in tokenizer.decode(new_tokens[row], skip_special_tokens=True) for s in stop))
        keep = ~torch.tensor(finished, dtype=torch.bool)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            kept = keep.nonzero().squeeze(1).to(attention.device)
            cache.batch_select_indices(kept)
            running, attention, chosen = running[keep], attention[kept], chosen[kept]
        attention = torch.cat([attention, attention.new_ones((len(attention), 1))], dim=1)
        out = model(input_ids=chosen[:, None], attention_mask=attention,
                    position_ids=attention.sum(-1, keepdim=True) - 1, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
    return new_tokens


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[Prompt], max_new_tokens: int = 256,
             batch_size: int = 8, stop: Sequence[str] = (), max_prompt_tokens: int | None = None,
             use_chat_template: bool | None = None, temperature: float = 0.0, seed: int = 0,
             progress: Progress | None = None) -> list[str]:
    """Completions for `prompts`, in input order. Greedy unless `temperature` > 0 (then seeded).

    Prompts are left-padded in length-sorted batches; each completion is cut at the first stop
    string. A prompt longer than `max_prompt_tokens` (default: what the model's context leaves
    after `max_new_tokens`, so few-shot examples are kept) loses its start. The model is switched
    to eval mode (dropout off) for the duration.
    """
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
    generator = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            input_ids, attention = pad_batch([encoded[i] for i in rows], pad_id, left=True)
            new_tokens = _decode(model, tokenizer, input_ids.to(device), attention.to(device),
                                 max_new_tokens, stop, temperature, generator)
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(rows, texts, strict=True):
                outputs[i] = truncate_at_stop(text, stop)
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return outputs
