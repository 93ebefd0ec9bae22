"""Issue 13: the warmup's LoRA flags and `influence select`'s flags are made from the configs'
declarations (`config.param`), so a bound, a default or a help text lives in one place."""
from __future__ import annotations

import dataclasses

import pytest

from selection_core.cli import build_parser
from selection_core.spine.config import LoRAConfig, field_default
from selection_core.spine.config_args import config_kwargs
from selection_core.influence.cli import WARMUP_LORA_FLAGS
from selection_core.influence.pipeline import WARMUP_PRESETS, warmup_settings
from selection_core.select.bids import INFLUENCE_METHODS, InfluenceSelectConfig

WARMUP = ["influence", "warmup", "--run", "r", "--model", "m"]


def _lora(argv: list[str]) -> LoRAConfig:
    args = build_parser().parse_args(argv)
    lora = config_kwargs(LoRAConfig, args)
    return warmup_settings(args.preset, fraction=args.fraction, batch_size=lora.pop("batch_size"),
                           effective_batch=args.effective_batch, **lora)[1]


def test_warmup_flags_are_the_lora_fields_and_default_to_the_preset() -> None:
    args = build_parser().parse_args(WARMUP)
    assert all(getattr(args, name) is None for name in WARMUP_LORA_FLAGS)  # nothing given
    assert _lora(WARMUP) == WARMUP_PRESETS["less"].lora
    assert _lora([*WARMUP, "--preset", "bids"]) == WARMUP_PRESETS["bids"].lora
    given = _lora([*WARMUP, "--lora-r", "4", "--lr", "0.001", "--epochs", "2", "--seed", "3",
                   "--max-steps", "5", "--device", "cpu", "--processes", "2"])
    assert (given.r, given.alpha, given.learning_rate, given.epochs, given.seed,
            given.max_steps, given.device, given.processes) == (4, 16, 0.001, 2, 3, 5, "cpu", 2)


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--lora-r", "0"), ("--lr", "-1"),
                                         ("--batch-size", "0"), ("--max-length", "0"),
                                         ("--processes", "0"), ("--lr", "nan")])
def test_warmup_flags_refuse_values_outside_the_declared_bounds(
        flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*WARMUP, flag, value])
    assert flag in capsys.readouterr().err


def test_every_lora_field_is_declared_with_help() -> None:
    for spec in dataclasses.fields(LoRAConfig):
        assert spec.metadata.get("help"), spec.name


def test_influence_select_flags_come_from_its_config(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["influence", "select", "--matrix", "A.npy", "--val-tasks",
                                      "t.txt", "--method", "bids", "--budget", "10%",
                                      "--out", "x.txt"])
    config = InfluenceSelectConfig(**config_kwargs(InfluenceSelectConfig, args))
    assert config == InfluenceSelectConfig("bids", "10%", field_default(InfluenceSelectConfig,
                                                                        "seed"))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["influence", "select", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert ", ".join(INFLUENCE_METHODS) in shown and "(default: 0)" in shown
