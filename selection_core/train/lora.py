"""LoRA supervised fine-tuning of any causal LM on (prompt, response) pairs.

Why our own loop rather than HF's Trainer: the influence method needs, per epoch, the adapter,
the AdamW moments of every LoRA parameter and the epoch's mean learning rate (LESS, METHODS
§2.1); the loss must be the per-example mean over response tokens only; and a crash must lose at
most one epoch. All three are a few lines here and awkward through Trainer callbacks.

Layout of `out_dir`:
  checkpoint-epoch<E>/adapter_model.safetensors, adapter_config.json   (peft)
  checkpoint-epoch<E>/optimizer.safetensors   "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step"
  checkpoint-epoch<E>/rng.safetensors         torch's RNG state (a resumed run == an uninterrupted one)
  checkpoint-epoch<E>/state.json              epoch, step, mean_lr, losses, config
  adapter/                                    the final adapter (a copy of the last epoch's)
  history.json                                loss and learning rate per step
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import LoRAConfig
from ..errors import ConfigError
from ..lm.formatting import IGNORE_INDEX, collate, encode_pair
from ..store import write_json
from ..progress import Progress

_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(step: int, warmup: int, total: int, decay: str) -> float:
    """The learning-rate multiplier at `step`: linear warm-up, then linear or cosine decay to 0
    (transformers' get_linear/cosine_schedule_with_warmup, which LESS and BIDS train with)."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if decay == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return max(0.0, 1.0 - progress)


def _target_modules(model: Any, requested: tuple[str, ...] | None) -> list[str] | str:
    if requested:
        return list(requested)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    present = [m for m in _ATTENTION if m in names]
    return present if present else "all-linear"


def example_losses(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy over each example's response tokens (0 for none) — LESS's loss."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.clamp(min=0).reshape(-1), reduction="none").view(targets.shape)
    counts = mask.sum(dim=1)
    return (token_loss * mask).sum(dim=1) / counts.clamp(min=1)


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


class LoRATrainer:
    """`fit` trains LoRA adapters on a base model; learned attributes: `adapter_dir_`,
    `checkpoints_` (one per epoch), `history_` (loss and lr per optimisation step)."""

    def __init__(self, model: str, config: LoRAConfig = LoRAConfig()) -> None:
        self.model = model
        self.config = config

    def _base_model(self) -> tuple[Any, Any]:
        from ..lm.loading import load_causal_lm

        return load_causal_lm(self.model, device=self.config.device, dtype=self.config.dtype,
                              cache=False)

    def _peft_model(self, base: Any, init_adapter: str | Path | None) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model

        if init_adapter is not None:
            return PeftModel.from_pretrained(base, str(init_adapter), is_trainable=True)
        config = self.config
        lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                          target_modules=_target_modules(base, config.target_modules),
                          task_type="CAUSAL_LM")
        return get_peft_model(base, lora)

    def fit(self, prompts: Sequence[str], responses: Sequence[str], out_dir: str | Path,
            init_adapter: str | Path | None = None, progress: Progress | None = None
            ) -> LoRATrainer:
        """Train and save per-epoch checkpoints into `out_dir`; resumes after the last complete
        epoch found there. `init_adapter` continues training an existing adapter."""
        config = self.config
        if len(prompts) != len(responses) or not prompts:
            raise ConfigError(f"need as many responses as prompts (got {len(prompts)} and "
                              f"{len(responses)}), at least one")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        set_seed(config.seed)
        base, tokenizer = self._base_model()
        done_epochs = sorted(int(p.name.removeprefix("checkpoint-epoch"))
                             for p in out.glob("checkpoint-epoch*") if (p / "state.json").exists())
        resume = out / f"checkpoint-epoch{done_epochs[-1]}" if done_epochs else None
        model = self._peft_model(base, resume or init_adapter)
        device = next(model.parameters()).device
        examples = [encode_pair(tokenizer, p, r, config.max_length,
                                use_chat_template=config.chat_template)
                    for p, r in zip(prompts, responses, strict=True)]
        lengths = [len(e["input_ids"]) for e in examples]
        steps_per_epoch = math.ceil(math.ceil(len(examples) / config.batch_size)
                                    / config.grad_accumulation)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        warmup = int(config.warmup_ratio * total_steps)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, warmup, total_steps, config.lr_scheduler))
        history: list[dict[str, float]] = []
        step = 0
        if resume is not None:
            state = json.loads((resume / "state.json").read_text())
            load_optimizer_state(resume / "optimizer.safetensors", model, optimizer)
            torch.set_rng_state(load_file(str(resume / "rng.safetensors"))["torch"])  # dropout
            step = state["step"]
            history = json.loads((out / "history.json").read_text()) \
                if (out / "history.json").exists() else []
            with warnings.catch_warnings():  # replaying the schedule, not skipping a step
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
                for _ in range(step):
                    scheduler.step()
        rng = random.Random(config.seed)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.checkpoints_ = [out / f"checkpoint-epoch{e}" for e in done_epochs]
        model.train()
        for epoch in range(1, config.epochs + 1):
            batches = _batches(lengths, config.batch_size, rng)  # advance rng even when resuming
            if epoch in done_epochs:
                continue
            if step >= total_steps:
                break
            epoch_lrs, epoch_losses = [], []
            started = time.time()
            for number, rows in enumerate(batches):
                batch = {k: v.to(device) for k, v in
                         collate([examples[i] for i in rows], pad_id).items()}
                loss = example_losses(model, batch).mean() / config.grad_accumulation
                loss.backward()
                epoch_losses.append(loss.item() * config.grad_accumulation)
                if (number + 1) % config.grad_accumulation and number + 1 < len(batches):
                    continue
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_lrs.append(lr)
                history.append({"step": step, "epoch": epoch, "lr": lr,
                                "loss": float(np.mean(epoch_losses[-config.grad_accumulation:]))})
                if progress:
                    progress(step, total_steps)
                if step >= total_steps:
                    break
            self.checkpoints_.append(self._save_epoch(out, model, optimizer, epoch, step,
                                                      epoch_lrs, epoch_losses, started, history))
        final = out / "adapter"
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(self.checkpoints_[-1], final,
                        ignore=shutil.ignore_patterns("optimizer.safetensors", "rng.safetensors"))
        self.adapter_dir_ = final
        self.history_ = history
        return self

    def _save_epoch(self, out: Path, model: Any, optimizer: torch.optim.Optimizer, epoch: int,
                    step: int, lrs: list[float], losses: list[float], started: float,
                    history: list[dict[str, float]]) -> Path:
        """Write the epoch's checkpoint into a temp folder, then rename: all or nothing."""
        target = out / f"checkpoint-epoch{epoch}"
        temp = out / f".checkpoint-epoch{epoch}.tmp"
        if temp.exists():
            shutil.rmtree(temp)
        model.save_pretrained(str(temp), safe_serialization=True)
        save_optimizer_state(temp / "optimizer.safetensors", model, optimizer)
        save_file({"torch": torch.get_rng_state()}, str(temp / "rng.safetensors"))
        write_json(temp / "state.json", {
            "epoch": epoch, "step": step, "mean_lr": float(np.mean(lrs)) if lrs else 0.0,
            "mean_loss": float(np.mean(losses)) if losses else None, "steps": len(lrs),
            "seconds": round(time.time() - started, 2), "config": self.config.to_dict(),
            "base_model": self.model})
        write_json(out / "history.json", history)
        if target.exists():
            shutil.rmtree(target)
        temp.rename(target)
        return target


def load_trained(base_model: str, adapter_dir: str | Path, device: str = "auto",
                 dtype: str | None = None, merge: bool = True) -> tuple[Any, Any]:
    """The base model with a trained adapter (merged for fast generation), and its tokenizer."""
    from peft import PeftModel

    from ..lm.loading import load_causal_lm

    base, tokenizer = load_causal_lm(base_model, device=device, dtype=dtype, cache=False)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    if merge:
        model = model.merge_and_unload()
    return model.eval(), tokenizer
