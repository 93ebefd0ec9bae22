"""One chat-template setting for everything a model sees (issue 24 §3): a model trained with
`LoRAConfig.chat_template = False` is evaluated, scored, asked in iterative rounds and featurised
in that same plain format — never in the tokenizer's chat template it was not trained on."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.lm import formatting
from selection_core.lm.tiny import build_tiny_causal_lm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm", seed=0))


@pytest.fixture
def formats(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The format of every prompt formatted from now on: "chat" or "plain"."""
    seen: list[str] = []
    original = formatting.format_prompt

    def recording(tokenizer, prompt, use_chat_template=None):
        text = original(tokenizer, prompt, use_chat_template)
        seen.append("plain" if text == original(tokenizer, prompt, False) else "chat")
        return text

    monkeypatch.setattr(formatting, "format_prompt", recording)
    return seen


@pytest.mark.parametrize("template", [False, True])
def test_evaluation_and_mmlu_scoring_use_the_training_format(tiny: str, formats: list[str],
                                                             template: bool) -> None:
    from selection_core.evaluate.base import EvalItem
    from selection_core.evaluate.mmlu import score_mmlu_loglik
    from selection_core.evaluate.protocol import get_protocol
    from selection_core.evaluate.registry import get_benchmark
    from selection_core.evaluate.runner import run_benchmark
    from selection_core.lm.loading import load_causal_lm

    model, tokenizer = load_causal_lm(tiny, device="cpu")
    want = "chat" if template else "plain"
    demo = get_benchmark("demo")
    items = demo.load(limit=2, seed=0)
    run_benchmark(demo, items, model, tokenizer, get_protocol("cpu-demo").spec("demo"),
                  max_new_tokens=2, use_chat_template=template)
    assert formats and set(formats) == {want}
    formats.clear()
    question = EvalItem(id="0", prompt="Which letter?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
                        gold="B", gold_response="B", meta={"subject": "x"})
    score_mmlu_loglik(model, tokenizer, [question], use_chat_template=template)
    assert formats and set(formats) == {want}


def test_iterative_rounds_and_gradient_features_use_the_training_format(
        tiny: str, formats: list[str], tmp_path: Path) -> None:
    from selection_core.influence.gradients import RademacherProjector, gradient_features
    from selection_core.iterative.loop import LoRARoundModel
    from selection_core.lm.loading import load_causal_lm
    from selection_core.train.lora import LoRAConfig

    plain = LoRAConfig(chat_template=False, max_length=64)
    rounds = LoRARoundModel(tiny, plain, max_new_tokens=2, device="cpu")
    rounds._model, rounds._tokenizer = load_causal_lm(tiny, device="cpu")
    rounds.generate(["Say yes."])
    rounds.response_log_likelihood(["Say yes."], ["yes"])
    assert formats and set(formats) == {"plain"}
    formats.clear()
    model, tokenizer = rounds._model, rounds._tokenizer
    for name, parameter in model.named_parameters():  # one Linear weight carries the gradient
        parameter.requires_grad_(name.endswith("layers.0.self_attn.q_proj.weight"))
    dim = sum(p.numel() for p in model.parameters() if p.requires_grad)
    gradient_features(model, tokenizer, ["Say yes."], ["yes"], RademacherProjector(dim, 4, 0),
                      max_length=64, use_chat_template=False)
    assert formats and set(formats) == {"plain"}
