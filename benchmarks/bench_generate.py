"""Generation on a CPU: rows leaving the batch as they finish (`train.generate`) against
transformers' `model.generate`, which carries every row to the batch's longest answer. Same model,
same prompts (the demo's held-out items), same batch size, greedy; the texts must be identical.

A tuned model answers briefly and most rows stop long before the longest, which is where the
saving is; the untuned base model rambles to the token limit and gains less.

    python benchmarks/bench_generate.py [--n 96] [--batch-size 32] [--adapter DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from selection_core.evaluate.registry import get_benchmark  # noqa: E402
from selection_core.lm.formatting import encode_prompt  # noqa: E402
from selection_core.lm.loading import load_causal_lm  # noqa: E402
from selection_core.train.generate import generate, pad_batch, truncate_at_stop  # noqa: E402


@torch.no_grad()
def transformers_generate(model, tokenizer, prompts, max_new_tokens: int, batch_size: int,
                          stop: tuple[str, ...]) -> list[str]:
    """The baseline: length-sorted, left-padded batches through `model.generate`."""
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    outputs = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, attention = pad_batch([encoded[i] for i in rows], tokenizer.pad_token_id,
                                         left=True)
        generated = model.generate(input_ids=input_ids, attention_mask=attention,
                                   max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id,
                                   stop_strings=list(stop) or None, tokenizer=tokenizer)
        texts = tokenizer.batch_decode(generated[:, input_ids.shape[1]:],
                                       skip_special_tokens=True)
        for i, text in zip(rows, texts, strict=True):
            outputs[i] = truncate_at_stop(text, stop)
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None, help="a LoRA adapter folder (a tuned model)")
    parser.add_argument("--n", type=int, default=96, help="demo items (every skill alike)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    model, tokenizer = load_causal_lm(args.model, device="cpu", cache=False)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter).merge_and_unload()
    model.eval()
    items = get_benchmark("demo").load(None)
    items = items[::max(1, len(items) // args.n)][:args.n]
    prompts = [item.model_input() for item in items]
    timings = {}
    texts = {}
    for name, run in (("transformers", transformers_generate), ("rows leave", None)):
        started = time.perf_counter()
        if run is None:
            texts[name] = generate(model, tokenizer, prompts, args.max_new_tokens,
                                   batch_size=args.batch_size)
        else:
            texts[name] = run(model, tokenizer, prompts, args.max_new_tokens, args.batch_size,
                              ())
        timings[name] = time.perf_counter() - started
    same = sum(a == b for a, b in zip(texts["transformers"], texts["rows leave"], strict=True))
    print(f"{len(prompts)} demo items, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"{torch.get_num_threads()} threads, model {args.model}"
          + (f" + {args.adapter}" if args.adapter else ""))
    for name, seconds in timings.items():
        print(f"  {name:13s} {seconds:6.1f} s")
    print(f"  speed-up {timings['transformers'] / timings['rows leave']:.2f}x; identical texts "
          f"{same}/{len(prompts)}")


if __name__ == "__main__":
    main()
