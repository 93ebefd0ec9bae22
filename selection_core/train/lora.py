"""LoRA supervised fine-tuning of any causal LM on (prompt, response) pairs, on transformers'
Trainer, so `accelerate launch` / `torchrun` runs the same `fit` with DDP on several GPUs.

What Trainer does: the optimisation loop, gradient accumulation and clipping (1.0), device
placement, DDP wrapping and gradient all-reduce. What stays ours, because LESS (Xia et al., 2024)
and exact resume depend on it:
- the loss is the per-example mean over response tokens only (`example_losses`), averaged over
  the examples of a *global* micro-batch: `batch_size` is split over the processes, so a config
  (and its hash) means the same training on 1 or N processes;
- batches are today's length-grouped shuffle (`_batches`), one seeded list per epoch;
- AdamW on all LoRA parameters and the warm-up + linear/cosine schedule `lr_factor`;
- per-epoch checkpoints in our own safetensors format (Trainer's own pickles its optimizer),
  written by the main process only, and resume from them.

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
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..spine.config import LoRAConfig
from ..spine.errors import ConfigError
from ..lm.formatting import encode_pair
from ..spine.progress import Progress
from ..spine.store import write_json
from .steps import _batches, example_losses, lr_factor, save_optimizer_state

__all__ = ["LoRAConfig", "LoRATrainer", "example_losses", "load_trained", "lr_factor"]

_log = logging.getLogger(__name__)
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _target_modules(model: Any, requested: tuple[str, ...] | None) -> list[str] | str:
    if requested:
        return list(requested)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    present = [m for m in _ATTENTION if m in names]
    return present if present else "all-linear"


def _process_device(config: LoRAConfig) -> str:
    """Under `accelerate launch`/`torchrun` each process loads the model onto its own GPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", -1))
    if local_rank >= 0 and config.device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return config.device


class LoRATrainer:
    """`fit` trains LoRA adapters on a base model; learned attributes: `adapter_dir_`,
    `checkpoints_` (one per epoch), `history_` (loss and lr per optimisation step).

    Launched with `accelerate launch` or `torchrun`, every process runs `fit` with the same
    arguments; `out_dir` must be the same (shared) folder, only the main process writes it.
    """

    def __init__(self, model: str, config: LoRAConfig = LoRAConfig()) -> None:
        self.model = model
        self.config = config

    def _base_model(self) -> tuple[Any, Any]:
        from ..lm.loading import load_causal_lm

        return load_causal_lm(self.model, device=_process_device(self.config),
                              dtype=self.config.dtype, cache=False)

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
        from .hf_trainer import build_trainer

        config = self.config
        if len(prompts) != len(responses) or not prompts:
            raise ConfigError(f"need as many responses as prompts (got {len(prompts)} and "
                              f"{len(responses)}), at least one")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if config.processes > 1 and "WORLD_SIZE" not in os.environ:
            return self._fit_launched(prompts, responses, out, init_adapter, progress)
        set_seed(config.seed)
        base, tokenizer = self._base_model()
        done_epochs = sorted(int(p.name.removeprefix("checkpoint-epoch"))
                             for p in out.glob("checkpoint-epoch*") if (p / "state.json").exists())
        resume = out / f"checkpoint-epoch{done_epochs[-1]}" if done_epochs else None
        model = self._peft_model(base, resume or init_adapter)
        examples = [encode_pair(tokenizer, p, r, config.max_length,
                                use_chat_template=config.chat_template)
                    for p, r in zip(prompts, responses, strict=True)]
        lengths = [len(e["input_ids"]) for e in examples]
        steps_per_epoch = math.ceil(math.ceil(len(examples) / config.batch_size)
                                    / config.grad_accumulation)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        rng = random.Random(config.seed)
        epochs = [_batches(lengths, config.batch_size, rng) for _ in range(config.epochs)]
        step, history = 0, []
        if resume is not None:
            step = json.loads((resume / "state.json").read_text())["step"]
            history = json.loads((out / "history.json").read_text()) \
                if (out / "history.json").exists() else []
        self.checkpoints_ = [out / f"checkpoint-epoch{e}" for e in done_epochs]
        first_epoch = done_epochs[-1] + 1 if done_epochs else 1
        if step < total_steps and first_epoch <= config.epochs:
            trainer = build_trainer(
                self, model, examples, tokenizer, out, epochs[first_epoch - 1:], first_epoch,
                step, total_steps, history, resume, progress)
            trainer.train()
            is_main = trainer.is_world_process_zero()
            barrier = trainer.accelerator.wait_for_everyone
        else:
            is_main, barrier = _is_main_process(), (lambda: None)
        final = out / "adapter"
        if is_main:
            if final.exists():
                shutil.rmtree(final)
            shutil.copytree(self.checkpoints_[-1], final, ignore=shutil.ignore_patterns(
                "optimizer.safetensors", "rng.safetensors"))
        barrier()
        self.adapter_dir_ = final
        self.history_ = history
        return self

    def _fit_launched(self, prompts: Sequence[str], responses: Sequence[str], out: Path,
                      init_adapter: str | Path | None, progress: Progress | None) -> LoRATrainer:
        """`config.processes` DDP processes (torchrun, what `accelerate launch --multi_gpu` runs)
        train into `out`; this process only hands them the pairs and reads the result, so a
        caller that owns a run store (LESS warmup, experiments) stays single-process."""
        pairs = out / ".pairs.json"
        write_json(pairs, {"model": self.model, "config": self.config.to_dict(),
                           "prompts": list(prompts), "responses": list(responses),
                           "init_adapter": None if init_adapter is None else str(init_adapter)})
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={self.config.processes}", "-m", "selection_core.train",
                   "--pairs", str(pairs)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
        finished = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
        pairs.unlink(missing_ok=True)
        if finished.returncode:
            raise ConfigError(f"LoRA training in {self.config.processes} processes failed "
                              f"(exit status {finished.returncode}; their messages are above)")
        self.checkpoints_ = sorted(
            (p for p in out.glob("checkpoint-epoch*") if (p / "state.json").exists()),
            key=lambda p: int(p.name.removeprefix("checkpoint-epoch")))
        self.history_ = json.loads((out / "history.json").read_text())
        self.adapter_dir_ = out / "adapter"
        if progress:
            progress(len(self.history_), len(self.history_))
        return self

    def save_epoch(self, out: Path, model: Any, optimizer: torch.optim.Optimizer, epoch: int,
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
        _log.info("wrote %s", target)
        return target


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


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
