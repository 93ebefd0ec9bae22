from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selection_core.spine.errors import ConfigError
from selection_core.lm.formatting import collate, encode_pair
from selection_core.lm.tiny import build_tiny_causal_lm
from selection_core.train.generate import generate, truncate_at_stop
from selection_core.train.lora import LoRAConfig, LoRATrainer, example_losses, load_trained

PROMPTS = ["Say yes.", "Say no.", "Count to three.", "Name a colour."]
RESPONSES = ["yes", "no", "one two three", "blue"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm", seed=0))


def test_loss_is_per_example_mean_over_response_tokens(tiny: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    examples = [encode_pair(tokenizer, p, r, 128) for p, r in zip(PROMPTS, RESPONSES)]
    batch = collate(examples, tokenizer.pad_token_id)
    losses = example_losses(model, batch)
    for row, example in enumerate(examples):  # by hand, one example at a time, no padding
        ids = torch.tensor([example["input_ids"]])
        labels = torch.tensor(example["labels"][1:])
        logits = model(ids).logits[0, :-1]
        mask = labels != -100
        expected = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
        assert losses[row].item() == pytest.approx(expected.item(), abs=1e-5)


def test_training_lowers_the_loss_and_saves_epoch_checkpoints(tiny: str, tmp_path: Path) -> None:
    config = LoRAConfig(r=8, alpha=16, epochs=3, batch_size=2, learning_rate=3e-2,
                        warmup_ratio=0.0, max_length=64, dropout=0.0)
    trainer = LoRATrainer(tiny, config).fit(PROMPTS * 4, RESPONSES * 4, tmp_path)
    losses = [h["loss"] for h in trainer.history_]
    assert len(losses) == 24
    # a random tiny model learns slowly through LoRA alone, but it does learn
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1
    assert [c.name for c in trainer.checkpoints_] == [f"checkpoint-epoch{e}" for e in (1, 2, 3)]
    state = json.loads((trainer.checkpoints_[0] / "state.json").read_text())
    assert state["steps"] == 8 and state["mean_lr"] > 0
    moments = load_file(str(trainer.checkpoints_[0] / "optimizer.safetensors"))
    lora_names = [n for n in moments if n.endswith(".exp_avg")]
    assert lora_names and all("lora_" in n for n in lora_names)
    assert (trainer.adapter_dir_ / "adapter_model.safetensors").exists()
    assert not (trainer.adapter_dir_ / "optimizer.safetensors").exists()


def test_an_interrupted_run_resumes_to_the_same_adapter(tiny: str, tmp_path: Path) -> None:
    config = LoRAConfig(epochs=2, batch_size=2, learning_rate=1e-2, max_length=64, dropout=0.1)
    whole = LoRATrainer(tiny, config).fit(PROMPTS * 2, RESPONSES * 2, tmp_path / "whole")

    def interrupt(step: int, total: int) -> None:
        if step == 6:  # in the middle of epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LoRATrainer(tiny, config).fit(PROMPTS * 2, RESPONSES * 2, tmp_path / "cut",
                                      progress=interrupt)
    assert (tmp_path / "cut" / "checkpoint-epoch1").exists()
    assert not (tmp_path / "cut" / "checkpoint-epoch2").exists()
    resumed = LoRATrainer(tiny, config).fit(PROMPTS * 2, RESPONSES * 2, tmp_path / "cut")
    assert resumed.history_ == whole.history_
    for name in ("adapter/adapter_model.safetensors", "checkpoint-epoch2/optimizer.safetensors",
                 "checkpoint-epoch2/rng.safetensors"):
        a = load_file(str(tmp_path / "whole" / name))
        b = load_file(str(tmp_path / "cut" / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), (name, key)


def test_bad_training_input(tiny: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="as many responses"):
        LoRATrainer(tiny).fit(["a"], [], tmp_path)


def test_generation_is_greedy_batched_and_stops(tiny: str, tmp_path: Path) -> None:
    config = LoRAConfig(epochs=1, batch_size=2, max_length=64)
    adapter = LoRATrainer(tiny, config).fit(PROMPTS, RESPONSES, tmp_path).adapter_dir_
    model, tokenizer = load_trained(tiny, adapter)
    batched = generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=3)
    single = [generate(model, tokenizer, [p], max_new_tokens=12)[0] for p in PROMPTS]
    assert batched == single  # left padding does not change greedy outputs
    assert all(isinstance(t, str) for t in batched)
    assert truncate_at_stop("answer\n\nQuestion: next", ["\n\n", "Question:"]) == "answer"
    stopped = generate(model, tokenizer, PROMPTS[:1], max_new_tokens=12,
                       stop=[batched[0][:2]] if batched[0][:2].strip() else ["\x00"])
    assert len(stopped[0]) <= len(batched[0])


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_lr_factor_decays_as_transformers_schedules(decay: str) -> None:
    """After the warm-up the multiplier equals transformers' schedule of the same name."""
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    from selection_core.train.lora import lr_factor

    warmup, total = 3, 20
    build = get_cosine_schedule_with_warmup if decay == "cosine" else \
        get_linear_schedule_with_warmup
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = build(optimizer, warmup, total).lr_lambdas[0]
    for step in range(total + 1):
        assert lr_factor(step, warmup, total, decay) == pytest.approx(reference(step), abs=1e-12)
    assert [lr_factor(s, warmup, total, decay) for s in range(warmup + 1)] == \
        pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # factor 0 at step 0, as transformers'


def test_warm_up_steps_are_counted_as_transformers_counts_them() -> None:
    from transformers import TrainingArguments

    from selection_core.train.steps import warmup_steps

    assert warmup_steps(0.03, 1692) == 51  # ceil(50.76): a re-implementation had 50
    for ratio, total in ((0.03, 1692), (0.2, 6), (0.1, 10), (0.0, 5)):
        arguments = TrainingArguments(output_dir="unused", warmup_steps=ratio, report_to=[])  # < 1: a ratio
        assert warmup_steps(ratio, total) == arguments.get_warmup_steps(total)


# Per-step (loss, lr) of this run, recorded when the schedule became transformers' own
# (`get_scheduler`, issue 24: factor 0 at step 0, ceil(0.2 × 6) = 2 warm-up steps); the losses of
# the first step are the hand-written loop's this trainer replaced (commit d1da454), the rest
# follow the new schedule. The run covers dropout (Trainer must not re-seed it), a partial last
# accumulation group, warm-up, cosine decay and weight decay.
RECORDED_CURVE = [(5.582685947418213, 0.0), (5.494211435317993, 0.01),
                     (5.529090404510498, 0.02), (5.343348979949951, 0.017071067811865476),
                     (5.392608165740967, 0.01), (5.36530876159668, 0.0029289321881345253)]
CURVE_PROMPTS = ["Say yes.", "Say no.", "Count to three.", "Name a colour.", "Add 2 and 2."]
CURVE_RESPONSES = ["yes", "no", "one two three", "blue", "four"]


def test_the_loss_curve_is_the_recorded_one(tiny: str, tmp_path: Path) -> None:
    config = LoRAConfig(epochs=2, batch_size=2, grad_accumulation=2, learning_rate=2e-2,
                        warmup_ratio=0.2, lr_scheduler="cosine", weight_decay=0.01, dropout=0.1,
                        max_length=64)
    history = LoRATrainer(tiny, config).fit(CURVE_PROMPTS * 2, CURVE_RESPONSES * 2,
                                            tmp_path).history_
    assert [(h["step"], h["epoch"]) for h in history] == \
        [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert [h["lr"] for h in history] == pytest.approx([lr for _, lr in RECORDED_CURVE],
                                                       rel=1e-12)
    # bit-identical on the machine that recorded it; the tolerance allows other CPUs' kernels
    assert [h["loss"] for h in history] == pytest.approx([loss for loss, _ in RECORDED_CURVE],
                                                         abs=1e-4)


def test_two_ddp_processes_train_the_adapter_of_one(tiny: str, tmp_path: Path,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """`processes=2` launches `python -m selection_core.train` under torchrun (gloo, CPU); with
    the same global batch it trains the adapter and Adam moments of one process (the module's
    own command line), and rank 0 alone writes each checkpoint. 10 rows in global batches of 3
    end with a batch split 2 + 1 and a 1-row batch that leaves rank 1 a weight-0 row: both must
    weigh every example as one process does."""
    from dataclasses import replace

    from selection_core.data.loaders import load_pool
    from selection_core.influence.gradients import adam_state
    from selection_core.train.__main__ import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n"
                            for p, r in zip(CURVE_PROMPTS * 2, CURVE_RESPONSES * 2)))
    lora = ["--lora", "epochs=2", "--lora", "batch_size=3", "--lora", "grad_accumulation=2",
            "--lora", "learning_rate=1e-2", "--lora", "dropout=0.0", "--lora", "max_length=64"]
    assert main([tiny, str(data), str(tmp_path / "one"), *lora]) == 0
    capfd.readouterr()
    config = replace(LoRAConfig(epochs=2, batch_size=3, grad_accumulation=2, learning_rate=1e-2,
                                dropout=0.0, max_length=64), processes=2)
    pool = load_pool(str(data))
    two = LoRATrainer(tiny, config).fit(pool["prompt"].tolist(), pool["response"].tolist(),
                                        tmp_path / "two")
    stderr = capfd.readouterr().err
    for epoch in (1, 2):  # each checkpoint is written by rank 0 only, once
        assert stderr.count(f"[rank 0] selection_core.train.lora: wrote "
                            f"{tmp_path / 'two' / f'checkpoint-epoch{epoch}'}") == 1, stderr
    assert "[rank 1] selection_core.train.lora: wrote" not in stderr
    assert [c.name for c in two.checkpoints_] == ["checkpoint-epoch1", "checkpoint-epoch2"]
    assert not (tmp_path / "two" / ".pairs.json").exists()
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    assert [h["lr"] for h in two.history_] == [h["lr"] for h in one] and len(one) == 4
    assert [h["loss"] for h in two.history_] == pytest.approx([h["loss"] for h in one], abs=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    names = [k.removesuffix(".exp_avg") for k in
             load_file(str(tmp_path / "one" / "checkpoint-epoch2" / "optimizer.safetensors"))
             if k.endswith(".exp_avg")]
    ours = adam_state(tmp_path / "one" / "checkpoint-epoch2", names)
    theirs = adam_state(tmp_path / "two" / "checkpoint-epoch2", names)
    assert torch.allclose(ours.exp_avg, theirs.exp_avg, atol=1e-6)
    assert torch.allclose(ours.exp_avg_sq, theirs.exp_avg_sq, rtol=1e-4, atol=1e-10)


def full_logit_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss as it was before issue 15 §5: the whole batch × length × vocabulary logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.clamp(min=0).reshape(-1),
        reduction="none").view(targets.shape)
    return (token_loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def test_the_training_loss_never_holds_the_full_logits_and_has_their_gradients(
        tiny: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 §5: the head sees at most LOGIT_CHUNK_POSITIONS positions at a time (plus the
    one position the model's own forward keeps), forward and recomputed backward alike, and the
    losses and the LoRA gradients are those of the full-logits loss — an example without
    response tokens included."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selection_core.lm import formatting

    monkeypatch.setattr(formatting, "LOGIT_CHUNK_POSITIONS", 5)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny),
                           LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                      target_modules=["q_proj", "v_proj"]))
    examples = [encode_pair(tokenizer, p, r, 128) for p, r in zip(PROMPTS, RESPONSES)]
    examples.append(encode_pair(tokenizer, "Nothing to say.", "", 128, add_eos=False))
    batch = collate(examples, tokenizer.pad_token_id)
    lora = [p for p in model.parameters() if p.requires_grad]

    def losses_and_gradients(loss_fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
        losses = loss_fn(model, batch)
        return losses.detach(), list(torch.autograd.grad(losses.sum(), lora))

    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, inputs, output: rows.append(output.shape[:-1].numel()))
    try:
        chunked, chunked_grads = losses_and_gradients(example_losses)
    finally:
        hook.remove()
    full, full_grads = losses_and_gradients(full_logit_losses)
    response_positions = int((batch["labels"][:, 1:] != -100).sum())
    assert max(rows) <= max(5, len(examples)) < batch["input_ids"].numel()
    assert sum(rows) == len(examples) + 2 * response_positions  # forward + recomputed backward
    assert chunked[-1].item() == 0.0
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(chunked_grads, full_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_activation_checkpointing_trains_the_same_adapter(tiny: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Recomputing activations in the backward (the CPU default) changes memory, not numbers:
    with LoRA dropout drawing from the RNG, both settings give the same losses and adapter."""
    from transformers import PreTrainedModel

    enabled: list[str] = []
    enable = PreTrainedModel.activation_checkpointing_enable
    monkeypatch.setattr(PreTrainedModel, "activation_checkpointing_enable",
                        lambda self, *a, **k: (enabled.append(setting), enable(self, *a, **k)))
    adapters = {}
    for setting in ("on", "off", "auto"):
        config = LoRAConfig(epochs=1, batch_size=2, learning_rate=2e-2, dropout=0.1,
                            max_length=64, activation_checkpointing=setting)
        assert config.config_hash() == LoRAConfig(epochs=1, batch_size=2, learning_rate=2e-2,
                                                  dropout=0.1, max_length=64).config_hash()
        trainer = LoRATrainer(tiny, config).fit(CURVE_PROMPTS, CURVE_RESPONSES, tmp_path / setting)
        adapters[setting] = (trainer.history_,
                             load_file(str(trainer.adapter_dir_ / "adapter_model.safetensors")))
    assert enabled == ["on", "auto"]  # auto: on, as training runs on CPU here
    (history_on, weights_on), (history_off, weights_off) = adapters["on"], adapters["off"]
    assert [h["loss"] for h in history_on] == pytest.approx([h["loss"] for h in history_off],
                                                            abs=1e-6)
    assert weights_on.keys() == weights_off.keys()
    for name in weights_on:
        torch.testing.assert_close(weights_on[name], weights_off[name], rtol=1e-5, atol=1e-7)
