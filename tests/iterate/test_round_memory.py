"""The iterative loop frees each model before it loads the next (issue 15 §5): the last round's
merged model before training starts, the trainer's model before the trained one is loaded — so
at most one model (plus the one being built) is alive at any time, not one per step."""
from __future__ import annotations

import weakref
from pathlib import Path

import pytest

from selection_core.spine.config import LoRAConfig
from selection_core.iterative.loop import LoRARoundModel
from selection_core.lm.tiny import build_tiny_causal_lm
from selection_core.train import lora

PROMPTS = ["Name a colour.", "Add 2 and 3.", "Say hello.", "Name a fruit."]
RESPONSES = ["Blue.", "Five.", "Hello!", "An apple."]


def test_each_round_frees_its_models_before_the_next_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = str(build_tiny_causal_lm(tmp_path / "lm", seed=0))
    built: list[tuple[str, weakref.ref]] = []  # every model the loop built, in order

    def alive() -> list[str]:
        return [name for name, ref in built if ref() is not None]

    peft_model, load_trained = lora.LoRATrainer._peft_model, lora.load_trained

    def tracked_peft_model(self, base, init_adapter):
        assert alive() == [], f"still alive when training starts: {alive()}"
        model = peft_model(self, base, init_adapter)
        built.append((f"training model {len(built)}", weakref.ref(model)))
        return model

    def tracked_load_trained(*args, **kwargs):
        assert alive() == [], f"still alive when the trained model is loaded: {alive()}"
        model, tokenizer = load_trained(*args, **kwargs)
        built.append((f"trained model {len(built)}", weakref.ref(model)))
        return model, tokenizer

    monkeypatch.setattr(lora.LoRATrainer, "_peft_model", tracked_peft_model)
    monkeypatch.setattr(lora, "load_trained", tracked_load_trained)
    model = LoRARoundModel(tiny, LoRAConfig(epochs=1, batch_size=2, max_length=64),
                           max_new_tokens=4, batch_size=2, device="cpu")
    previous = None
    for number in (1, 2):
        out = tmp_path / f"round-{number}"
        model.train(PROMPTS, RESPONSES, out, previous, seed=number)
        assert len(model.generate(PROMPTS[:2])) == 2  # the round's model works
        previous = out
    assert len(built) == 4 and alive() == ["trained model 3"]  # the last round's, in use
