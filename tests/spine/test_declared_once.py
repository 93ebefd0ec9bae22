"""Issue 25 §2: every config field is declared once, with `config.param`; the configs' own check,
the CLI's flags and `--help`, the experiment TOML's loader and the generic `from_dict` all derive
from that declaration, so no default, bound or choice is written twice. (The pages' widgets:
tests/app/test_declared_widgets.py.)"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selection_core.experiment import plan as experiment
from selection_core.select.clean import CleanConfig
from selection_core.data.loaders import IngestLimits
from selection_core.cli import build_parser
from selection_core.spine.config import EmbedConfig, IterativeConfig, KMeansConfig, LoRAConfig, \
    ScorerConfig, SelectionConfig, SweepConfig, UMAPConfig, field_choices, from_dict, \
    value_problem
from selection_core.spine.errors import ConfigError, InputError
from selection_core.influence.pipeline import FeatureSettings, WarmupConfig
from selection_core.iterative.loop import IterateJob, round_lora
from selection_core.select.stages import PrepareConfig
from selection_core.scale import ScaleConfig
from selection_core.select.bids import InfluenceSelectConfig

# every config whose fields are all declared with `param`, and what its required fields need
DECLARED = {EmbedConfig: {}, KMeansConfig: {"k": 4}, SweepConfig: {"ks": (2, 4)},
            UMAPConfig: {}, ScorerConfig: {}, SelectionConfig: {}, LoRAConfig: {},
            IterativeConfig: {"k": 4, "budget": 30}, CleanConfig: {},
            InfluenceSelectConfig: {"method": "bids", "budget": "10"}, ScaleConfig: {}}
# the commands whose config flags were hand-written before issue 25, and the config each builds
BUILT_FROM = {"embed": EmbedConfig, "sweep": SweepConfig, "cluster": KMeansConfig,
              "umap": UMAPConfig, "score": ScorerConfig, "select": SelectionConfig}
HAND_WRITTEN = {("select", "budget")}  # a count or a share ("10%"): parsed by the command


def _commands(parser: argparse.ArgumentParser, prefix: str = ""
              ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def _flags() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    return [(command, sub, action) for command, sub in _commands(build_parser())
            for action in sub._actions if hasattr(action, "declared")]


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _field(config_type: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(config_type)}[name]


def _bad_value(spec: dataclasses.Field) -> Any:
    """A value just outside the field's declared bound."""
    low, positive = spec.metadata.get("low"), spec.metadata.get("positive")
    kind = float if "float" in str(spec.type) else int
    edge = max(low if low is not None else -math.inf, 0 if positive else -math.inf)
    return kind(edge - 1) if kind is int or not positive else 0.0


def test_every_field_of_the_configs_is_declared_with_help() -> None:
    for config_type in (*DECLARED, IngestLimits):
        for spec in dataclasses.fields(config_type):
            assert spec.metadata.get("help"), f"{config_type.__name__}.{spec.name}"


def test_the_configs_check_their_declared_bounds_and_choices_at_construction() -> None:
    checked = 0
    for config_type, required in DECLARED.items():
        for spec in dataclasses.fields(config_type):
            meta = spec.metadata
            if meta.get("choices"):
                bad = "not-a-choice"
            elif meta.get("low") is not None or meta.get("positive"):
                bad = _bad_value(spec)
                bad = (bad,) if str(spec.type).startswith("tuple") else bad
            else:
                continue
            message = value_problem(config_type, spec.name, bad, named=True)
            assert message and spec.name in message
            with pytest.raises(ConfigError) as caught:
                config_type(**{**required, spec.name: bad})
            assert str(caught.value) == message, (config_type.__name__, spec.name)
            checked += 1
    assert checked >= 60  # the bounds and choices of the eleven configs


def test_every_generated_flag_shows_and_applies_the_declaration(
        capsys: pytest.CaptureFixture[str]) -> None:
    flags = _flags()
    assert len(flags) >= 100
    for command, sub, action in flags:
        config_type, name, preset = action.declared
        spec = _field(config_type, name)
        where = f"{command} {action.option_strings[0]} ({config_type.__name__}.{name})"
        shown = _squeezed(sub.format_help())  # argparse wraps lines, even inside words
        assert _squeezed(spec.metadata["help"]) in shown, where
        if isinstance(action, argparse._StoreTrueAction):
            assert spec.default is False and action.default is False, where
            continue
        if preset:
            assert action.default is None, where
        elif action.required:
            assert spec.default is dataclasses.MISSING or command in ("select", "iterate"), where
        else:
            assert action.default == spec.default, where
            assert _squeezed(action.help.replace("%(default)s", str(spec.default))) in shown, \
                where
        choices = field_choices(spec)
        if action.choices is not None:
            assert tuple(action.choices) == choices, where
        elif choices:
            assert _squeezed(", ".join(map(str, choices))) in shown, where
        if spec.metadata.get("low") is not None or spec.metadata.get("positive"):
            bad = _bad_value(spec)
            with pytest.raises(argparse.ArgumentTypeError) as caught:
                action.type(str(bad))
            assert str(caught.value) == value_problem(config_type, name, bad), where
            assert action.type(str(spec.default)) in (spec.default, (spec.default,)) \
                if spec.default not in (None, dataclasses.MISSING) else True


def test_no_hand_written_flag_repeats_a_field_of_the_config_its_command_builds() -> None:
    commands = dict(_commands(build_parser()))
    for command, config_type in BUILT_FROM.items():
        names = {f.name for f in dataclasses.fields(config_type)}
        generated = {a.dest for a in commands[command]._actions if hasattr(a, "declared")}
        hand_written = {a.dest for a in commands[command]._actions
                        if not hasattr(a, "declared")} & names
        assert hand_written == {n for c, n in HAND_WRITTEN if c == command}, command
        assert generated, command


@pytest.mark.parametrize("section, key", [
    (section, key) for section, keys in experiment._DECLARED.items() for key in keys])
def test_the_experiment_toml_applies_the_same_check_and_defaults(
        tmp_path: Path, section: str, key: str) -> None:
    config_type, name = experiment._DECLARED[section][key]
    spec = _field(config_type, name)
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\nmodel = "m"\n')
    loaded = experiment.load_experiment_config(path)
    if section == "train":  # [train] defaults to the papers' LoRA, on purpose
        assert getattr(loaded.lora, name) == getattr(experiment.PAPER_LORA, name)
    else:
        attribute = f"iterative_{name}" if section == "iterative" else name
        assert getattr(loaded, attribute) == spec.default, (section, key)
    if spec.metadata.get("choices"):
        bad: Any = "not-a-choice"
    elif spec.metadata.get("low") is not None or spec.metadata.get("positive"):
        bad = _bad_value(spec)
    else:
        return  # nothing bounds it (a model name, a seed)
    value = f'"{bad}"' if isinstance(bad, str) else repr(bad)
    path.write_text(f'name = "x"\nmodel = "m"\n[{section}]\n{key} = {value}\n')
    with pytest.raises(InputError) as caught:
        experiment.load_experiment_config(path)
    assert f"{section}.{key}" in str(caught.value)
    assert value_problem(config_type, name, bad) in str(caught.value)


def test_one_generic_from_dict_rebuilds_every_stored_config() -> None:
    """What the runner stores (`to_dict`, through JSON: tuples become lists) comes back equal,
    nested configs and tuples included, with no per-config reader."""
    import json

    configs = [
        SweepConfig(ks=(2, 4)), EmbedConfig(), CleanConfig(benchmarks=("demo",)),
        FeatureSettings(data_paths=(("mmlu", "a.jsonl"),)),
        WarmupConfig("m", lora=LoRAConfig(target_modules=("q_proj",))),
        PrepareConfig(demo_n=10, data=("a.jsonl",), ks=(2, 3)),
        IterateJob.create(IterativeConfig(k=4, budget=30), KMeansConfig(k=4), round_lora(4)),
    ]
    for config in configs:
        stored = json.loads(json.dumps(config.to_dict()))
        rebuilt = from_dict(type(config), stored)
        assert rebuilt == config and rebuilt.config_hash() == config.config_hash(), config
    for config_type in (CleanConfig, FeatureSettings, WarmupConfig, PrepareConfig, IterateJob):
        assert "from_dict" not in vars(config_type), config_type.__name__  # no hand-written one
