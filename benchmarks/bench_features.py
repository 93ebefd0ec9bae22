"""LESS gradient features: batched per-example gradients vs LESS's batch-size-1 loop.

The same tiny Llama (built from a config, seeded; no download) with LoRA on q/k/v/o and random
LoRA B weights (as after a warmup: with B = 0 every lora_A gradient would be zero), the same N
seeded examples (prompt + response of about `--length` byte tokens, prompt tokens masked). Both
ways run in this process: `PerExampleGradients` (one backward per batch of `--batch-size`,
length-sorted as `gradient_features` does) and `loop_gradients` (one backward per example). A
third row times a plain batched forward + backward (`.backward()` of the summed loss, no
per-example gradients): the floor for any batched method. Each is timed `--repeats` times,
interleaved, after an untimed warm-up; the best time counts (other jobs on the machine only ever
add time). Then the two gradient sets are compared raw, projected (seeded Rademacher, `--dim`,
L2-normalised) and Adam-preconditioned + projected (a seeded synthetic optimizer state), which
is what the features store.

    python benchmarks/bench_features.py [--n 64] [--length 128] [--hidden 256] [--layers 4]
                                        [--lora-r 8] [--batch-size 16] [--dim 8192]
                                        [--device cpu] [--threads T] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selection_core.spine.devices import resolve_device  # noqa: E402
from selection_core.influence.gradients import AdamState, PerExampleGradients, \
    RademacherProjector, adam_precondition, loop_gradients  # noqa: E402
from selection_core.lm.formatting import collate, encode_pair  # noqa: E402
from selection_core.lm.tiny import build_tiny_causal_lm  # noqa: E402
from selection_core.train.lora import example_losses  # noqa: E402

WORDS = ("alpha beta gamma delta data model token answer question because number seven "
         "list write explain short python function return value sum of the a is").split()


def make_examples(n: int, length: int, seed: int) -> list[tuple[str, str]]:
    """n (prompt, response) pairs of about `length` bytes in all (± 25 %), a third of it
    prompt: byte tokens, so bytes = tokens."""
    rng = random.Random(seed)

    def text(chars: int) -> str:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        return " ".join(words)

    pairs = []
    for _ in range(n):
        total = int(length * rng.uniform(0.75, 1.25)) - 40  # the plain template adds ~40 bytes
        pairs.append((text(total // 3), text(total - total // 3)))
    return pairs


def build_model(folder: Path, hidden: int, layers: int, lora_r: int, device: str, seed: int
                ) -> tuple[Any, Any]:
    """A random tiny Llama with LoRA (dropout off, as for features) and random B matrices."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = build_tiny_causal_lm(folder, hidden_size=hidden, num_layers=layers, num_heads=4,
                                seed=seed, chat_template=False)
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=lora_r, lora_alpha=4 * lora_r, lora_dropout=0.1,
                                            target_modules=["q_proj", "k_proj", "v_proj",
                                                            "o_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return model.to(device).eval(), tokenizer


def batches(examples: list[dict], pad_id: int, batch_size: int, device: str
            ) -> tuple[list[list[int]], list[dict[str, torch.Tensor]]]:
    """Length-sorted batches (as `gradient_features` makes them) and their example indices."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    rows = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return rows, [{k: v.to(device) for k, v in collate([examples[i] for i in r], pad_id).items()}
                  for r in rows]


def batched(model: Any, examples: list[dict], pad_id: int, batch_size: int, device: str
            ) -> torch.Tensor:
    """Per-example gradients in length-sorted batches, back in input order."""
    hooks = PerExampleGradients(model)
    out = torch.zeros(len(examples), hooks.dim, device=device)
    try:
        for rows, batch in zip(*batches(examples, pad_id, batch_size, device)):
            out[rows] = hooks(batch)
    finally:
        hooks.close()
    return out


def plain_backward(model: Any, examples: list[dict], pad_id: int, batch_size: int, device: str
                   ) -> None:
    """The same batches through a plain forward + backward of the summed loss."""
    for batch in batches(examples, pad_id, batch_size, device)[1]:
        model.zero_grad(set_to_none=True)
        example_losses(model, batch).sum().backward()
    model.zero_grad(set_to_none=True)


def timed(function: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def compare(a: torch.Tensor, b: torch.Tensor) -> str:
    a, b = a.double(), b.double()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=1).min().item()
    relative = ((a - b).abs().max() / b.abs().max()).item()
    return (f"max |diff| {(a - b).abs().max().item():.2e} ({relative:.1e} of the largest "
            f"entry), min cosine {cosine:.7f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="examples")
    parser.add_argument("--length", type=int, default=128, help="mean tokens per example")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dim", type=int, default=8192, help="projection dimension")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on the CPU (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; best counts")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = build_model(Path(tmp) / "lm", args.hidden, args.layers, args.lora_r,
                                       device, args.seed)
    examples = [encode_pair(tokenizer, p, r, 4 * args.length)
                for p, r in make_examples(args.n, args.length, args.seed)]
    pad_id = tokenizer.pad_token_id
    lengths = [len(e["input_ids"]) for e in examples]
    hooks = PerExampleGradients(model)
    params = hooks.dim
    hooks.close()
    where = f"{torch.get_num_threads()} threads, {os.cpu_count()} cores" if device == "cpu" \
        else torch.cuda.get_device_name()
    print(f"per-example LoRA gradients: torch {torch.__version__} on {device} ({where}); Llama "
          f"hidden {args.hidden}, {args.layers} layers, LoRA r {args.lora_r} on q/k/v/o = "
          f"{params:,} gradient entries; N={args.n} examples of {min(lengths)}-{max(lengths)} "
          f"tokens (mean {sum(lengths) / len(lengths):.0f}); best of {args.repeats}")

    fast_name = f"batched (batch size {args.batch_size})"
    slow_name, floor_name = "loop (batch size 1, LESS)", "plain batched fwd+bwd (floor)"
    methods = {
        fast_name: lambda: batched(model, examples, pad_id, args.batch_size, device),
        slow_name: lambda: loop_gradients(model, examples, pad_id),
        floor_name: lambda: plain_backward(model, examples, pad_id, args.batch_size, device),
    }
    batched(model, examples[:args.batch_size], pad_id, args.batch_size, device)  # warm-up
    loop_gradients(model, examples[:2], pad_id)
    seconds = {name: float("inf") for name in methods}
    results = {}
    for _ in range(args.repeats):
        for name, function in methods.items():
            results[name], took = timed(function, device)
            seconds[name] = min(seconds[name], took)
    print(f"    {'method':<34} {'seconds':>8} {'examples/s':>11}")
    for name in methods:
        print(f"    {name:<34} {seconds[name]:8.3f} {args.n / seconds[name]:11.1f}")
    ratio = seconds[slow_name] / seconds[fast_name]
    print(f"    speed-up ×{ratio:.2f} (goal ≥ ×5): {'met' if ratio >= 5 else 'MISSED'}; "
          f"batched per-example gradients take ×{seconds[fast_name] / seconds[floor_name]:.2f} "
          f"the time of a plain batched backward")
    fast, slow = results[fast_name], results[slow_name]

    projector = RademacherProjector(params, args.dim, seed=args.seed, device=device)
    generator = torch.Generator().manual_seed(args.seed + 1)
    state = AdamState((torch.randn(params, generator=generator) * 1e-3).to(device),
                      (torch.rand(params, generator=generator) * 1e-6).to(device))

    def features(g: torch.Tensor) -> torch.Tensor:
        projected = projector(g)
        return projected / projected.norm(dim=1, keepdim=True).clamp(min=1e-12)

    pairs = {"raw gradients": (fast, slow),
             f"projected (d={args.dim}), L2-normalised": (features(fast), features(slow)),
             "Adam-preconditioned + projected": (features(adam_precondition(fast, state)),
                                                 features(adam_precondition(slow, state)))}
    print("    batched vs loop:")
    for name, (a, b) in pairs.items():
        print(f"      {name:<36} {compare(a, b)}")


if __name__ == "__main__":
    main()
