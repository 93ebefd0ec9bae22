"""The parts of one LoRA SFT step, pure torch: the loss, the schedule, the batch order and its
split over processes, and the AdamW moments as safetensors (the format LESS's gradient features
read, influence/gradients.py). Kept apart from the Trainer glue (transformers is imported only
for its schedule).
"""
from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..lm.formatting import IGNORE_INDEX, scored_token_nll


def warmup_steps(ratio: float, total: int) -> int:
    """Warm-up steps as transformers counts them (`TrainingArguments.get_warmup_steps`):
    ceil(ratio × steps)."""
    return math.ceil(ratio * total)


def lr_factor(step: int, warmup: int, total: int, decay: str) -> float:
    """The learning-rate multiplier at `step`: transformers' own schedule of that name
    (`get_scheduler`, which LESS and BIDS train with: 0 at step 0, linear warm-up, then linear
    or cosine decay to 0)."""
    return _schedule(decay, warmup, total)(step)


@functools.lru_cache(maxsize=32)
def _schedule(decay: str, warmup: int, total: int) -> Callable[[int], float]:
    from transformers import get_scheduler

    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return get_scheduler(decay, probe, num_warmup_steps=warmup,
                         num_training_steps=total).lr_lambdas[0]


def example_losses(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy over each example's response tokens (0 for none) — LESS's loss,
    computed over chunks of the response positions (`scored_token_nll`: bounded memory)."""
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE_INDEX
    token_nll = scored_token_nll(model, batch["input_ids"], batch["attention_mask"], scored,
                                 targets[scored])
    sums = token_nll.new_zeros(len(targets)).index_add(0, scored.nonzero()[:, 0], token_nll)
    return sums / scored.sum(dim=1).clamp(min=1)


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort within windows of 16 batches, shuffle
    the batches — most of the speed of length grouping, most of the randomness of shuffling."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def save_optimizer_state(path: Path, model: Any, optimizer: torch.optim.Optimizer) -> None:
    """AdamW moments per trainable parameter, by name, as safetensors (never pickle)."""
    tensors = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in state:
                value = state[key]
                tensors[f"{name}.{key}"] = (value if torch.is_tensor(value)
                                            else torch.tensor(float(value))).detach().cpu() \
                    .float().contiguous()
    save_file(tensors, str(path))


def load_optimizer_state(path: Path, model: Any, optimizer: torch.optim.Optimizer) -> None:
    tensors = load_file(str(path))
    for name, param in model.named_parameters():
        if param.requires_grad and f"{name}.exp_avg" in tensors:
            optimizer.state[param] = {
                "exp_avg": tensors[f"{name}.exp_avg"].to(param.device, param.dtype),
                "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].to(param.device, param.dtype),
                "step": tensors[f"{name}.step"].clone()}


class _Rows(torch.utils.data.Dataset):
    """Keys in, keys out: the batch sampler picks rows and weights, the collator builds tensors."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: tuple[int, float, int]) -> tuple[int, float, int]:
        return key


class ShardedBatches(torch.utils.data.Sampler):
    """Each epoch's global batches (precomputed with `_batches`), this process's share of each.

    A process gets rows `rank::world` of a global batch as `(row, weight, rows in the global
    batch)`; a process left without a row (a last batch smaller than the world) gets the batch's
    first row with weight 0, so every process still runs forward and backward (DDP needs it).
    """

    def __init__(self, epochs: list[list[list[int]]], rank: int = 0, world: int = 1) -> None:
        self.epochs, self.rank, self.world, self.epoch = epochs, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.epochs[0])

    def __iter__(self) -> Iterator[list[tuple[int, float, int]]]:
        for rows in self.epochs[self.epoch]:
            share = rows[self.rank::self.world]
            yield [(i, 1.0, len(rows)) for i in share] or [(rows[0], 0.0, len(rows))]
