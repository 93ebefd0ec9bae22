"""Every CUDA path of the core in one run: one JSON line per check, each with its ratio against a
reference measured in the same run, and whether the two agree.

    python benchmarks/gpu_check.py [--device cuda] [--quick]

Checks (device path vs reference):
- `kmeans`: faiss k-means with its GPU index vs the CPU index (same data, seed, iterations, and
  the same k-means++ seeds, drawn on the CPU by scikit-learn on both sides: `init_seconds`, part
  of `seconds`); agreement = inertia within 1 %.
- `embed`: the default sentence encoder at batch 256 on the device vs on the CPU (same texts);
  agreement = every row's cosine ≥ 0.999.
- `gradients`: batched per-example LoRA gradients vs LESS's batch-size-1 loop, both on the device;
  agreement = every row's cosine ≥ 0.999; goal: ×5 faster (`goal_met`).
- `lora_step`: LoRA training steps on a tiny Llama on the device vs the CPU (same seed and data);
  agreement = the losses of the steps within 1e-3 relative.
- `generate`: greedy generation on the device vs the CPU; agreement = ≥ 90 % of completions equal
  (floating-point differences may flip a near-tie token).

On a GPU this runs in a few minutes. CI runs `--device cpu --quick` (tests/test_gpu_check.py):
every path runs with the CPU as both sides, so the script cannot rot. Exit status 1 when a check
disagrees. The Ray checks come with the Ray path (issue 14 §1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_features import batched, build_model, make_examples, timed  # noqa: E402

from selection_core.cluster.kmeans import FaissKMeans  # noqa: E402
from selection_core.spine.config import LoRAConfig  # noqa: E402
from selection_core.spine.devices import faiss_gpu_count, resolve_device  # noqa: E402
from selection_core.features.embed import TextEmbedder  # noqa: E402
from selection_core.influence.gradients import loop_gradients  # noqa: E402
from selection_core.lm.formatting import encode_pair  # noqa: E402
from selection_core.lm.tiny import build_tiny_causal_lm  # noqa: E402
from selection_core.train.generate import generate  # noqa: E402
from selection_core.train.lora import LoRATrainer  # noqa: E402

SIZES = {  # full (on a GPU, minutes) and quick (CI on 2 CPU cores, seconds)
    "full": {"kmeans_rows": 200_000, "kmeans_dim": 384, "kmeans_k": 1024, "kmeans_niter": 20,
             "embed_texts": 4096, "grad_examples": 64, "grad_length": 256, "grad_hidden": 512,
             "lora_rows": 64, "lora_steps": 5, "lora_hidden": 256, "gen_prompts": 32,
             "gen_tokens": 64},
    "quick": {"kmeans_rows": 4_000, "kmeans_dim": 32, "kmeans_k": 16, "kmeans_niter": 10,
              "embed_texts": 64, "grad_examples": 8, "grad_length": 48, "grad_hidden": 64,
              "lora_rows": 8, "lora_steps": 2, "lora_hidden": 32, "gen_prompts": 4,
              "gen_tokens": 8},
}
WORDS = ("data model cluster quality budget prompt answer select train token python math "
         "write explain list number because first second").split()


def row_cosines(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a, b = torch.as_tensor(a).double().cpu(), torch.as_tensor(b).double().cpu()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())


def report(check: str, device: str, seconds: float, reference: str, reference_seconds: float,
           agreement: dict[str, Any], ok: bool, **extra: Any) -> bool:
    line = {"check": check, "device": device, "seconds": round(seconds, 4),
            "reference": reference, "reference_seconds": round(reference_seconds, 4),
            "ratio": round(reference_seconds / max(seconds, 1e-9), 3), "agreement": agreement,
            "ok": ok, **extra}
    print(json.dumps(line), flush=True)
    return ok


def check_kmeans(device: str, size: dict[str, int]) -> bool:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(size["kmeans_k"], size["kmeans_dim"])).astype(np.float32)
    X = centres[rng.integers(0, len(centres), size["kmeans_rows"])]
    X += 0.3 * rng.normal(size=X.shape).astype(np.float32)
    on_gpu = device.startswith("cuda") and faiss_gpu_count() > 0

    def fit(gpu: bool) -> FaissKMeans:
        return FaissKMeans(size["kmeans_k"], seed=0, niter=size["kmeans_niter"], nredo=1,
                           use_gpu=gpu).fit(X)

    fitted, seconds = timed(lambda: fit(on_gpu), device)
    reference, reference_seconds = timed(lambda: fit(False), "cpu")
    inertia_ratio = fitted.inertia_ / reference.inertia_
    return report("kmeans", "cuda (faiss GPU)" if fitted.used_gpu_ else "cpu", seconds,
                  "faiss CPU", reference_seconds,
                  {"inertia_ratio": round(inertia_ratio, 5)}, abs(inertia_ratio - 1) <= 0.01,
                  rows=len(X), k=size["kmeans_k"], init_seconds=round(fitted.init_seconds_, 4),
                  reference_init_seconds=round(reference.init_seconds_, 4),
                  **({} if on_gpu or not device.startswith("cuda") else
                     {"note": "faiss has no GPU here (faiss-cpu build)"}))


def check_embed(device: str, size: dict[str, int]) -> bool:
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 40))))
             for _ in range(size["embed_texts"])]
    fast = TextEmbedder(batch_size=256, device=device)
    slow = TextEmbedder(batch_size=256, device="cpu")
    fast.encode(texts[:8]), slow.encode(texts[:8])  # load the models outside the timing
    vectors, seconds = timed(lambda: fast.encode(texts), device)
    reference, reference_seconds = timed(lambda: slow.encode(texts), "cpu")
    cosine = row_cosines(vectors, reference)
    return report("embed", device, seconds, "cpu", reference_seconds,
                  {"min_cosine": round(cosine, 6)}, cosine >= 0.999, texts=len(texts),
                  rows_per_s=round(len(texts) / seconds, 1))


def check_gradients(device: str, size: dict[str, int], folder: Path) -> bool:
    model, tokenizer = build_model(folder / "grad-lm", size["grad_hidden"], 4, 8, device, 0)
    examples = [encode_pair(tokenizer, p, r, 4 * size["grad_length"])
                for p, r in make_examples(size["grad_examples"], size["grad_length"], 0)]
    pad_id = tokenizer.pad_token_id
    batched(model, examples[:2], pad_id, 16, device)  # warm-up (kernels, allocator)
    fast, seconds = timed(lambda: batched(model, examples, pad_id, 16, device), device)
    slow, reference_seconds = timed(lambda: loop_gradients(model, examples, pad_id), device)
    cosine = row_cosines(fast, slow)
    return report("gradients", device, seconds, "batch-size-1 loop (LESS)", reference_seconds,
                  {"min_cosine": round(cosine, 7)}, cosine >= 0.999,
                  goal_met=reference_seconds / seconds >= 5, examples=len(examples))


def check_lora_step(device: str, size: dict[str, int], folder: Path) -> bool:
    model = build_tiny_causal_lm(folder / "lora-lm", hidden_size=size["lora_hidden"],
                                 num_layers=2, seed=0, chat_template=False)
    rng = np.random.default_rng(2)
    prompts = [" ".join(rng.choice(WORDS, size=12)) for _ in range(size["lora_rows"])]
    responses = [" ".join(rng.choice(WORDS, size=24)) for _ in range(size["lora_rows"])]

    def train(on: str) -> list[float]:
        config = LoRAConfig(r=8, alpha=16, epochs=size["lora_steps"], batch_size=8,
                            grad_accumulation=1,
                            max_steps=size["lora_steps"], max_length=128, device=on, seed=0)
        trainer = LoRATrainer(str(model), config).fit(prompts, responses, folder / f"out-{on}")
        return [step["loss"] for step in trainer.history_]

    losses, seconds = timed(lambda: train(device), device)
    reference, reference_seconds = timed(lambda: train("cpu"), "cpu")
    relative = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, reference, strict=True))
    return report("lora_step", device, seconds, "cpu", reference_seconds,
                  {"max_relative_loss_difference": float(f"{relative:.3g}")}, relative <= 1e-3,
                  steps=len(losses))


def check_generate(device: str, size: dict[str, int], folder: Path) -> bool:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_causal_lm(folder / "gen-lm", hidden_size=64, num_layers=2, seed=0,
                                chat_template=False)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rng = np.random.default_rng(3)
    prompts = [" ".join(rng.choice(WORDS, size=10)) for _ in range(size["gen_prompts"])]

    def run(on: str) -> list[str]:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(on)
        return generate(model, tokenizer, prompts, max_new_tokens=size["gen_tokens"],
                        batch_size=16)

    texts, seconds = timed(lambda: run(device), device)
    reference, reference_seconds = timed(lambda: run("cpu"), "cpu")
    equal = sum(a == b for a, b in zip(texts, reference, strict=True)) / len(texts)
    return report("generate", device, seconds, "cpu", reference_seconds,
                  {"equal_share": round(equal, 3)}, equal >= 0.9, prompts=len(prompts),
                  new_tokens=size["gen_tokens"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when present)")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI on CPU)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    size = SIZES["quick" if args.quick else "full"]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = [check_kmeans(device, size), check_embed(device, size),
                   check_gradients(device, size, folder), check_lora_step(device, size, folder),
                   check_generate(device, size, folder)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
