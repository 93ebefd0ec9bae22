"""The demo skills in pool order: one module each, holding its generator and its checker."""
from __future__ import annotations

import random
from collections.abc import Callable

from . import arithmetic, classification, formatting, python, unit_conversion, world_qa
from .common import Item

_MODULES = {"arithmetic": arithmetic, "unit_conversion": unit_conversion, "python": python,
            "formatting": formatting, "classification": classification, "world_qa": world_qa}
SKILLS: tuple[str, ...] = tuple(_MODULES)
GENERATORS: dict[str, Callable[[random.Random], Item]] = {
    skill: module.generate for skill, module in _MODULES.items()}
_CHECKERS: dict[str, Callable[[str, str], bool]] = {
    skill: module.check for skill, module in _MODULES.items()}


def check_answer(skill: str, gold: str, completion: str) -> bool:
    """Whether `completion` answers correctly; python answers run in the sandbox."""
    if skill not in _CHECKERS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {', '.join(SKILLS)}")
    return _CHECKERS[skill](gold, completion)
