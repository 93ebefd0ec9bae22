"""Unit conversions with the working shown; the usual slip (inverted factor, lost offset) is
the wrong answer. Checked by the last number, to 1% (rounding to 2 decimals is fine)."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .common import Item, numbers


def _fmt(value: float) -> str:
    """Round to 2 decimals and drop trailing zeros: 5200, 3.25, 0.5, -10."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _close(predicted: float, gold: float) -> bool:
    return abs(predicted - gold) <= max(0.01 * abs(gold), 0.01)


@dataclass(frozen=True)
class _Conversion:
    """One conversion, its usual slip (inverted factor, forgotten offset) and sensible inputs."""

    src: tuple[str, str]  # (plural name, symbol)
    dst: tuple[str, str]
    rule: str
    convert: Callable[[float], float]
    calc: Callable[[str], str]  # the working shown, from the formatted input
    slip: Callable[[float], float]
    slip_calc: Callable[[str], str]
    values: Callable[[random.Random], float]
    scenario: str  # one situational phrasing with {v}


def _linear(src: tuple[str, str], dst: tuple[str, str], factor: float, multiply: bool,
            rule: str, values: Callable[[random.Random], float], scenario: str) -> _Conversion:
    """A factor conversion; the slip is applying the factor the wrong way round."""
    ratio = factor if multiply else 1 / factor
    times, divide = (lambda v: f"{v} × {factor}"), (lambda v: f"{v} ÷ {factor}")
    return _Conversion(src, dst, rule, lambda v: v * ratio, times if multiply else divide,
                       lambda v: v / ratio, divide if multiply else times, values, scenario)


def _tenths(low: float, high: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.randint(round(low * 10), round(high * 10)) / 10


def _steps(low: int, high: int, step: int) -> Callable[[random.Random], float]:
    return lambda rng: float(rng.randrange(low, high + 1, step))


_KM, _M, _CM = ("kilometres", "km"), ("metres", "m"), ("centimetres", "cm")
_KG, _G, _LB = ("kilograms", "kg"), ("grams", "g"), ("pounds", "lb")
_H, _MIN, _S = ("hours", "h"), ("minutes", "min"), ("seconds", "s")
_L, _ML = ("litres", "L"), ("millilitres", "mL")
_MI, _IN, _FT = ("miles", "mi"), ("inches", "in"), ("feet", "ft")
_C, _F = ("degrees Celsius", "°C"), ("degrees Fahrenheit", "°F")

_CONVERSIONS = (
    _linear(_KM, _M, 1000, True, "1 km = 1000 m", _tenths(0.5, 50),
            "A trail is {v} km long. How many metres is that?"),
    _linear(_M, _KM, 1000, False, "1 km = 1000 m", _steps(150, 20000, 50),
            "My daily walk is {v} metres. How far is that in kilometres?"),
    _linear(_M, _CM, 100, True, "1 m = 100 cm", _tenths(0.5, 20),
            "A shelf is {v} m wide. What is its width in centimetres?"),
    _linear(_CM, _M, 100, False, "1 m = 100 cm", _steps(20, 900, 5),
            "The curtain is {v} cm long. How long is it in metres?"),
    _linear(_KG, _G, 1000, True, "1 kg = 1000 g", _tenths(0.2, 25),
            "A bag of flour weighs {v} kg. How many grams is that?"),
    _linear(_G, _KG, 1000, False, "1 kg = 1000 g", _steps(50, 9000, 25),
            "The parcel weighs {v} g. What is that in kilograms?"),
    _linear(_H, _MIN, 60, True, "1 hour = 60 minutes", lambda rng: rng.randint(1, 48) / 4,
            "The flight takes {v} hours. How many minutes is that?"),
    _linear(_MIN, _H, 60, False, "1 hour = 60 minutes", _steps(15, 600, 5),
            "The film runs for {v} minutes. How long is that in hours?"),
    _linear(_MIN, _S, 60, True, "1 minute = 60 seconds", lambda rng: rng.randint(3, 180) / 2,
            "The egg needs to boil for {v} minutes. How many seconds is that?"),
    _linear(_L, _ML, 1000, True, "1 L = 1000 mL", _tenths(0.2, 10),
            "The bottle holds {v} L of water. How many millilitres is that?"),
    _linear(_ML, _L, 1000, False, "1 L = 1000 mL", _steps(50, 5000, 10),
            "My recipe needs {v} mL of milk. How much is that in litres?"),
    _linear(_MI, _KM, 1.609344, True, "1 mile = 1.609344 km", _tenths(1, 120),
            "The road sign says {v} miles to the coast. How far is that in kilometres?"),
    _linear(_KM, _MI, 1.609344, False, "1 mile = 1.609344 km", _tenths(1, 200),
            "I ran {v} km this morning. How many miles was that?"),
    _linear(_LB, _KG, 0.45359237, True, "1 lb = 0.45359237 kg", _tenths(1, 250),
            "My suitcase weighs {v} lb. What is that in kilograms?"),
    _linear(_IN, _CM, 2.54, True, "1 inch = 2.54 cm", _tenths(1, 80),
            "The laptop screen is {v} inches wide. How many centimetres is that?"),
    _linear(_FT, _M, 0.3048, True, "1 foot = 0.3048 m", _steps(3, 3000, 1),
            "The hill is {v} feet high. What is its height in metres?"),
    _Conversion(_C, _F, "°F = °C × 9/5 + 32", lambda v: v * 9 / 5 + 32,
                lambda v: f"{v} × 9/5 + 32", lambda v: v * 9 / 5, lambda v: f"{v} × 9/5",
                _steps(-25, 45, 1), "It is {v} °C outside. What is that in Fahrenheit?"),
    _Conversion(_F, _C, "°C = (°F - 32) × 5/9", lambda v: (v - 32) * 5 / 9,
                lambda v: f"({v} - 32) × 5/9", lambda v: v * 5 / 9, lambda v: f"{v} × 5/9",
                _steps(-10, 110, 1), "The oven manual says {v} °F. What is that in Celsius?"),
)
_CONVERSION_PROMPTS = ("Convert {v} {src} to {dst}.", "What is {v} {src_sym} converted to {dst}?",
                       "Please express {v} {src} in {dst}, rounded to two decimal places.",
                       "Quick conversion: {v} {src_sym} = ? {dst_sym}")
_COUNT_PROMPT = "How many {dst} are there in {v} {src}?"  # not for temperatures
_CONVERSION_ANSWERS = ("Since {rule}, {v} {src_sym} = {calc} = {r} {dst_sym}.",
                       "Using {rule}: {calc} = {r} {dst_sym}.",
                       "{v} {src} is {r} {dst}.")


def generate(rng: random.Random) -> Item:
    conv = rng.choice(_CONVERSIONS)
    value = conv.values(rng)
    v = _fmt(value)
    prompts = list(_CONVERSION_PROMPTS) + [conv.scenario]
    if conv.src[1] not in ("°C", "°F"):
        prompts.append(_COUNT_PROMPT)
    names = {"v": v, "src": conv.src[0], "src_sym": conv.src[1], "dst": conv.dst[0],
             "dst_sym": conv.dst[1], "rule": conv.rule}
    prompt = rng.choice(prompts).format(**names)
    answer = rng.choice(_CONVERSION_ANSWERS)
    result = _fmt(conv.convert(value))
    response = answer.format(**names, calc=conv.calc(v), r=result)
    wrong = answer.format(**names, calc=conv.slip_calc(v), r=_fmt(conv.slip(value)))
    return Item(prompt, response, result, wrong)


# --------------------------------------------------------------------------- checking
def check(gold: str, completion: str) -> bool:
    values = numbers(completion)
    return bool(values) and _close(values[-1], float(gold))
