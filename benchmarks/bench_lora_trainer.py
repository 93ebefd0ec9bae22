"""LoRA training on transformers' Trainer vs a bare PyTorch loop doing the same steps: time per
optimisation step (Trainer's overhead) and loss agreement; optionally 2 DDP processes (gloo, CPU)
vs 1 with the same global batch: time per step and the largest adapter difference.

    python benchmarks/bench_lora_trainer.py [--rows 160] [--batch 8] [--processes 2]

Time per step is measured over the second epoch (model loading and the first steps' warm-up are
left out). One JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from selection_core.lm.formatting import collate, encode_pair  # noqa: E402
from selection_core.lm.tiny import build_tiny_causal_lm  # noqa: E402
from selection_core.train.lora import LoRAConfig, LoRATrainer, set_seed  # noqa: E402
from selection_core.train.steps import _batches, example_losses, lr_factor  # noqa: E402

WORDS = "the a model data answer question list count colour number river city".split()


def pairs(rows: int) -> tuple[list[str], list[str]]:
    rng = random.Random(1)
    return ([" ".join(rng.choices(WORDS, k=12)) for _ in range(rows)],
            [" ".join(rng.choices(WORDS, k=24)) for _ in range(rows)])


def trainer_seconds_per_step(model: str, config: LoRAConfig, prompts: list[str],
                             responses: list[str], out: Path) -> tuple[float, list[float]]:
    fitted = LoRATrainer(model, config).fit(prompts, responses, out)
    state = json.loads((fitted.checkpoints_[-1] / "state.json").read_text())
    return state["seconds"] / state["steps"], [h["loss"] for h in fitted.history_]


def bare_seconds_per_step(model: str, config: LoRAConfig, prompts: list[str],
                          responses: list[str]) -> tuple[float, list[float]]:
    """The same steps without Trainer: batches, loss, clip, AdamW and schedule by hand."""
    trainer = LoRATrainer(model, config)
    set_seed(config.seed)
    base, tokenizer = trainer._base_model()
    peft = trainer._peft_model(base, None).train()
    examples = [encode_pair(tokenizer, p, r, config.max_length) for p, r in zip(prompts, responses)]
    rng = random.Random(config.seed)
    epochs = [_batches([len(e["input_ids"]) for e in examples], config.batch_size, rng)
              for _ in range(config.epochs)]
    total = sum(len(batches) for batches in epochs)
    trainable = [p for p in peft.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    warmup = int(config.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total, config.lr_scheduler))
    losses, started = [], 0.0
    for number, batches in enumerate(epochs):
        started = time.perf_counter()
        for rows in batches:
            loss = example_losses(peft, collate([examples[i] for i in rows],
                                                tokenizer.pad_token_id)).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    return (time.perf_counter() - started) / len(epochs[-1]), losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    model = str(build_tiny_causal_lm(folder / "lm", hidden_size=64, num_layers=2, seed=0,
                                     chat_template=False))
    prompts, responses = pairs(args.rows)
    config = LoRAConfig(epochs=2, batch_size=args.batch, learning_rate=1e-3, dropout=0.0,
                        max_length=128, chat_template=False, device="cpu")
    bare, bare_losses = bare_seconds_per_step(model, config, prompts, responses)
    ours, losses = trainer_seconds_per_step(model, config, prompts, responses, folder / "one")
    print(json.dumps({"check": "trainer_overhead", "seconds_per_step": round(ours, 4),
                      "bare_loop_seconds_per_step": round(bare, 4),
                      "ratio": round(ours / bare, 3), "steps": len(losses),
                      "max_abs_loss_difference": max(abs(a - b) for a, b in
                                                     zip(losses, bare_losses, strict=True))}))
    if args.processes > 1:
        data = folder / "pairs.jsonl"
        data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n"
                                for p, r in zip(prompts, responses)))
        lora = [f"--lora={key}={json.dumps(value)}" for key, value in config.to_dict().items()
                if key in ("epochs", "batch_size", "learning_rate", "dropout", "max_length",
                           "chat_template", "device")]
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={args.processes}", "-m", "selection_core.train", model,
                        str(data), str(folder / "many"), *lora], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = json.loads((folder / "many" / "checkpoint-epoch2" / "state.json").read_text())
        one = load_file(str(folder / "one" / "adapter" / "adapter_model.safetensors"))
        many = load_file(str(folder / "many" / "adapter" / "adapter_model.safetensors"))
        print(json.dumps({"check": "ddp", "processes": args.processes,
                          "seconds_per_step": round(state["seconds"] / state["steps"], 4),
                          "one_process_seconds_per_step": round(ours, 4),
                          "max_abs_adapter_difference": max((one[k] - many[k]).abs().max().item()
                                                            for k in one)}))


if __name__ == "__main__":
    main()
