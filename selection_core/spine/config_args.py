"""CLI flags derived from the config declarations (`config.param`).

`add_config_arguments` makes a flag per field (type, choices, bounds, default and help from the
field; old flag names kept as aliases) and `config_kwargs` reads them back, so a default lives in
one place and `--help` shows the value the config, the TOML and the widgets use.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .config import KEEP_CHOICES, field_choices, value_problem


class Declared(NamedTuple):
    """Which declaration a flag was made from (`action.declared`): the check that no default,
    bound or choice is written twice walks the parser by these."""

    config_type: type
    name: str
    preset: bool


def _number(kind: type, config_type: type, name: str) -> Callable[[str], Any]:
    """An argparse type: a whole or finite number within the field's declared bounds."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        problem = value_problem(config_type, name, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def _numbers(config_type: type, name: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse type for a tuple of whole numbers: comma-separated, each within the bounds."""
    item = _number(int, config_type, name)

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(item(part) for part in text.split(",") if part.strip())
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        return values

    return parse


def _fields(config_type: type, names: Iterable[str] | None) -> list[dataclasses.Field]:
    table = {f.name: f for f in dataclasses.fields(config_type)}
    return [table[name] for name in (names if names is not None else table)]


def _kind(spec: dataclasses.Field) -> type:
    text = str(spec.type)
    if text.startswith("tuple[int"):
        return tuple
    for kind in (bool, int, float):
        if text.startswith(kind.__name__):
            return kind
    return str


def add_config_arguments(parser: argparse.ArgumentParser, config_type: type,
                         names: Iterable[str] | None = None, required: Iterable[str] = (),
                         flags: Mapping[str, str] | None = None,
                         enforce_choices: Iterable[str] = (),
                         preset: str | None = None) -> None:
    """One flag per field of `config_type` (or of `names`), derived from its declaration.

    `flags` renames a field's flag for this command (e.g. a second `--seed` elsewhere); `required`
    fields get no default. Booleans that default to False become switches. Choices are listed in
    the help; argparse refuses other values only for `enforce_choices` (elsewhere the config or
    the command refuses them with its own message). With `preset` (its description), every flag
    defaults to None, "the preset's value": the command fills what is not given from it."""
    required, enforce_choices = set(required), set(enforce_choices)
    for spec in _fields(config_type, names):
        meta = spec.metadata
        flag = (flags or {}).get(spec.name) or meta.get("flag") or \
            "--" + spec.name.replace("_", "-")
        options = [flag, *(a for a in meta.get("aliases", ()) if a != flag)]
        help_text = meta.get("help", "")
        kind = _kind(spec)
        if kind is bool and spec.default is False:
            action = parser.add_argument(*options, dest=spec.name, action="store_true",
                                         help=help_text)
            action.declared = Declared(config_type, spec.name, preset is not None)
            continue
        kwargs: dict[str, Any] = {"dest": spec.name, "help": help_text}
        if not (meta.get("choices") and spec.name in enforce_choices):
            kwargs["metavar"] = flag.lstrip("-").upper().replace("-", "_")
        if kind in (int, float):
            kwargs["type"] = _number(kind, config_type, spec.name)
        elif kind is tuple:
            kwargs["type"] = _numbers(config_type, spec.name)
        choices = field_choices(spec)
        if choices and spec.name in enforce_choices:
            kwargs["choices"] = choices
        elif choices:
            kwargs["help"] = f"{help_text}: {', '.join(map(str, choices))}"
        if preset is not None:
            kwargs["default"] = None
            kwargs["help"] = f"{kwargs['help']} (default: {preset})".lstrip()
        elif spec.name in required or spec.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = spec.default
            kwargs["help"] = f"{kwargs['help']} (default: %(default)s)".lstrip()
        action = parser.add_argument(*options, **kwargs)
        action.declared = Declared(config_type, spec.name, preset is not None)


def config_kwargs(config_type: type, args: argparse.Namespace) -> dict[str, Any]:
    """The values of `config_type`'s fields that `args` holds (as `add_config_arguments` made)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_type)
            if hasattr(args, f.name)}


def add_keep_option(parser: argparse.ArgumentParser) -> None:
    """`--keep`: the flagged rows of the run's `clean` result a selection keeps anyway (by
    default none: every flagged row is excluded)."""
    parser.add_argument("--keep", choices=KEEP_CHOICES, default="none",
                        help="once the run has a `clean` result its flagged rows are excluded; "
                             "keep duplicates, contaminated rows or all of them instead "
                             "(default: none)")
