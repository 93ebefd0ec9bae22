"""`python -m selection_core.train MODEL DATA OUT [--lora KEY=VALUE ...]`: LoRA SFT on a pool file.

Runs as one process, or under `accelerate launch --multi_gpu --num_processes N` / `torchrun
--nproc_per_node N` as N DDP processes (see README, "Training on several GPUs"). Every process
reads the data and runs `LoRATrainer.fit`; the main process writes `OUT` and prints a JSON line.
A rerun with the same arguments resumes after the last finished epoch. The LESS warm-up,
experiments and iterative rounds get the same with `processes = N` in their LoRA config:
`LoRATrainer` then launches this module (`--pairs`) and stays a single process itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..spine.config import LoRAConfig
from ..spine.errors import ConfigError, SelectionError


def lora_config(pairs: list[str]) -> LoRAConfig:
    """`KEY=VALUE` pairs (VALUE read as JSON when it parses, else as text) → LoRAConfig."""
    fields = {f.name for f in dataclasses.fields(LoRAConfig)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"--lora {pair!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(sorted(fields))}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        values[key] = tuple(value) if isinstance(value, list) else value
    return LoRAConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selection_core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="base model: Hugging Face name or local folder")
    parser.add_argument("data", nargs="?", help="pool file with prompt and response columns")
    parser.add_argument("out", nargs="?", help="output folder (shared by all processes)")
    parser.add_argument("--lora", action="append", default=[], metavar="KEY=VALUE",
                        help="a LoRAConfig field, e.g. --lora epochs=4 --lora batch_size=32")
    parser.add_argument("--pairs", help=argparse.SUPPRESS)  # LoRATrainer(processes>1)'s hand-off
    args = parser.parse_args(argv)
    if args.pairs is None and args.out is None:
        parser.error("MODEL, DATA and OUT are required")
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(format=f"[rank {rank}] %(name)s: %(message)s")
    logging.getLogger("selection_core").setLevel(logging.INFO)
    try:
        from ..data.loaders import load_pool
        from .lora import LoRATrainer

        if args.pairs is not None:  # written by LoRATrainer: its pairs and config, as given
            job = json.loads(Path(args.pairs).read_text())
            config = LoRAConfig(**{**job["config"], "target_modules": tuple(
                job["config"]["target_modules"] or ()) or None})
            model, out, init_adapter = job["model"], Path(args.pairs).parent, job["init_adapter"]
            prompts, responses = job["prompts"], job["responses"]
        else:
            config, model, out, init_adapter = lora_config(args.lora), args.model, args.out, None
            pool = load_pool(args.data)
            prompts, responses = pool["prompt"].tolist(), pool["response"].tolist()
        bar = None
        if rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(desc="LoRA steps", unit="step", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        trainer = LoRATrainer(model, config).fit(
            prompts, responses, out, init_adapter=init_adapter,
            progress=progress if bar is not None else None)
    except SelectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if rank == 0:
        bar.close()
        history = trainer.history_
        print(json.dumps({"adapter": str(trainer.adapter_dir_), "steps": len(history),
                          "final_loss": history[-1]["loss"] if history else None,
                          "processes": int(os.environ.get("WORLD_SIZE", 1))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
