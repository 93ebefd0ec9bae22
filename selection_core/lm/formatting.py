"""(prompt, response) pairs → token ids and labels, shared by LM scoring and training.

Why one module: a response's likelihood (perplexity / IFD-style scores) and the LoRA training loss
must see exactly the same text, template, special tokens and truncation, or scores computed for
selection would not describe what the trained model learns from.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..spine.errors import ConfigError
from ..spine.progress import Progress
from .prompts import Prompt, RawText

IGNORE_INDEX = -100  # label of tokens that are not predicted (prompt, padding); torch's default
PLAIN_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"



def has_chat_template(tokenizer: Any) -> bool:
    """Instruct models ship a chat template; base models (and llama2.c stories) do not."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer: Any, prompt: Prompt, use_chat_template: bool | None = None) -> str:
    """The prompt as the model should see it before the response starts.

    `use_chat_template=None` uses the tokenizer's chat template when it has one (instruct
    models), else the Alpaca-style plain template (base models), applied turn by turn to a chat.
    A chat ending with an assistant turn is a prefill: its text follows the generation prompt,
    as the UltraInteract kit appends it (MBPP's "```python\ndef").
    """
    if isinstance(prompt, RawText):
        return str(prompt)
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    prefill = ""
    if messages and messages[-1]["role"] == "assistant":
        prefill, messages = messages[-1]["content"], messages[:-1]
    if use_chat_template is None:
        use_chat_template = has_chat_template(tokenizer)
    if not use_chat_template:
        return "".join(PLAIN_TEMPLATE.format(prompt=m["content"]) if m["role"] == "user"
                       else f"{m['content']}\n\n" for m in messages) + prefill
    if not has_chat_template(tokenizer):
        raise ConfigError("use_chat_template=True but this tokenizer has no chat template")
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                         tokenize=False) + prefill


def special_prefix(tokenizer: Any) -> list[int]:
    """Ids the tokenizer puts before any text (Llama's BOS; nothing for GPT-2 or Qwen).

    Found by encoding a probe with and without special tokens, which works for any tokenizer
    without knowing its post-processor.
    """
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []


def encode_pair(tokenizer: Any, prompt: str, response: str, max_length: int = 512,
                add_eos: bool = True,
                use_chat_template: bool | None = None) -> dict[str, list[int]]:
    """Token ids of prompt + response, with labels = -100 on the prompt.

    Prompt and response are tokenised separately so the boundary is exact (a sentencepiece
    tokenizer therefore starts the response with its word-start marker, as after a newline).
    The tokenizer's prefix (BOS) appears once: added unless the chat template already wrote it.
    Too long: the prompt is cut from the left (keeping the prefix), then the response from the
    right, so the response's start is always kept.
    """
    return _encode(tokenizer, format_prompt(tokenizer, prompt, use_chat_template), response,
                   max_length, add_eos, special_prefix(tokenizer))


def encode_tail(tokenizer: Any, prompt: str, response: str, max_length: int = 512,
                add_eos: bool = True, use_chat_template: bool | None = None) -> list[int]:
    """Token ids of prompt + response as `encode_pair` makes them, but when too long the middle
    goes (the prefix and the last tokens stay), so the final token is the text's real end —
    what a last-token representation (RDS) must read."""
    prefix = special_prefix(tokenizer)
    ids = _encode(tokenizer, format_prompt(tokenizer, prompt, use_chat_template), response,
                  2 ** 62, add_eos, prefix)["input_ids"]
    if len(ids) <= max_length:
        return ids
    if max_length <= len(prefix):
        raise ConfigError(f"max_length={max_length} leaves no room for text")
    return prefix + ids[len(ids) - (max_length - len(prefix)):]


def encode_prompt(tokenizer: Any, prompt: Prompt, max_length: int | None = None,
                  use_chat_template: bool | None = None) -> list[int]:
    """Token ids of the formatted prompt alone, as training saw it — what generation starts from
    (BOS once; when too long, cut from the left keeping BOS)."""
    prefix = special_prefix(tokenizer)
    ids = _prompt_ids(tokenizer, format_prompt(tokenizer, prompt, use_chat_template), prefix)
    if max_length is not None:
        ids = ids[max(0, len(ids) - (max_length - len(prefix))):]
    return prefix + ids


def _prompt_ids(tokenizer: Any, prompt_text: str, prefix: list[int]) -> list[int]:
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    if prefix and prompt_ids[:len(prefix)] == prefix:  # the chat template wrote BOS itself
        prompt_ids = prompt_ids[len(prefix):]
    return prompt_ids


def _encode(tokenizer: Any, prompt_text: str, response: str, max_length: int, add_eos: bool,
            prefix: list[int]) -> dict[str, list[int]]:
    if max_length <= len(prefix):
        raise ConfigError(f"max_length={max_length} leaves no room for text")
    prompt_ids = _prompt_ids(tokenizer, prompt_text, prefix)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] if response else []
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]

    room = max_length - len(prefix)
    response_ids = response_ids[:room]
    keep = min(len(prompt_ids), room - len(response_ids))
    prompt_ids = prefix + prompt_ids[len(prompt_ids) - keep:]
    return {"input_ids": prompt_ids + response_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids}


def truncate_tokens(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut to its first `max_tokens` tokens (no special tokens), decoded as generation
    decodes; texts that fit come back unchanged. Why: a generation stops at its token cap, so
    the reference it is compared with must stop there too."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    return [text if len(row) <= max_tokens else
            tokenizer.decode(row[:max_tokens], skip_special_tokens=True)
            for text, row in zip(texts, ids, strict=True)]


def collate(examples: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad `encode_pair` outputs into input_ids / labels (-100) / attention_mask tensors."""
    if not examples:
        raise ValueError("collate needs at least one example")
    width = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"], dtype=torch.long)
        labels[row, :length] = torch.tensor(example["labels"], dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@torch.no_grad()
def response_log_likelihood(model: Any, tokenizer: Any, prompts: Sequence[Prompt],
                            responses: Sequence[str], batch_size: int = 8, max_length: int = 512,
                            progress: Progress | None = None,
                            use_chat_template: bool | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Per example: summed log-probability of the response tokens given the prompt, and their count.

    The response's own tokens are scored (no EOS), so an empty response has count 0 and sum 0.
    Examples are batched by length (longest first, so running out of memory shows at once) and
    results come back in input order. A response token at position 0 has nothing to be predicted
    from and is not counted (only possible when the tokenizer adds no BOS and the prompt was cut).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    prefix = special_prefix(tokenizer)
    encoded = [_encode(tokenizer, format_prompt(tokenizer, prompt, use_chat_template), response,
                       max_length,
                       add_eos=False, prefix=prefix)
               for prompt, response in zip(prompts, responses, strict=True)]
    counts = np.array([sum(label != IGNORE_INDEX for label in example["labels"][1:])
                       for example in encoded], dtype=np.int64)
    sums = np.zeros(len(encoded), dtype=np.float64)

    scored = [index for index in range(len(encoded)) if counts[index] > 0]
    scored.sort(key=lambda index: -len(encoded[index]["input_ids"]))  # stable: ties keep order
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    done = len(encoded) - len(scored)
    for start in range(0, len(scored), batch_size):
        batch_indices = scored[start:start + batch_size]
        batch = collate([encoded[index] for index in batch_indices], pad_token_id)
        targets = batch["labels"][:, 1:].to(device)
        scored_positions = targets != IGNORE_INDEX  # only these need a float32 log-softmax
        token_nll = scored_token_nll(model, batch["input_ids"].to(device),
                                     batch["attention_mask"].to(device), scored_positions,
                                     targets[scored_positions])
        rows = scored_positions.nonzero()[:, 0]
        batch_sums = torch.zeros(len(batch_indices), dtype=torch.float64, device=device)
        sums[batch_indices] = -batch_sums.index_add_(0, rows, token_nll.double()).cpu().numpy()
        done += len(batch_indices)
        if progress:
            progress(done, len(encoded))
    if progress and not scored:
        progress(len(encoded), len(encoded))
    return sums, counts


LOGIT_CHUNK_POSITIONS = 512  # positions whose vocabulary logits exist at once (~100 MB at 49K)
_SCALED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier")


def scored_token_nll(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     scored: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log p(target) at each scored position (those `scored[:, :-1]` marks), float32; the one
    loss of LM scoring (no grad) and LoRA training and gradient features (with grad).

    Bounded memory (issue 15 §5): the model runs through its own forward (so PEFT and DDP
    wrappers see the call) with `logits_to_keep=1` and hands back its final hidden states; the
    output head turns `LOGIT_CHUNK_POSITIONS` scored positions at a time into float32 logits.
    With grad, each chunk is checkpointed: its logits are recomputed in the backward instead of
    kept, so no batch × length × vocabulary tensor (8 × 512 × 49K fp32 is 800 MB, and the
    log-softmax and its gradient as much again) is ever held. Models whose head output is
    rescaled after the projection (soft-capping, logit scales), or whose forward takes no
    `logits_to_keep`, take the full logits as before."""
    head = _output_head(model)
    if head is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return F.cross_entropy(logits[:, :-1][scored].float(), targets, reduction="none")
    hidden = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1,
                   output_hidden_states=True).hidden_states[-1]
    hidden = hidden[:, :-1][scored]
    checkpointed = torch.is_grad_enabled() and hidden.requires_grad
    parts = []
    for start in range(0, len(hidden), LOGIT_CHUNK_POSITIONS):
        chunk = (head, hidden[start:start + LOGIT_CHUNK_POSITIONS],
                 targets[start:start + LOGIT_CHUNK_POSITIONS])
        parts.append(checkpoint(_head_nll, *chunk, use_reentrant=False, preserve_rng_state=False)
                     if checkpointed else _head_nll(*chunk))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def _head_nll(head: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="none")


def _output_head(model: Any) -> Any | None:
    """The head of `model` (unwrapped from DDP and PEFT) when its logits are exactly
    head(final hidden state) and its forward can skip them (`logits_to_keep`); else None."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    config = getattr(base, "config", None)
    if config is None or any(getattr(config, name, None) not in (None, 1, 1.0)
                             for name in _SCALED_LOGITS):
        return None
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return None
    try:
        return base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def mean_log_likelihood(model: Any, tokenizer: Any, prompts: Sequence[Prompt],
                        responses: Sequence[str], batch_size: int = 8, max_length: int = 512,
                        progress: Progress | None = None,
                        use_chat_template: bool | None = None) -> np.ndarray:
    """Per example: mean log-probability per response token (= −log perplexity), float64.

    An empty response has no tokens to judge; it gets −log(vocabulary size), the score of a model
    that guesses uniformly — worse than any answer a trained model finds plausible. The one floor
    for the perplexity scorer and the iterative method's answer scores.
    """
    total, count = response_log_likelihood(model, tokenizer, prompts, responses,
                                           batch_size=batch_size, max_length=max_length,
                                           progress=progress, use_chat_template=use_chat_template)
    floor = -math.log(len(tokenizer))
    return np.where(count > 0, total / np.maximum(count, 1), floor).astype(np.float64)
