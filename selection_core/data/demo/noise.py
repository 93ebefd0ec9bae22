"""The noise injected into the pool: wrong answers, truncations, empty and off-topic responses,
near-duplicate prompts. Each noisy row keeps a label saying which kind it is."""
from __future__ import annotations

import random
import re

from .common import Item
from .skills import check_answer

NOISE_TYPES: tuple[str, ...] = ("wrong_answer", "truncated", "empty", "near_duplicate",
                                "off_topic")

_EMPTY_RESPONSES = ("", " ", "\n", "...", "N/A", "-", "?")
_RAMBLE = (
    "The weather has been quite unpredictable lately, so always carry an umbrella.",
    "Our premium plan gives growing teams everything they need in one place.",
    "As I always say, a good morning routine makes all the difference.",
    "Sign up for our newsletter to hear about exclusive offers first.",
    "Many people enjoy long walks by the sea when the wind is calm.",
    "It is important to stay hydrated and to stretch before exercising.",
    "Click the link below to learn more about our loyalty rewards.",
    "Honestly, there is nothing like a warm cup of tea on a grey afternoon.",
    "In conclusion, every journey begins with a single step.",
    "Thank you for reading, and do not forget to like and subscribe.",
)
# Near-duplicates come last in the cycle so a small pool has rows to copy before needing one.
NOISE_CYCLE = ("wrong_answer", "truncated", "empty", "off_topic", "near_duplicate")


def _ramble(rng: random.Random) -> str:
    phrases = rng.sample(_RAMBLE, rng.randint(2, 3))
    return " ".join(phrases * rng.randint(2, 4))


def _mid_word(text: str, cut: int) -> int:
    """The nearest cut at or before `cut` that splits a word (`cut` itself if there is none)."""
    for i in range(min(cut, len(text) - 1), 0, -1):
        if text[i - 1].isalnum() and text[i].isalnum():
            return i
    return cut


def _truncate(skill: str, item: Item, rng: random.Random) -> str:
    """The clean response cut off mid-word, early enough that it no longer holds the answer."""
    text = item.response
    if skill == "python":
        return text[:_python_cut(text, rng)]
    cut = _mid_word(text, rng.randint(max(1, len(text) * 35 // 100), max(1, len(text) * 8 // 10)))
    while cut > 1 and check_answer(skill, item.gold, text[:cut]):
        cut = _mid_word(text, cut - 1)
    return text[:cut]


def _python_cut(text: str, rng: random.Random) -> int:
    """Cut inside an identifier in the first body lines, before the final `return`.

    The function then returns None or fails to compile, and can never loop forever (no loop
    body is left half-written), so checking it stays fast.
    """
    body_start = text.index("\n", text.index("```python\n") + len("```python\n")) + 1
    lines = text[body_start:].split("\n```")[0].split("\n")
    region = "\n".join(lines[:min(2, max(1, len(lines) - 1))])
    cuts = [body_start + i for i in range(1, len(region))
            if region[i - 1].isalnum() and region[i].isalnum()]
    return rng.choice(cuts)


def perturb(prompt: str, rng: random.Random) -> str:
    """A tiny edit: a typo, an extra space or changed end punctuation."""
    kind = rng.choice(("typo", "space", "punctuation"))
    words = list(re.finditer(r"[A-Za-z]{4,}", prompt))
    if kind == "typo" and words:
        match = rng.choice(words)
        i = rng.randint(match.start() + 1, match.end() - 2)
        if prompt[i] != prompt[i + 1]:
            return prompt[:i] + prompt[i + 1] + prompt[i] + prompt[i + 2:]
        return prompt[:i] + prompt[i + 1:]
    if kind == "punctuation":
        if prompt[-1] in ".?!":
            return prompt[:-1] + rng.choice(("", "!", "??", " ."))
        return prompt + rng.choice((".", "?"))
    spaces = [i for i, ch in enumerate(prompt) if ch == " "]
    i = rng.choice(spaces) if spaces else len(prompt)
    return prompt[:i] + " " + prompt[i:]


def noisy_response(noise_type: str, skill: str, item: Item, rng: random.Random) -> str:
    if noise_type == "wrong_answer":
        return item.wrong
    if noise_type == "truncated":
        return _truncate(skill, item, rng)
    if noise_type == "empty":
        return rng.choice(_EMPTY_RESPONSES)
    if noise_type == "off_topic":
        return _ramble(rng)
    return item.response
