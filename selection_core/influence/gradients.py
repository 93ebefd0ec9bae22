"""LESS gradient features: per-example LoRA gradients, Adam preconditioning, random projection,
and the RDS baseline's last-token representations.

Per-example gradients come from one batched backward pass: for every trainable `nn.Linear`
(peft's lora_A / lora_B) a forward hook keeps its input x and its output, one `autograd.grad`
call returns each output's gradient δ, and an example's weight gradient is Σ_t δ_t x_tᵀ (the
classic per-sample trick). Because the batch loss is the *sum* of per-example losses and examples
never interact in a forward pass, δ restricted to example i is exactly the gradient of example
i's own loss — the same numbers as a batch-size-1 loop (LESS's reference code), at the cost of
one plain batched backward (benchmarks/bench_features.py).

The projection is a seeded Rademacher matrix generated in fixed blocks of parameter rows, each
block from its own generator seeded by (seed, block index), always on the CPU: the same seed gives
the same projection whatever the chunking, the memory budget or the device.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..spine.errors import ConfigError
from ..lm.formatting import collate, encode_pair, encode_tail
from ..train.lora import example_losses

PROJECTION_BLOCK = 1024  # parameter rows per generator: chunk sizes must be multiples of it


# --------------------------------------------------------------------------- per-example gradients
class PerExampleGradients:
    """Per-example gradients of a model's trainable Linear weights (LoRA A and B matrices).

    `names` lists the trainable parameters in `model.named_parameters()` order — the order of
    the flattened gradient vector and of the optimizer-state vectors built by `adam_state`.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        holders: dict[int, list[tuple[str, torch.nn.Module]]] = {}
        for module in model.modules():
            for kind, param in module.named_parameters(recurse=False):
                holders.setdefault(id(param), []).append((kind, module))
        self.names: list[str] = []
        self._slots: list[tuple[str, torch.nn.Linear]] = []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            held = holders[id(param)]
            # a weight shared with another module (tied embeddings) also gets gradient there,
            # which the hooks of one Linear would silently miss
            if len(held) != 1 or not isinstance(held[0][1], torch.nn.Linear):
                raise ConfigError(f"trainable parameter {name} is not a Linear layer's own "
                                  "weight; per-example gradients cover LoRA / Linear weights "
                                  "only")
            self.names.append(name)
            self._slots.append(held[0])
        if not self.names:
            raise ConfigError("the model has no trainable parameters (load the adapter with "
                              "is_trainable=True)")
        self.dim = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self._seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles = []
        for module in {id(m): m for _, m in self._slots}.values():
            self._handles.append(module.register_forward_hook(self._watch))

    def _watch(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Keep the module's input and its output (whose gradient δ the backward asks for)."""
        self._seen[id(module)] = (inputs[0].detach(), output)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, dim) float32 gradients of each example's mean response-token loss.

        The backward asks autograd for the δ of the watched outputs only: no summed `.grad` is
        accumulated into the parameters (it would be thrown away) and theirs stay untouched.
        """
        try:
            losses = example_losses(self.model, batch)
            keys = list(self._seen)
            deltas = dict(zip(keys, torch.autograd.grad(  # an unused output's δ is 0
                losses.sum(), [self._seen[k][1] for k in keys], allow_unused=True,
                materialize_grads=True)))
            parts = []
            for kind, module in self._slots:
                x, delta = self._seen[id(module)][0].float(), deltas[id(module)].float()
                if kind == "weight":
                    parts.append(torch.einsum("bto,bti->boi", delta, x).flatten(1))
                else:
                    parts.append(delta.sum(dim=1))
        finally:
            self._seen.clear()
        return torch.cat(parts, dim=1)


def loop_gradients(model: Any, examples: Sequence[dict[str, list[int]]], pad_id: int
                   ) -> torch.Tensor:
    """The reference: one backward pass per example, reading `.grad` (LESS's batch-size-1 loop)."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    device = params[0].device
    for example in examples:
        model.zero_grad(set_to_none=True)
        batch = {k: v.to(device) for k, v in collate([example], pad_id).items()}
        example_losses(model, batch).sum().backward()
        rows.append(torch.cat([p.grad.flatten().float() if p.grad is not None else
                               torch.zeros(p.numel(), device=device) for p in params]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


# --------------------------------------------------------------------------- Adam preconditioning
@dataclass(frozen=True)
class AdamState:
    """First and second moments of a checkpoint's AdamW state, flattened in parameter order."""

    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


def adam_state(checkpoint: Path, names: Sequence[str], device: torch.device | str = "cpu"
               ) -> AdamState:
    """Read `optimizer.safetensors` written by the LoRA trainer for the given parameters."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(checkpoint) / "optimizer.safetensors"))
    missing = [n for n in names if f"{n}.exp_avg" not in tensors]
    if missing:
        raise ConfigError(f"{checkpoint} has no optimizer state for {missing[0]} "
                          f"({len(missing)} parameters missing)")
    return AdamState(torch.cat([tensors[f"{n}.exp_avg"].flatten() for n in names]).to(device),
                     torch.cat([tensors[f"{n}.exp_avg_sq"].flatten() for n in names]).to(device))


Preconditioner = Literal["less", "adam"]
PRECONDITIONERS: tuple[str, ...] = ("less", "adam")


def adam_precondition(gradients: torch.Tensor, state: AdamState,
                      preconditioner: Preconditioner = "less") -> torch.Tensor:
    """Γ from m' = β1·m + (1−β1)·g and v' = β2·v + (1−β2)·g² (Xia et al., 2024), no bias correction.

    "less" (default) is LESS's code, which BIDS ran: Γ = m' / √(v' + ε), ε inside the root.
    "adam" is the optimizer's own step direction, Γ = m' / (√v' + ε). They differ most where v'
    is tiny (LoRA weights that barely moved), enough to reorder a selection.
    """
    if preconditioner not in PRECONDITIONERS:
        raise ConfigError(f"unknown preconditioner '{preconditioner}'; use "
                          f"{', '.join(PRECONDITIONERS)}")
    m = state.beta1 * state.exp_avg + (1 - state.beta1) * gradients
    v = state.beta2 * state.exp_avg_sq + (1 - state.beta2) * gradients.square()
    if preconditioner == "less":
        return m / torch.sqrt(v + state.eps)
    return m / (torch.sqrt(v) + state.eps)


# --------------------------------------------------------------------------- projection
def _block_seed(seed: int, block: int) -> int:
    digest = hashlib.sha256(f"rademacher:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def rademacher_block(seed: int, block: int, rows: int, dim: int) -> torch.Tensor:
    """Rows [block·1024, block·1024 + rows) of the projection: ±1/√dim, float32, on the CPU."""
    generator = torch.Generator().manual_seed(_block_seed(seed, block))
    signs = torch.randint(0, 2, (rows, dim), generator=generator, dtype=torch.int8)
    return (signs.float() * 2 - 1) / np.sqrt(dim)


class RademacherProjector:
    """x (batch × dim_in) ↦ x·P (batch × dim_out) with a seeded Rademacher P, E[PPᵀ] = I.

    P is kept on the device when it fits in `max_cache_bytes`; otherwise it is regenerated in
    chunks of `chunk_rows` parameter rows for every call (memory bounded by one chunk).
    """

    def __init__(self, dim_in: int, dim_out: int, seed: int = 0,
                 chunk_rows: int = 16 * PROJECTION_BLOCK, max_cache_bytes: int = 2 ** 30,
                 device: torch.device | str = "cpu") -> None:
        if chunk_rows % PROJECTION_BLOCK:
            raise ConfigError(f"chunk_rows must be a multiple of {PROJECTION_BLOCK}")
        if dim_out < 1:
            raise ConfigError(f"projection dimension must be ≥ 1, got {dim_out}")
        self.dim_in, self.dim_out, self.seed = dim_in, dim_out, seed
        self.chunk_rows = chunk_rows
        self.device = torch.device(device)
        self._cached = (self._chunk(0, dim_in).to(self.device)
                        if dim_in * dim_out * 4 <= max_cache_bytes else None)

    def _chunk(self, start: int, stop: int) -> torch.Tensor:
        first, last = start // PROJECTION_BLOCK, (stop - 1) // PROJECTION_BLOCK
        blocks = [rademacher_block(self.seed, b, min(PROJECTION_BLOCK,
                                                     self.dim_in - b * PROJECTION_BLOCK),
                                   self.dim_out) for b in range(first, last + 1)]
        return torch.cat(blocks)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.dim_in:
            raise ConfigError(f"expected {self.dim_in} columns, got {x.shape[1]}")
        x = x.to(self.device, torch.float32)
        if self._cached is not None:
            return x @ self._cached
        out = torch.zeros(x.shape[0], self.dim_out, device=self.device)
        for start in range(0, self.dim_in, self.chunk_rows):
            stop = min(start + self.chunk_rows, self.dim_in)
            out += x[:, start:stop] @ self._chunk(start, stop).to(self.device)
        return out


# --------------------------------------------------------------------------- features
def gradient_features(model: Any, tokenizer: Any, prompts: Sequence[str],
                      responses: Sequence[str], projector: RademacherProjector,
                      optimizer_state: AdamState | None = None,
                      preconditioner: Preconditioner = "less", add_eos: bool = True,
                      batch_size: int = 8, max_length: int = 2048,
                      use_chat_template: bool | None = None) -> np.ndarray:
    """L2-normalised projected gradients, one row per (prompt, response), in input order.

    With `optimizer_state` the gradients are Adam-preconditioned (training examples); without,
    plain (validation instances). `add_eos`: the response ends with the tokenizer's EOS, as LESS
    tokenises training data (its validation text has none). Batches group similar lengths.
    """
    examples = [encode_pair(tokenizer, p, r, max_length, add_eos=add_eos,
                            use_chat_template=use_chat_template)
                for p, r in zip(prompts, responses, strict=True)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    out = np.zeros((len(examples), projector.dim_out), dtype=np.float32)
    grads = PerExampleGradients(model)
    try:
        model.eval()  # no dropout: a feature must not depend on the batch it was computed in
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in rows],
                                                         pad_id).items()}
            g = grads(batch)
            if optimizer_state is not None:
                g = adam_precondition(g, optimizer_state, preconditioner)
            projected = projector(g)
            projected = projected / projected.norm(dim=1, keepdim=True).clamp(min=1e-12)
            out[rows] = projected.cpu().numpy()
    finally:
        grads.close()
    return out


@torch.no_grad()
def last_token_states(model: Any, tokenizer: Any, prompts: Sequence[str],
                      responses: Sequence[str], add_eos: bool = True, batch_size: int = 8,
                      max_length: int = 2048, use_chat_template: bool | None = None
                      ) -> np.ndarray:
    """RDS features: the final layer's hidden state at each sequence's last real token,
    L2-normalised (LESS's `collect_reps`). Sequences are tokenised as for the gradients; one too
    long loses its middle, never its end (`encode_tail`), so the last token is the text's own."""
    sequences = [encode_tail(tokenizer, p, r, max_length, add_eos, use_chat_template)
                 for p, r in zip(prompts, responses, strict=True)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([{"input_ids": sequences[i], "labels": sequences[i]} for i in rows],
                            pad_id)
            mask = batch["attention_mask"].to(device)
            hidden = model(input_ids=batch["input_ids"].to(device), attention_mask=mask,
                           output_hidden_states=True).hidden_states[-1].float()
            last = hidden[torch.arange(len(rows), device=device), mask.sum(dim=1) - 1]
            last = last / last.norm(dim=1, keepdim=True).clamp(min=1e-12)
            if out is None:
                out = np.zeros((len(sequences), last.shape[1]), dtype=np.float32)
            out[rows] = last.cpu().numpy()
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
