"""The warmup presets: LESS's and BIDS A.2's published settings, and how explicit values combine
with them (per-step batch vs effective batch, α = 4·r)."""
from __future__ import annotations

import pytest

from selection_core.spine.config import LoRAConfig
from selection_core.spine.errors import ConfigError
from selection_core.influence.pipeline import WARMUP_PRESETS, describe_warmup, warmup_settings

PAPER = dict(r=128, alpha=512, dropout=0.1, target_modules=None, epochs=4, learning_rate=2e-5,
             weight_decay=0.0, warmup_ratio=0.03, max_length=2048)


def test_less_preset_is_the_less_warmup_script() -> None:
    fraction, lora = warmup_settings("less")
    assert fraction == 0.05
    assert lora == LoRAConfig(**PAPER, lr_scheduler="linear", batch_size=1, grad_accumulation=32)


def test_bids_preset_is_bids_appendix_a2() -> None:
    fraction, lora = warmup_settings("bids")
    assert fraction == 1.0 and WARMUP_PRESETS["bids"].effective_batch == 128
    assert lora == LoRAConfig(**PAPER, lr_scheduler="cosine", batch_size=1,
                              grad_accumulation=128)


def test_explicit_values_replace_the_presets_and_keep_the_effective_batch() -> None:
    fraction, lora = warmup_settings("bids", fraction=0.5, batch_size=8, r=8, epochs=2)
    assert fraction == 0.5 and (lora.batch_size, lora.grad_accumulation) == (8, 16)
    assert (lora.r, lora.alpha, lora.epochs, lora.lr_scheduler) == (8, 32, 2, "cosine")
    _, lora = warmup_settings("less", batch_size=4, effective_batch=4, r=8, alpha=16)
    assert (lora.batch_size, lora.grad_accumulation, lora.alpha) == (4, 1, 16)
    with pytest.raises(ConfigError, match="multiple of the per-step batch 3"):
        warmup_settings("less", batch_size=3)
    with pytest.raises(ConfigError, match="unknown preset 'lora'"):
        warmup_settings("lora")


def test_the_description_names_every_value() -> None:
    fraction, lora = warmup_settings("less", seed=3)
    text = describe_warmup("less", fraction, lora)
    for value in ("preset less", "LESS", "fraction 0.05", "4 epochs", "learning rate 2e-05",
                  "linear decay after a 0.03 warm-up", "batch 1 × 32 accumulated = 32",
                  "max length 2048", "r 128 alpha 512 dropout 0.1", "seed 3"):
        assert value in text, value
