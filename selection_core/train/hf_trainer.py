"""The LoRA trainer's loop on transformers' Trainer (imported only when training starts).

Trainer owns the loop, accumulation, clipping, devices and DDP; these overrides keep the parts
LESS and exact resume depend on (see train/lora.py): our batches, loss, optimizer, schedule,
history and per-epoch safetensors checkpoints.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..spine.errors import ConfigError
from ..lm.formatting import collate
from ..spine.progress import Progress
from .steps import (
    ShardedBatches,
    _Rows,
    example_losses,
    load_optimizer_state,
    lr_factor,
    warmup_steps,
)


class ResponseLossTrainer(Trainer):
    """Trainer with our loss, data order, AdamW and schedule; resumes our checkpoints."""

    def __init__(self, *args: Any, loader: torch.utils.data.DataLoader, first_step: int,
                 total_steps: int, resume: Path | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loader, self.first_step, self.total_steps, self.resume = \
            loader, first_step, total_steps, resume
        self.loss_is_scaled_for_ga = True  # compute_loss divides by grad_accumulation itself
        self.micro_sums: list[torch.Tensor] = []  # this step's per-micro-batch loss sums
        self.micro_rows: list[int] = []

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        return self.loader

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """AdamW on every trainable parameter (weight decay on all of them, as LESS does)."""
        if self.optimizer is None:
            lora = self.lora_config
            trainable = [p for p in (model or self.model).parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(trainable, lr=lora.learning_rate,
                                               weight_decay=lora.weight_decay)
            if self.resume is not None:
                load_optimizer_state(self.resume / "optimizer.safetensors", self.model,
                                     self.optimizer)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """`lr_factor` from the run's first step on (a resumed run continues the schedule)."""
        if self.lr_scheduler is None:
            lora, first, total = self.lora_config, self.first_step, self.total_steps
            warmup = warmup_steps(lora.warmup_ratio, total)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer,
                lambda s: lr_factor(s + first, warmup, total, lora.lr_scheduler))
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor],
                     return_outputs: bool = False, num_items_in_batch: Any = None) -> torch.Tensor:
        """Sum of this process's per-example losses × world / rows of the global micro-batch /
        grad_accumulation: after DDP averages gradients over the processes, the gradient is
        that of the global micro-batch's mean loss, as on one process."""
        weights, rows = inputs.pop("weights"), int(inputs.pop("rows"))
        total = (example_losses(model, inputs) * weights).sum()
        self.micro_sums.append(total.detach())
        self.micro_rows.append(rows)
        return total * self.args.world_size / rows / self.lora_config.grad_accumulation

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """Not counted: Trainer's estimate walks every parameter each micro-step, for a log
        line we do not write."""
        return 0

    @property
    def lora_config(self) -> Any:
        return self.owner.config


class EpochRecorder(TrainerCallback):
    """History per optimisation step, progress, and our checkpoint at each epoch's end."""

    def __init__(self, trainer: ResponseLossTrainer, out: Path, first_epoch: int,
                 history: list[dict[str, float]], progress: Progress | None) -> None:
        self.trainer, self.out, self.history, self.progress = trainer, out, history, progress
        self.epoch = first_epoch - 1
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.started = time.time()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch += 1
        self.lrs, self.losses, self.started = [], [], time.time()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.lrs.append(self.trainer.lr_scheduler.get_last_lr()[0])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self.trainer
        sums = torch.stack(trainer.micro_sums).float()
        if args.world_size > 1:
            sums = trainer.accelerator.reduce(sums, reduction="sum")
        self.losses.extend((sums.cpu() / torch.tensor(trainer.micro_rows)).tolist())
        trainer.micro_sums, trainer.micro_rows = [], []
        step = trainer.first_step + state.global_step
        accumulation = trainer.lora_config.grad_accumulation
        self.history.append({"step": step, "epoch": self.epoch, "lr": self.lrs[-1],
                             "loss": float(np.mean(self.losses[-accumulation:]))})
        if self.progress and trainer.is_world_process_zero():
            self.progress(step, trainer.total_steps)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self.trainer
        target = self.out / f"checkpoint-epoch{self.epoch}"
        if trainer.is_world_process_zero():
            optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
            trainer.owner.save_epoch(self.out, trainer.model, optimizer, self.epoch,
                                     trainer.first_step + state.global_step, self.lrs,
                                     self.losses, self.started, self.history)
        trainer.accelerator.wait_for_everyone()
        trainer.owner.checkpoints_.append(target)


def build_trainer(owner: Any, model: Any, examples: list[dict[str, list[int]]],
                  tokenizer: Any, out: Path, epochs: list[list[list[int]]], first_epoch: int,
                  first_step: int, total_steps: int, history: list[dict[str, float]],
                  resume: Path | None, progress: Progress | None) -> ResponseLossTrainer:
    """A Trainer that continues `owner`'s run at `first_epoch` / `first_step`."""
    config = owner.config
    use_cpu = config.device == "cpu" or not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1  # set by accelerate launch/torchrun
    if not distributed:  # accelerate's device state is per process, set by the first Trainer: one
        AcceleratorState._reset_state(reset_partial_state=True)  # run may train on GPU, then CPU
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        max_steps=total_steps - first_step, max_grad_norm=1.0, seed=config.seed,
        logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=use_cpu, ddp_backend="gloo" if use_cpu and distributed else None,
        ddp_find_unused_parameters=False, remove_unused_columns=False,
        average_tokens_across_devices=False, dataloader_num_workers=0,
        activation_checkpointing=config.activation_checkpointing == "on"
        or (config.activation_checkpointing == "auto" and use_cpu),
        activation_checkpointing_kwargs={"use_reentrant": False})
    rng_state = torch.get_rng_state()  # Trainer re-seeds; dropout continues our stream instead
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def collate_keys(keys: list[tuple[int, float, int]]) -> dict[str, torch.Tensor]:
        batch = collate([examples[row] for row, _, _ in keys], pad_id)
        batch["weights"] = torch.tensor([weight for _, weight, _ in keys])
        batch["rows"] = torch.tensor(keys[0][2])
        return batch

    sampler = ShardedBatches(epochs, args.process_index, args.world_size)
    loader = torch.utils.data.DataLoader(_Rows(len(examples)), batch_sampler=sampler,
                                         collate_fn=collate_keys,
                                         generator=torch.Generator())  # spares the global RNG
    loader.set_epoch = sampler.set_epoch  # type: ignore[attr-defined]  # Trainer calls it
    trainer = ResponseLossTrainer(model=model, args=args, loader=loader, first_step=first_step,
                                  total_steps=total_steps, resume=resume)
    trainer.owner = owner
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        raise ConfigError("LoRA training runs with DDP (accelerate launch --multi_gpu); FSDP and "
                          "DeepSpeed are not supported: the per-epoch Adam moments LESS reads "
                          "would have to be gathered from shards")
    for printer in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(printer)
    trainer.add_callback(EpochRecorder(trainer, out, first_epoch, history, progress))
    torch.set_rng_state(load_file(str(resume / "rng.safetensors"))["torch"]
                        if resume is not None else rng_state)
    model.train()
    return trainer
