"""The built-in demo pool: a synthetic instruction-tuning pool whose ground truth is known.

Why it exists: to show that data selection works, we need a pool where the answer is known. Every
row has a `skill` (clustering should recover it), machine-checkable `gold`, and an `is_noise` /
`noise_type` label (quality-based selection should avoid those rows), and comes from a `source`
with its own noise rate and skill mix, like real pools assembled from several places.

Everything is generated here from templates and word lists (no copied data) with seeded
`random.Random` streams, so a given (n, seed, noise_rate) always yields the same pool. Held-out
evaluation items come from a disjoint slice of the item space (a hash partition of the normalised
prompt), so no pool of any seed ever contains an evaluation prompt.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluate.sandbox import run_python
from ..store import write_jsonl

SKILLS: tuple[str, ...] = ("arithmetic", "unit_conversion", "python", "formatting",
                           "classification", "world_qa")
NOISE_TYPES: tuple[str, ...] = ("wrong_answer", "truncated", "empty", "near_duplicate",
                                "off_topic")
SOURCES: tuple[str, ...] = ("curated", "synthetic", "web_scrape")

_EVAL_BUCKETS = 10  # prompts whose hash % 10 == 0 are reserved for evaluation
_PYTHON_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Item:
    """One generated task: the clean response and a plausible response with a wrong answer."""

    prompt: str
    response: str
    gold: str
    wrong: str


@dataclass(frozen=True)
class _Source:
    """Where rows claim to come from: its share of the pool, relative noise and skill mix."""

    name: str
    share: float
    noise_weight: float
    skill_mix: tuple[float, ...]  # aligned with SKILLS


# At noise_rate 0.2 these give about 6% noise for curated, 17% synthetic, 45% web_scrape.
_SOURCE_PROFILES = (
    _Source("curated", 0.35, 1.0, (0.25, 0.10, 0.25, 0.10, 0.10, 0.20)),
    _Source("synthetic", 0.40, 3.0, (0.15, 0.25, 0.15, 0.25, 0.10, 0.10)),
    _Source("web_scrape", 0.25, 8.0, (0.10, 0.10, 0.10, 0.10, 0.35, 0.25)),
)

_NAMES = ("Maya", "Leo", "Priya", "Tom", "Aisha", "Carlos", "Mei", "Sam", "Nora", "Omar",
          "Elena", "Jonas", "Fatima", "Ben", "Yuki", "Grace")


# --------------------------------------------------------------------------- numbers
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_FINAL_ANSWER = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")


def _numbers(text: str) -> list[float]:
    return [float(match.replace(",", "")) for match in _NUMBER.findall(text)]


def _fmt(value: float) -> str:
    """Round to 2 decimals and drop trailing zeros: 5200, 3.25, 0.5, -10."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _close(predicted: float, gold: float) -> bool:
    return abs(predicted - gold) <= max(0.01 * abs(gold), 0.01)


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _wrong_int(rng: random.Random, answer: int) -> int:
    return rng.choice([answer + d for d in (-10, -2, -1, 1, 2, 10) if answer + d > 0])


# --------------------------------------------------------------------------- arithmetic
# Each scenario returns (prompt, steps, final step with a {} for the result, answer).
Scenario = tuple[str, list[str], str, int]


def _shopping(rng: random.Random) -> Scenario:
    name = rng.choice(_NAMES)
    first, second = rng.choice((("notebooks", "pens"), ("apples", "oranges"), ("mugs", "plates"),
                                ("candles", "greeting cards"), ("muffins", "coffees")))
    a, p, b, q = rng.randint(2, 6), rng.randint(2, 9), rng.randint(2, 5), rng.randint(1, 6)
    total = a * p + b * q
    bill = next(note for note in (20, 50, 100) if note > total)
    prompt = rng.choice((
        f"{name} buys {a} {first} at ${p} each and {b} {second} at ${q} each, paying with a "
        f"${bill} bill. How much change does {name} get back?",
        f"At the market, {first} cost ${p} each and {second} cost ${q} each. {name} picks up {a} "
        f"{first} and {b} {second} and hands the cashier ${bill}. What is the change?",
        f"How much change does {name} receive from ${bill} after buying {a} {first} (${p} each) "
        f"and {b} {second} (${q} each)?",
    ))
    steps = [f"Cost of the {first}: {a} × ${p} = ${a * p}.",
             f"Cost of the {second}: {b} × ${q} = ${b * q}.",
             f"Total spent: ${a * p} + ${b * q} = ${total}."]
    return prompt, steps, f"Change: ${bill} - ${total} = ${{}}.", bill - total


def _travel(rng: random.Random) -> Scenario:
    s1, s2 = rng.randrange(40, 125, 5), rng.randrange(40, 125, 5)
    h1, h2 = rng.randint(2, 5), rng.randint(2, 5)
    vehicle = rng.choice(("train", "bus", "car", "lorry"))
    prompt = rng.choice((
        f"A {vehicle} travels at {s1} km/h for {h1} hours and then at {s2} km/h for {h2} hours. "
        "How many kilometres does it cover in total?",
        f"{rng.choice(_NAMES)} drives for {h1} hours at {s1} km/h, takes a break, and then drives "
        f"another {h2} hours at {s2} km/h. What is the total distance driven in km?",
        f"On a road trip, the first leg lasts {h1} hours at an average of {s1} km/h and the second "
        f"leg {h2} hours at {s2} km/h. How long is the whole trip in kilometres?",
    ))
    steps = [f"First leg: {s1} × {h1} = {s1 * h1} km.",
             f"Second leg: {s2} × {h2} = {s2 * h2} km."]
    return prompt, steps, f"Total distance: {s1 * h1} + {s2 * h2} = {{}} km.", s1 * h1 + s2 * h2


def _sharing(rng: random.Random) -> Scenario:
    people, share, extra = rng.randint(3, 8), rng.randint(8, 35), rng.randint(1, 6)
    total = people * share
    prompt = rng.choice((
        f"{people} friends split a dinner bill of ${total} equally, and each of them also leaves "
        f"a ${extra} tip. How much does each friend pay in total?",
        f"A group of {people} colleagues shares a ${total} lunch order evenly. On top of that, "
        f"everyone adds ${extra} for the delivery driver. How much does one person pay?",
        f"{rng.choice(_NAMES)} and {people - 1} friends rent a cabin for ${total}, split evenly, "
        f"and each pays an extra ${extra} cleaning fee. What does each person pay?",
    ))
    steps = [f"Each share: ${total} ÷ {people} = ${share}."]
    return prompt, steps, f"Each person pays: ${share} + ${extra} = ${{}}.", share + extra


def _savings(rng: random.Random) -> Scenario:
    name, weekly, weeks = rng.choice(_NAMES), rng.randint(5, 30), rng.randint(4, 12)
    saved = weekly * weeks
    spent = rng.randint(saved // 3, saved - 1)
    thing = rng.choice(("bike", "guitar", "pair of headphones", "video game", "tent",
                        "skateboard"))
    prompt = rng.choice((
        f"{name} saves ${weekly} every week for {weeks} weeks and then spends ${spent} on a "
        f"{thing}. How much money does {name} have left?",
        f"Every week for {weeks} weeks, {name} puts ${weekly} into a jar. Then {name} buys a "
        f"{thing} for ${spent}. How much is left in the jar?",
        f"If you save ${weekly} a week for {weeks} weeks and then buy a {thing} costing "
        f"${spent}, how much of your savings remains?",
    ))
    steps = [f"Saved: {weeks} × ${weekly} = ${saved}."]
    return prompt, steps, f"Left: ${saved} - ${spent} = ${{}}.", saved - spent


def _baking(rng: random.Random) -> Scenario:
    batches, per_batch, box = rng.randint(2, 6), rng.randint(12, 36), rng.randint(4, 12)
    made = batches * per_batch
    boxes = rng.randint(1, (made - 1) // box)
    rest = boxes * box
    sold = made - rest
    prompt = rng.choice((
        f"A bakery bakes {batches} batches of {per_batch} cookies. It sells {sold} cookies at the "
        f"counter and packs the rest into boxes of {box}. How many boxes does it fill?",
        f"{rng.choice(_NAMES)} bakes {batches} trays of {per_batch} muffins for a school fair, "
        f"sells {sold} of them in the morning and packs the remaining muffins into boxes of {box}."
        " How many boxes are needed?",
    ))
    steps = [f"Baked: {batches} × {per_batch} = {made}.",
             f"Left after selling: {made} - {sold} = {rest}."]
    return prompt, steps, f"Boxes: {rest} ÷ {box} = {{}}.", boxes


def _garden(rng: random.Random) -> Scenario:
    rows, per_row, per_plant = rng.randint(3, 9), rng.randint(4, 12), rng.randint(3, 9)
    crop, crops = rng.choice((("tomato", "tomatoes"), ("pepper", "peppers"),
                              ("strawberry", "strawberries")))
    plants = rows * per_row
    grown = plants * per_plant
    lost = rng.randint(1, grown // 4)
    prompt = rng.choice((
        f"A garden has {rows} rows of {crop} plants with {per_row} plants in each row. Every plant "
        f"gives {per_plant} {crops}, but {lost} {crops} are eaten by birds. How many {crops} are "
        "harvested?",
        f"{rng.choice(_NAMES)} planted {rows} rows of {per_row} {crop} plants. Each plant produced "
        f"{per_plant} {crops}, and {lost} of them had to be thrown away. How many good {crops} "
        "were picked?",
    ))
    steps = [f"Plants: {rows} × {per_row} = {plants}.",
             f"{crops.capitalize()} grown: {plants} × {per_plant} = {grown}."]
    return prompt, steps, f"Harvested: {grown} - {lost} = {{}}.", grown - lost


def _reading(rng: random.Random) -> Scenario:
    name, per_day, days, weekend = (rng.choice(_NAMES), rng.randint(10, 40), rng.randint(3, 7),
                                    rng.randint(10, 60))
    weekdays = per_day * days
    read = weekdays + weekend
    book = read + rng.randint(20, 200)
    prompt = rng.choice((
        f"{name} reads {per_day} pages a day for {days} days and then another {weekend} pages "
        f"over the weekend. The book has {book} pages. How many pages are left?",
        f"A novel is {book} pages long. {name} reads {per_day} pages every evening for {days} "
        f"evenings, then {weekend} pages on Saturday. How many pages remain?",
    ))
    steps = [f"Pages on weekdays: {days} × {per_day} = {weekdays}.",
             f"Pages read so far: {weekdays} + {weekend} = {read}."]
    return prompt, steps, f"Pages left: {book} - {read} = {{}}.", book - read


def _tickets(rng: random.Random) -> Scenario:
    adult = rng.randint(8, 20)
    child, adults, children = rng.randint(4, adult - 1), rng.randint(1, 3), rng.randint(1, 4)
    coupon = rng.randint(2, 10)
    place = rng.choice(("zoo", "museum", "aquarium", "cinema", "science centre"))
    group = (f"{_plural(adults, 'adult', 'adults')} and "
             f"{_plural(children, 'child', 'children')}")
    prompt = rng.choice((
        f"A family with {group} visits the {place}. Adult tickets are ${adult}, child tickets "
        f"${child}, and they have a ${coupon} discount coupon. How much do they pay?",
        f"At the {place}, an adult ticket costs ${adult} and a child ticket ${child}. How much do "
        f"{group} pay in total if they use a coupon worth ${coupon}?",
    ))
    cost_a, cost_c = adults * adult, children * child
    steps = [f"Adults: {adults} × ${adult} = ${cost_a}.",
             f"Children: {children} × ${child} = ${cost_c}.",
             f"Before the coupon: ${cost_a} + ${cost_c} = ${cost_a + cost_c}."]
    total = cost_a + cost_c
    return prompt, steps, f"After the coupon: ${total} - ${coupon} = ${{}}.", total - coupon


def _factory(rng: random.Random) -> Scenario:
    rate, hours, days = rng.randint(2, 15) * 10, rng.randint(6, 10), rng.randint(2, 6)
    per_day = rate * hours
    prompt = rng.choice((
        f"A machine fills {rate} bottles per hour and runs {hours} hours a day. How many bottles "
        f"does it fill in {days} days?",
        f"A print shop produces {rate} flyers an hour. If it operates {hours} hours each day, how "
        f"many flyers are printed over {days} days?",
    ))
    steps = [f"Per day: {rate} × {hours} = {per_day}."]
    return prompt, steps, f"In {days} days: {per_day} × {days} = {{}}.", per_day * days


_SCENARIOS = (_shopping, _travel, _sharing, _savings, _baking, _garden, _reading, _tickets,
              _factory)


def _arithmetic(rng: random.Random) -> _Item:
    prompt, steps, final, answer = rng.choice(_SCENARIOS)(rng)
    wrong = _wrong_int(rng, answer)

    def solution(result: int) -> str:
        return "\n".join([*steps, final.format(result), f"#### {result}"])

    return _Item(prompt, solution(answer), str(answer), solution(wrong))


# --------------------------------------------------------------------------- unit conversion
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


def _unit_conversion(rng: random.Random) -> _Item:
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
    return _Item(prompt, response, result, wrong)


# --------------------------------------------------------------------------- python
@dataclass(frozen=True)
class _PyTask:
    """A small function to write: phrasings, correct and subtly buggy code, test inputs.

    Code templates use {name}, {p} and the task's slots; `make_arg(rng, slots)` draws one input.
    """

    names: tuple[str, ...]
    params: tuple[str, ...]
    does: tuple[str, ...]  # reads after "a function that ..."
    solutions: tuple[str, ...]
    bugs: tuple[str, ...]
    note: str
    make_arg: Callable[[random.Random, dict[str, Any]], Any]
    slots: Callable[[random.Random], dict[str, Any]] = lambda rng: {}


_WORDS = ("python", "keyboard", "river", "lantern", "orbit", "cactus", "meadow", "pixel",
          "garden", "window", "Quiet", "Umbrella", "Ocean", "Autumn", "Island", "Bread", "under",
          "Evening", "music", "Tulip")
_PALINDROMES = ("Level", "Racecar", "Noon", "Madam", "Refer", "Civic", "Rotor", "kayak", "stats",
                "Anna", "Deified", "Radar")
_NOT_PALINDROMES = ("Python", "Lemon", "Banana", "Tent", "Alpha", "Trust", "Sails", "Eagle",
                    "Rocket", "Dad's")


def _int_list(low: int, high: int, min_len: int = 3, max_len: int = 8
              ) -> Callable[[random.Random, dict[str, Any]], list[int]]:
    return lambda rng, _slots: [rng.randint(low, high) for _ in range(rng.randint(min_len,
                                                                                 max_len))]


def _spaced_words(rng: random.Random, _slots: dict[str, Any]) -> str:
    words = rng.sample(_WORDS, rng.randint(1, 5))
    text = words[0]
    for word in words[1:]:
        text += rng.choice((" ", " ", "  ", "\t", "   ")) + word
    return rng.choice(("", "", " ")) + text + rng.choice(("", "", " "))


def _max_input(rng: random.Random, _slots: dict[str, Any]) -> list[int]:
    low, high = rng.choice(((-50, 50), (-60, -1), (0, 99)))
    return [rng.randint(low, high) for _ in range(rng.randint(1, 7))]


def _second_largest_input(rng: random.Random, _slots: dict[str, Any]) -> list[int]:
    values = rng.sample(range(1, 31), rng.randint(2, 6))
    values.append(max(values) if rng.random() < 0.5 else rng.choice(values))
    rng.shuffle(values)
    return values


def _dedupe_input(rng: random.Random, _slots: dict[str, Any]) -> list[int]:
    values = [rng.randint(1, 12) for _ in range(rng.randint(4, 9))]
    return values + rng.sample(values, rng.randint(1, 3))


def _code(template: str) -> str:
    return textwrap.dedent(template).strip("\n")


def _fizz_slots(rng: random.Random) -> dict[str, Any]:
    a, b = rng.choice(((3, 5), (2, 7), (3, 4), (4, 5), (2, 5), (3, 7)))
    w1, w2 = rng.choice((("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong"), ("Zip", "Zap"),
                         ("Tick", "Tock")))
    return {"a": a, "b": b, "w1": w1, "w2": w2}


_PY_TASKS = (
    _PyTask(
        names=("sum_evens", "sum_of_evens", "even_total", "add_even_numbers"),
        params=("nums", "numbers", "values"),
        does=("returns the sum of the even numbers in the list `{p}`",
              "adds up only the even integers in a list and returns the total (0 if there are "
              "none)"),
        solutions=(_code("""
                       def {name}({p}):
                           total = 0
                           for x in {p}:
                               if x % 2 == 0:
                                   total += x
                           return total
                       """),
                   _code("""
                       def {name}({p}):
                           return sum(x for x in {p} if x % 2 == 0)
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      total = 0
                      for x in {p}:
                          if x % 2 == 1:
                              total += x
                      return total
                  """),
              _code("""
                  def {name}({p}):
                      return sum(x for x in {p}[1:] if x % 2 == 0)
                  """)),
        note="It keeps the values divisible by 2 and adds them up.",
        make_arg=_int_list(-20, 60)),
    _PyTask(
        names=("reverse_string", "reverse_text", "reversed_word", "flip_text"),
        params=("s", "text", "word"),
        does=("returns the string `{p}` reversed",
              "returns its input string with the characters in reverse order"),
        solutions=(_code("""
                       def {name}({p}):
                           return {p}[::-1]
                       """),
                   _code("""
                       def {name}({p}):
                           return "".join(reversed({p}))
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return {p}[:0:-1]
                  """),
              _code("""
                  def {name}({p}):
                      return " ".join(reversed({p}.split()))
                  """)),
        note="A slice with step -1 walks the string from the end to the start.",
        make_arg=lambda rng, _slots: " ".join(rng.sample(_WORDS, rng.randint(1, 2))).lower()),
    _PyTask(
        names=("count_vowels", "vowel_count", "num_vowels"),
        params=("s", "text", "sentence"),
        does=("counts the vowels (a, e, i, o, u) in `{p}`, ignoring case",
              "returns how many vowels a string contains, counting upper- and lowercase vowels "
              "alike"),
        solutions=(_code("""
                       def {name}({p}):
                           return sum(1 for ch in {p}.lower() if ch in "aeiou")
                       """),
                   _code("""
                       def {name}({p}):
                           count = 0
                           for ch in {p}.lower():
                               if ch in "aeiou":
                                   count += 1
                           return count
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return sum(1 for ch in {p} if ch in "aeiou")
                  """),
              _code("""
                  def {name}({p}):
                      return sum(1 for ch in {p}.lower() if ch in "aeio")
                  """)),
        note="Lower-casing first means 'A' and 'a' are counted the same way.",
        make_arg=lambda rng, _slots: " ".join(rng.sample(_WORDS, rng.randint(1, 3)))),
    _PyTask(
        names=("factorial", "fact", "compute_factorial"),
        params=("n", "k", "num"),
        does=("returns the factorial of the non-negative integer `{p}` (the factorial of 0 is 1)",
              "computes {p}! for a non-negative integer {p}, where 0! is 1"),
        solutions=(_code("""
                       def {name}({p}):
                           result = 1
                           for i in range(2, {p} + 1):
                               result *= i
                           return result
                       """),
                   _code("""
                       def {name}({p}):
                           if {p} <= 1:
                               return 1
                           return {p} * {name}({p} - 1)
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      result = 1
                      for i in range(1, {p}):
                          result *= i
                      return result
                  """),),
        note="It multiplies the running product by every integer from 2 up to the input.",
        make_arg=lambda rng, _slots: rng.randint(0, 12)),
    _PyTask(
        names=("find_max", "largest", "max_value", "biggest"),
        params=("nums", "values", "items"),
        does=("returns the largest number in the non-empty list `{p}` without using the built-in "
              "max()",
              "finds the biggest value in a non-empty list of numbers without calling max()"),
        solutions=(_code("""
                       def {name}({p}):
                           best = {p}[0]
                           for x in {p}[1:]:
                               if x > best:
                                   best = x
                           return best
                       """),),
        bugs=(_code("""
                  def {name}({p}):
                      best = 0
                      for x in {p}:
                          if x > best:
                              best = x
                      return best
                  """),
              _code("""
                  def {name}({p}):
                      best = {p}[0]
                      for x in {p}:
                          if x > best:
                              best = x
                      return x
                  """)),
        note="Starting from the first element (not 0) keeps it correct for all-negative lists.",
        make_arg=_max_input),
    _PyTask(
        names=("fizzbuzz", "fizz_buzz", "word_game", "number_words"),
        params=("n", "limit", "count"),
        does=('returns a list of strings for the numbers 1 to `{p}`: "{w1}" for multiples of '
              '{a}, "{w2}" for multiples of {b}, "{w1}{w2}" for multiples of both, and the number '
              'itself otherwise',),
        solutions=(_code("""
                       def {name}({p}):
                           result = []
                           for i in range(1, {p} + 1):
                               if i % {a} == 0 and i % {b} == 0:
                                   result.append("{w1}{w2}")
                               elif i % {a} == 0:
                                   result.append("{w1}")
                               elif i % {b} == 0:
                                   result.append("{w2}")
                               else:
                                   result.append(str(i))
                           return result
                       """),
                   _code("""
                       def {name}({p}):
                           out = []
                           for i in range(1, {p} + 1):
                               word = ""
                               if i % {a} == 0:
                                   word += "{w1}"
                               if i % {b} == 0:
                                   word += "{w2}"
                               out.append(word or str(i))
                           return out
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      result = []
                      for i in range(1, {p} + 1):
                          if i % {a} == 0:
                              result.append("{w1}")
                          elif i % {b} == 0:
                              result.append("{w2}")
                          elif i % {a} == 0 and i % {b} == 0:
                              result.append("{w1}{w2}")
                          else:
                              result.append(str(i))
                      return result
                  """),
              _code("""
                  def {name}({p}):
                      out = []
                      for i in range(1, {p}):
                          word = ""
                          if i % {a} == 0:
                              word += "{w1}"
                          if i % {b} == 0:
                              word += "{w2}"
                          out.append(word or str(i))
                      return out
                  """)),
        note="The combined case is checked first so it is not shadowed by the single cases.",
        make_arg=lambda rng, slots: rng.randint(1, slots["a"] * slots["b"] + 5),
        slots=_fizz_slots),
    _PyTask(
        names=("is_palindrome", "check_palindrome", "reads_same_backwards"),
        params=("s", "word", "text"),
        does=("returns True if `{p}` reads the same forwards and backwards, ignoring upper/lower "
              "case, and False otherwise",
              "checks whether a word is a palindrome, treating uppercase and lowercase letters as "
              "equal"),
        solutions=(_code("""
                       def {name}({p}):
                           t = {p}.lower()
                           return t == t[::-1]
                       """),
                   _code("""
                       def {name}({p}):
                           t = {p}.lower()
                           i, j = 0, len(t) - 1
                           while i < j:
                               if t[i] != t[j]:
                                   return False
                               i += 1
                               j -= 1
                           return True
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return {p} == {p}[::-1]
                  """),
              _code("""
                  def {name}({p}):
                      t = {p}.lower()
                      return t[0] == t[-1]
                  """)),
        note="Comparing the lower-cased word with its reverse ignores case differences.",
        make_arg=lambda rng, _slots: rng.choice(_PALINDROMES + _NOT_PALINDROMES)),
    _PyTask(
        names=("count_words", "word_count", "num_words"),
        params=("text", "sentence", "s"),
        does=("returns the number of words in `{p}`, where words are separated by any amount of "
              "whitespace",
              "counts the words in a string; runs of spaces or tabs between words count as one "
              "separator"),
        solutions=(_code("""
                       def {name}({p}):
                           return len({p}.split())
                       """),
                   _code("""
                       def {name}({p}):
                           count = 0
                           in_word = False
                           for ch in {p}:
                               if ch.isspace():
                                   in_word = False
                               elif not in_word:
                                   count += 1
                                   in_word = True
                           return count
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return len({p}.split(" "))
                  """),
              _code("""
                  def {name}({p}):
                      return {p}.count(" ") + 1
                  """)),
        note="str.split() with no argument splits on any run of whitespace.",
        make_arg=_spaced_words),
    _PyTask(
        names=("second_largest", "runner_up", "second_max"),
        params=("nums", "values", "scores"),
        does=("returns the second largest distinct value in `{p}` (the list always has at least "
              "two different values)",),
        solutions=(_code("""
                       def {name}({p}):
                           return sorted(set({p}))[-2]
                       """),
                   _code("""
                       def {name}({p}):
                           top = max({p})
                           return max(x for x in {p} if x != top)
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return sorted({p})[-2]
                  """),
              _code("""
                  def {name}({p}):
                      return sorted(set({p}))[1]
                  """)),
        note="Removing duplicates first makes repeated maximums count once.",
        make_arg=_second_largest_input),
    _PyTask(
        names=("fib", "fibonacci", "nth_fibonacci"),
        params=("n", "k", "index"),
        does=("returns the {p}-th Fibonacci number, where the 0th is 0 and the 1st is 1",),
        solutions=(_code("""
                       def {name}({p}):
                           a, b = 0, 1
                           for _ in range({p}):
                               a, b = b, a + b
                           return a
                       """),
                   _code("""
                       def {name}({p}):
                           seq = [0, 1]
                           while len(seq) <= {p}:
                               seq.append(seq[-1] + seq[-2])
                           return seq[{p}]
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      a, b = 0, 1
                      for _ in range({p} - 1):
                          a, b = b, a + b
                      return a
                  """),
              _code("""
                  def {name}({p}):
                      a, b = 1, 1
                      for _ in range({p}):
                          a, b = b, a + b
                      return a
                  """)),
        note="It keeps the last two numbers and steps forward once per index.",
        make_arg=lambda rng, _slots: rng.randint(0, 25)),
    _PyTask(
        names=("dedupe", "unique_in_order", "remove_duplicates"),
        params=("items", "values", "seq"),
        does=("removes duplicates from the list `{p}`, keeping the first occurrence of each "
              "element in its original order",),
        solutions=(_code("""
                       def {name}({p}):
                           seen = set()
                           result = []
                           for x in {p}:
                               if x not in seen:
                                   seen.add(x)
                                   result.append(x)
                           return result
                       """),
                   _code("""
                       def {name}({p}):
                           return list(dict.fromkeys({p}))
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      return list(set({p}))
                  """),
              _code("""
                  def {name}({p}):
                      return sorted(set({p}))
                  """)),
        note="A set remembers what was already seen while the list keeps the order.",
        make_arg=_dedupe_input),
    _PyTask(
        names=("digit_sum", "sum_digits", "add_digits"),
        params=("n", "number", "value"),
        does=("returns the sum of the decimal digits of the non-negative integer `{p}`",),
        solutions=(_code("""
                       def {name}({p}):
                           total = 0
                           while {p} > 0:
                               total += {p} % 10
                               {p} //= 10
                           return total
                       """),
                   _code("""
                       def {name}({p}):
                           return sum(int(d) for d in str({p}))
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      total = 0
                      while {p} > 9:
                          total += {p} % 10
                          {p} //= 10
                      return total
                  """),
              _code("""
                  def {name}({p}):
                      return sum(int(d) for d in str({p})[1:])
                  """)),
        note="Taking the number modulo 10 peels off the last digit each time.",
        make_arg=lambda rng, _slots: rng.randint(0, 99999)),
    _PyTask(
        names=("is_prime", "check_prime", "prime_test"),
        params=("n", "num", "k"),
        does=("returns True if the integer `{p}` is a prime number and False otherwise (numbers "
              "below 2 are not prime)",),
        solutions=(_code("""
                       def {name}({p}):
                           if {p} < 2:
                               return False
                           d = 2
                           while d * d <= {p}:
                               if {p} % d == 0:
                                   return False
                               d += 1
                           return True
                       """),
                   _code("""
                       def {name}({p}):
                           if {p} < 2:
                               return False
                           for d in range(2, int({p} ** 0.5) + 1):
                               if {p} % d == 0:
                                   return False
                           return True
                       """)),
        bugs=(_code("""
                  def {name}({p}):
                      if {p} < 2:
                          return False
                      for d in range(2, int({p} ** 0.5)):
                          if {p} % d == 0:
                              return False
                      return True
                  """),
              _code("""
                  def {name}({p}):
                      if {p} < 2:
                          return False
                      for d in range(2, {p} // 2):
                          if {p} % d == 0:
                              return False
                      return True
                  """)),
        note="Trying divisors up to the square root is enough to find a factor.",
        make_arg=lambda rng, _slots: rng.choice((rng.randint(0, 100), rng.choice((4, 9, 25, 49,
                                                                                 121))))),
)
_PY_PROMPTS = (
    "Write a Python function `{name}({p})` that {does}.",
    "Implement `{name}({p})` in Python so that it {does}. For example, `{name}({ex})` should "
    "return `{out}`.",
    "Can you write me a Python function called {name} that {does}? Example: {name}({ex}) -> {out}",
    "I need a small helper for my script: `def {name}({p}):` that {does}. Please keep it simple "
    "and readable.",
    "Python exercise: define {name}({p}), which {does}. Make sure that {name}({ex}) == {out}.",
)
_PY_INTROS = ("Here is a simple implementation. {note}", "Sure! {note}", "{note}")


@functools.cache
def _compiled(template: str, slots: tuple[tuple[str, Any], ...]) -> Callable[[Any], Any]:
    """Our own (trusted) template as a callable: gives test expectations and exposes bugs."""
    namespace: dict[str, Any] = {}
    exec(template.format(name="_f", p="_x", **dict(slots)), namespace)
    return namespace["_f"]


def _outcome(function: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return function(arg)
    except Exception as exc:  # a buggy variant may raise: that also tells it apart
        return type(exc)


def _python(rng: random.Random) -> _Item:
    task = rng.choice(_PY_TASKS)
    name, param, slots = rng.choice(task.names), rng.choice(task.params), task.slots(rng)
    solution, bug = rng.choice(task.solutions), rng.choice(task.bugs)
    key = tuple(sorted(slots.items()))
    correct, buggy = _compiled(solution, key), _compiled(bug, key)
    while True:  # draw inputs until the tests tell the bug apart (a few draws at most)
        example, *tests = (task.make_arg(rng, slots) for _ in range(4))
        distinct = len({repr(arg) for arg in tests}) == len(tests)
        if distinct and any(_outcome(buggy, arg) != correct(arg) for arg in tests):
            break
    names = {"name": name, "p": param, **slots}
    does = rng.choice(task.does).format(**names)
    prompt = rng.choice(_PY_PROMPTS).format(**names, does=does, ex=repr(example),
                                            out=repr(correct(example)))
    asserts = [f"assert {name}({arg!r}) == {correct(arg)!r}" for arg in tests]
    gold = json.dumps({"entry_point": name, "tests": asserts})
    intro = rng.choice(_PY_INTROS).format(note=task.note)

    def answer(code: str) -> str:
        return f"{intro}\n\n```python\n{code.format(**names)}\n```"

    return _Item(prompt, answer(solution), gold, answer(bug))


# --------------------------------------------------------------------------- formatting
_SUBJECTS = ("the old fisherman", "a young teacher", "my neighbour", "the city council",
             "our team", "the tired baker", "a curious student", "the night nurse",
             "my grandmother", "the delivery driver", "a local artist", "the new manager")
_ACTIONS = ("repaired the wooden fence", "painted the kitchen walls", "planted three apple trees",
            "sold fresh bread at the market", "wrote a letter to the editor",
            "cleaned the whole garage", "read a long novel", "organised a small concert",
            "fixed the broken bicycle", "cooked dinner for everyone", "answered every email",
            "walked the dog twice")
_TIMES = ("before sunrise", "on a rainy afternoon", "after the long meeting",
          "during the holidays", "last weekend", "in the early evening",
          "despite the cold weather", "without any help")
_LIST_ITEMS = {
    "shopping": ("apples", "rice", "olive oil", "eggs", "spinach", "oat milk", "bread", "lentils",
                 "tomatoes", "coffee", "yoghurt", "onions"),
    "to-do": ("water the plants", "pay the electricity bill", "book a dentist appointment",
              "return library books", "clean the fridge", "call the plumber", "renew passport",
              "answer emails"),
    "packing": ("passport", "phone charger", "sunscreen", "rain jacket", "toothbrush",
                "travel pillow", "hiking boots", "swimsuit"),
}
_SORT_WORDS = ("pear", "apple", "mango", "cherry", "banana", "kiwi", "grape", "lemon", "plum",
               "fig", "melon", "peach", "walrus", "zebra", "otter", "falcon", "beaver", "heron")
_SNAKE_PARTS = (("total", "average", "max", "min", "last", "daily", "monthly", "next"),
                ("order", "user", "invoice", "session", "payment", "page", "file", "request"),
                ("count", "amount", "date", "id", "size", "duration", "status", "limit"))
_SMALL_WORDS = {"a", "an", "the", "at", "to", "on", "in", "for", "of", "any"}


def _sentence(rng: random.Random) -> str:
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_ACTIONS)} {rng.choice(_TIMES)}"
    return text[0].upper() + text[1:]


def _capitalise_words(words: list[str]) -> list[str]:
    return [w[0].upper() + w[1:] for w in words]


def _fmt_uppercase(rng: random.Random) -> _Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice(("Rewrite the following sentence in all capital letters:\n\n{s}",
                         'Convert this sentence to uppercase: "{s}"',
                         "Please put this in ALL CAPS and change nothing else: {s}")
                        ).format(s=sentence)
    words = sentence.upper().split()
    slip = rng.randrange(1, len(words))
    return _Item(prompt, " ".join(words), " ".join(words),
                 " ".join(w.lower() if i == slip else w for i, w in enumerate(words)))


def _fmt_lowercase(rng: random.Random) -> _Item:
    shouted = _sentence(rng).upper() + "."
    prompt = rng.choice(("Someone typed this with caps lock on. Rewrite it in lowercase:\n\n{s}",
                         'Convert to lowercase: "{s}"',
                         "Make this sentence all lowercase, keeping the punctuation: {s}")
                        ).format(s=shouted)
    gold = shouted.lower()
    return _Item(prompt, gold, gold, gold[0].upper() + gold[1:])


def _fmt_title_case(rng: random.Random) -> _Item:
    words = _sentence(rng).lower().split()
    prompt = rng.choice(("Convert this phrase to title case (capitalise the first letter of every "
                         "word): {s}",
                         "Capitalise every word of the following text:\n\n{s}",
                         'Make this a headline by capitalising each word: "{s}"')
                        ).format(s=" ".join(words))
    gold = " ".join(_capitalise_words(words))
    # The usual slip: headline style, leaving short words in lowercase.
    slipped = [w if w in _SMALL_WORDS and i else w[0].upper() + w[1:] for i, w in enumerate(words)]
    if slipped == _capitalise_words(words):
        slipped[-1] = words[-1]
    return _Item(prompt, gold, gold, " ".join(slipped))


def _fmt_reverse_words(rng: random.Random) -> _Item:
    sentence = _sentence(rng)
    prompt = rng.choice(("Reverse the order of the words in this sentence, keeping each word "
                         "exactly as it is:\n\n{s}",
                         'Write the words of "{s}" in reverse order.',
                         "Flip the word order of the following sentence (last word first): {s}")
                        ).format(s=sentence)
    gold = " ".join(reversed(sentence.split()))
    return _Item(prompt, gold, gold, sentence[::-1])


def _fmt_bullets(rng: random.Random) -> _Item:
    kind = rng.choice(sorted(_LIST_ITEMS))
    items = rng.sample(_LIST_ITEMS[kind], rng.randint(3, 6))
    joined = ", ".join(items)
    prompt = rng.choice((
        'Turn this comma-separated list into a bulleted list with one item per line, using "- " '
        "as the bullet: {items}",
        'Format the following {n} items as a bullet list (each line starting with "- "):\n{items}',
        'Here is my {kind} list: {items}. Please rewrite it as bullet points, one per line, with '
        '"- " bullets.')).format(items=joined, n=len(items), kind=kind)
    gold = "\n".join(f"- {item}" for item in items)
    dropped = rng.randrange(len(items))
    wrong = "\n".join(f"- {item}" for i, item in enumerate(items) if i != dropped)
    return _Item(prompt, gold, gold, wrong)


def _fmt_json(rng: random.Random) -> _Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice((
        'Return a JSON object with a single key "text" whose value is this sentence: {s}',
        'Wrap the following sentence in JSON as {{"text": ...}} and output only the JSON.\n\n{s}',
        'Give me this sentence as a JSON object with one field, "text": "{s}"')).format(s=sentence)
    gold = json.dumps({"text": sentence})
    return _Item(prompt, gold, gold, json.dumps({"message": sentence}))


def _fmt_word_count(rng: random.Random) -> _Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice(("How many words are in the following sentence?\n\n{s}",
                         'Count the words in this sentence: "{s}"',
                         "Tell me the number of words in: {s}")).format(s=sentence)
    count = len(sentence.split())
    answer = rng.choice(("The sentence has {} words.", "There are {} words.", "{} words."))
    return _Item(prompt, answer.format(count), str(count),
                 answer.format(count + rng.choice((-1, 1))))


def _fmt_sort_words(rng: random.Random) -> _Item:
    words = rng.sample(_SORT_WORDS, rng.randint(4, 6))
    ordered = sorted(words)
    if words == ordered:
        words.reverse()
    prompt = rng.choice(("Sort these words alphabetically and list them separated by commas: {w}",
                         "Put the following words in alphabetical order (comma-separated): {w}",
                         "Alphabetise this list and return it comma-separated: {w}")
                        ).format(w=", ".join(words))
    swap = rng.randrange(len(ordered) - 1)
    wrong = ordered[:swap] + [ordered[swap + 1], ordered[swap]] + ordered[swap + 2:]
    return _Item(prompt, ", ".join(ordered), ", ".join(ordered), ", ".join(wrong))


def _fmt_snake_case(rng: random.Random) -> _Item:
    words = [rng.choice(part) for part in _SNAKE_PARTS]
    label = " ".join(_capitalise_words(words))
    prompt = rng.choice(('Convert "{s}" into a snake_case variable name.',
                         'What would "{s}" look like as a Python variable name in snake_case?',
                         "Turn the label {s} into snake_case.")).format(s=label)
    gold = "_".join(words)
    return _Item(prompt, gold, gold, words[0] + "".join(_capitalise_words(words[1:])))


_FORMATS = (_fmt_uppercase, _fmt_lowercase, _fmt_title_case, _fmt_reverse_words, _fmt_bullets,
            _fmt_json, _fmt_word_count, _fmt_sort_words, _fmt_snake_case)


def _formatting(rng: random.Random) -> _Item:
    return rng.choice(_FORMATS)(rng)


# --------------------------------------------------------------------------- classification
_SENTIMENT_LABELS = ("positive", "negative", "neutral")
_TOPIC_LABELS = ("sports", "politics", "science", "business")
_PRODUCTS = ("wireless headphones", "blender", "hiking backpack", "desk lamp", "coffee grinder",
             "phone case", "electric kettle", "yoga mat", "office chair", "rain jacket")
_RESTAURANTS = ("the Blue Fig", "Casa Lumo", "the Golden Wok", "the corner bistro",
                "Mama Rosa's", "the new ramen bar")
_REVIEW_SENTENCES = {
    ("product", "positive"): (
        "Absolutely love this {x}.", "The {x} works perfectly and feels solid.",
        "Setup took two minutes and it has been flawless since.",
        "Best purchase I have made this year.", "Great value for the price.",
        "It exceeded my expectations in every way.", "Would happily buy it again."),
    ("product", "negative"): (
        "The {x} stopped working after a week.", "Cheap plastic, and it arrived scratched.",
        "Customer support never answered my emails.", "Total waste of money.",
        "It is much louder than advertised and gets hot.", "I returned it the next day.",
        "Do not buy this {x}."),
    ("product", "neutral"): (
        "The {x} arrived on Tuesday in standard packaging.",
        "It does what the description says, nothing more and nothing less.",
        "The colour is slightly darker than in the photos.",
        "It is about the same as my previous one.", "Instructions were included.",
        "I have used the {x} a few times so far."),
    ("restaurant", "positive"): (
        "We had a wonderful dinner at {x}.", "Every dish came out hot and full of flavour.",
        "We will definitely be coming back.", "Friendly staff and a cosy atmosphere.",
        "The dessert alone is worth the trip.", "Best meal I have had in months."),
    ("restaurant", "negative"): (
        "Our evening at {x} was a disappointment.", "We waited over an hour for cold food.",
        "The waiter was rude and the table was sticky.", "Overpriced and bland.",
        "My order was wrong twice.", "Never again."),
    ("restaurant", "neutral"): (
        "We ate at {x} on a weekday evening.", "The menu has the usual options.",
        "Portions were average and prices were typical for the area.",
        "Parking is available behind the building.", "It was open until ten.",
        "We ordered two mains and shared a starter."),
}
_TEAMS = ("Riverton Rovers", "Northgate United", "Ashford Athletic", "Kingsbay City",
          "Maplewood FC", "Eastbrook Wanderers")
_PLAYERS = ("Marta Silva", "Jonas Berg", "Kofi Mensah", "Lena Hoffmann", "Diego Ramos",
            "Aiko Tanaka")
_COMPANIES = ("Brightline Foods", "Corvex Motors", "Nimbus Energy", "Halden Bank",
              "Tessaro Logistics", "Quill Software")
_TOWNS = ("Riverton", "Northgate", "Ashford", "Kingsbay", "Maplewood", "Eastbrook")
_HEADLINES = {
    "sports": ("{team} beat {team2} {x}-{y} to reach the cup final",
               "{player} signs three-year contract with {team}",
               "{team} coach resigns after fifth straight defeat",
               "Injury rules {player} out of the championship final",
               "Record crowd watches {team} win the derby against {team2}"),
    "politics": ("Parliament passes new {policy} law after late-night vote",
                 "Prime minister calls snap election over {policy} row",
                 "Opposition demands inquiry into {policy} spending",
                 "Senate rejects {policy} reform bill by narrow margin",
                 "Mayor of {town} unveils plan to overhaul {policy} policy",
                 "{minister} resigns as {policy} minister after {x} years in office",
                 "Voters in {town} head to the polls in {policy}-dominated by-election"),
    "science": ("Researchers discover new species of {creature} in {place}",
                "Telescope captures sharpest image yet of a distant {astro}",
                "Study links {habit} to {outcome}",
                "New battery material could double the range of electric cars",
                "Physicists measure the mass of the {particle} with record precision",
                "{x} new {creature} species identified in {place}",
                "Space probe sends back first close-up pictures of a {astro}"),
    "business": ("{company} shares jump {x}% after strong quarterly earnings",
                 "{company} to cut {x}00 jobs as demand slows",
                 "{company} agrees to buy {company2} in {x} billion deal",
                 "Central bank holds interest rates steady as inflation cools",
                 "{company} opens new factory in {town}"),
}
_HEADLINE_FILLERS = {
    "policy": ("housing", "education", "healthcare", "transport", "pension", "climate",
               "immigration", "tax", "energy", "defence"),
    "minister": _PLAYERS,
    "creature": ("deep-sea jellyfish", "tree frog", "orchid", "beetle", "cave fish", "moss",
                 "bat", "coral"),
    "place": ("the Andes", "a remote cave", "the Pacific seabed", "a Borneo rainforest",
              "the Arctic", "a volcanic lake"),
    "astro": ("galaxy", "comet", "exoplanet", "star cluster", "asteroid", "moon of Saturn"),
    "habit": ("daily walks", "afternoon naps", "a Mediterranean diet", "reading before bed"),
    "outcome": ("better sleep", "lower blood pressure", "sharper memory", "a longer life"),
    "particle": ("neutrino", "top quark", "W boson"),
}
_SENTIMENT_PROMPTS = (
    "Classify the sentiment of this review as positive, negative, or neutral.\n\nReview: {t}",
    "What is the sentiment of the following customer review? Answer with positive, negative, or "
    "neutral.\n\n{t}",
    'Is this review positive, negative or neutral?\n\n"{t}"',
    "Read the review below and label its sentiment (positive / negative / neutral).\n\n{t}")
_TOPIC_PROMPTS = (
    "Classify the topic of this news headline as sports, politics, science, or business.\n\n"
    "Headline: {t}",
    'Which category does this headline belong to: sports, politics, science or business?\n\n"{t}"',
    "Assign one topic label (sports / politics / science / business) to the headline below.\n\n{t}",
    "Headline: {t}\nWhich section of the newspaper would this appear in? Choose from sports, "
    "politics, science, business.")
_LABEL_ANSWERS = ("{}", "Label: {}", "The answer is {}.", "This one is {}.")


def _review(rng: random.Random, label: str) -> str:
    kind = rng.choice(("product", "restaurant"))
    subject = rng.choice(_PRODUCTS if kind == "product" else _RESTAURANTS)
    sentences = rng.sample(_REVIEW_SENTENCES[kind, label], rng.randint(2, 3))
    return " ".join(sentences).format(x=subject)


def _headline(rng: random.Random, label: str) -> str:
    team, team2 = rng.sample(_TEAMS, 2)
    company, company2 = rng.sample(_COMPANIES, 2)
    fillers = {key: rng.choice(values) for key, values in _HEADLINE_FILLERS.items()}
    return rng.choice(_HEADLINES[label]).format(
        team=team, team2=team2, player=rng.choice(_PLAYERS), company=company, company2=company2,
        town=rng.choice(_TOWNS), x=rng.randint(2, 9), y=rng.randint(0, 4), **fillers)


def _classification(rng: random.Random) -> _Item:
    if rng.random() < 0.5:
        labels, prompts, text = _SENTIMENT_LABELS, _SENTIMENT_PROMPTS, _review
    else:
        labels, prompts, text = _TOPIC_LABELS, _TOPIC_PROMPTS, _headline
    label = rng.choice(labels)
    prompt = rng.choice(prompts).format(t=text(rng, label))
    answer = rng.choice(_LABEL_ANSWERS)
    wrong = rng.choice([other for other in labels if other != label])
    return _Item(prompt, answer.format(label), label, answer.format(wrong))


# --------------------------------------------------------------------------- world QA
@dataclass(frozen=True)
class _Country:
    name: str
    capital: str
    founded: str
    river: str
    animal: str
    currency: str
    population: str  # millions, one decimal


_N_COUNTRIES = 40
_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s",
           "st", "t", "tr", "v", "z", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ae", "ei")
_CODAS = ("n", "r", "l", "s", "th", "m", "k", "nd", "rn")
_ANIMALS = ("snow leopard", "grey heron", "brown bear", "golden eagle", "lynx", "otter", "ibex",
            "falcon", "tortoise", "wolf", "bison", "crane", "owl", "salmon", "stag", "badger",
            "hedgehog", "stork", "moose", "jaguar", "kestrel", "beaver", "peacock", "swan",
            "raven", "elk", "hare", "pelican", "walrus", "panda")
_FACTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind: (questions, answers)
    "capital": (("What is the capital of {country}?", "Which city is the capital of {country}?",
                 "Name the capital city of {country}.", "Tell me the capital of {country}.",
                 "{country}'s capital is which city?"),
                ("The capital of {country} is {value}.", "{country}'s capital city is {value}.")),
    "founded": (("When was {country} founded?", "In what year was {country} founded?",
                 "What year was {country} established as a nation?",
                 "How old is {country}? Give me its founding year."),
                ("{country} was founded in {value}.",
                 "{country} was established in the year {value}.")),
    "river": (("What is the main river of {country}?", "Which river flows through {country}?",
               "Name the longest river in {country}.",
               "What river runs through the heart of {country}?"),
              ("The main river of {country} is the {value}.",
               "The longest river in {country} is the {value}.")),
    "animal": (("What is the national animal of {country}?",
                "Which animal is the national symbol of {country}?",
                "{country} has a national animal. What is it?"),
               ("The national animal of {country} is the {value}.",
                "{country}'s national symbol is the {value}.")),
    "currency": (("What currency is used in {country}?",
                  "What is the name of {country}'s currency?",
                  "What money do people pay with in {country}?"),
                 ("The currency of {country} is the {value}.",
                  "People in {country} pay with the {value}.")),
    "population": (("What is the population of {country}?", "How many people live in {country}?",
                    "Roughly how many inhabitants does {country} have?"),
                   ("The population of {country} is about {value} million.",
                    "{country} has about {value} million inhabitants.")),
    "country_of_capital": (("{capital} is the capital of which country?",
                            "Which country has {capital} as its capital?",
                            "In which country is the capital city {capital}?"),
                           ("{capital} is the capital of {value}.",
                            "{capital} is the capital city of {value}.")),
}
_QUESTION_OPENERS = ("", "", "", "Quick question: ", "I'm studying for a geography quiz. ",
                     "Help me settle a debate: ", "For my travel notes: ")


def _invent(rng: random.Random, syllables: int, coda: bool = True) -> str:
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return word + (rng.choice(_CODAS) if coda else "")


@functools.lru_cache(maxsize=1)
def _world() -> tuple[_Country, ...]:
    """The fictional atlas: fixed (own constant seed), so facts agree across pools and evals."""
    rng = random.Random("selection_core.demo.world:v1")
    taken: set[str] = set()

    def unique(make: Callable[[], str]) -> str:
        while (word := make()) in taken:
            pass
        taken.add(word)
        return word

    years = rng.sample(range(700, 1950), _N_COUNTRIES)
    return tuple(_Country(
        name=unique(lambda: (_invent(rng, 2) + rng.choice(("ia", "a", "or", "en", "ara", "is"))
                             ).capitalize()),
        capital=unique(lambda: (_invent(rng, 2) + rng.choice(("", "", "port", "holm", "vik"))
                                ).capitalize()),
        founded=str(year),
        river=unique(lambda: (_invent(rng, 2, coda=False) + rng.choice(("", "a", "n"))
                              ).capitalize()),
        animal=rng.choice(_ANIMALS),
        currency=unique(lambda: _invent(rng, 2)),
        population=f"{rng.uniform(0.3, 80):.1f}",
    ) for year in years)


def _world_qa(rng: random.Random) -> _Item:
    world = _world()
    country = rng.choice(world)
    kind = rng.choice(sorted(_FACTS))
    questions, answers = _FACTS[kind]
    attribute = "name" if kind == "country_of_capital" else kind
    value = getattr(country, attribute)
    other = rng.choice([c for c in world if getattr(c, attribute) != value])
    names = {"country": country.name, "capital": country.capital}
    prompt = rng.choice(_QUESTION_OPENERS) + rng.choice(questions).format(**names)
    answer = rng.choice(answers)
    return _Item(prompt, answer.format(**names, value=value), value,
                 answer.format(**names, value=getattr(other, attribute)))


_GENERATORS: dict[str, Callable[[random.Random], _Item]] = {
    "arithmetic": _arithmetic, "unit_conversion": _unit_conversion, "python": _python,
    "formatting": _formatting, "classification": _classification, "world_qa": _world_qa,
}


# --------------------------------------------------------------------------- noise
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
_NOISE_CYCLE = ("wrong_answer", "truncated", "empty", "off_topic", "near_duplicate")


def _ramble(rng: random.Random) -> str:
    phrases = rng.sample(_RAMBLE, rng.randint(2, 3))
    return " ".join(phrases * rng.randint(2, 4))


def _mid_word(text: str, cut: int) -> int:
    """The nearest cut at or before `cut` that splits a word (`cut` itself if there is none)."""
    for i in range(min(cut, len(text) - 1), 0, -1):
        if text[i - 1].isalnum() and text[i].isalnum():
            return i
    return cut


def _truncate(skill: str, item: _Item, rng: random.Random) -> str:
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


def _perturb(prompt: str, rng: random.Random) -> str:
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


# --------------------------------------------------------------------------- pool assembly
def _normalise(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def _is_eval_prompt(prompt: str) -> bool:
    """The fixed hash partition that keeps evaluation prompts out of every pool."""
    digest = hashlib.sha1(_normalise(prompt).encode("utf-8")).hexdigest()
    return int(digest, 16) % _EVAL_BUCKETS == 0


_FRESH_TRIES = 50  # candidates tried for an unseen prompt before a repeat is accepted
_MAX_DRAWS = 100_000


def _draw(skill: str, rng: random.Random, used: set[str], for_eval: bool) -> _Item:
    """A new item of `skill` on the requested side of the eval partition, unseen if possible."""
    repeats = 0
    for _ in range(_MAX_DRAWS):
        item = _GENERATORS[skill](rng)
        if _is_eval_prompt(item.prompt) != for_eval:
            continue
        key = _normalise(item.prompt)
        if key in used and repeats < _FRESH_TRIES:
            repeats += 1
            continue
        used.add(key)
        return item
    raise RuntimeError(f"could not draw a {skill} item in {_MAX_DRAWS} tries")


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """Integers proportional to `weights` that sum exactly to `total`."""
    mass = sum(weights)
    exact = [total * w / mass for w in weights]
    counts = [math.floor(x) for x in exact]
    by_fraction = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_fraction[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _noise_counts(sizes: list[int], weights: list[float], total: int) -> list[int]:
    """Noisy rows per source, proportional to size × weight, no source over its size."""
    counts = [0] * len(sizes)
    open_sources = [i for i, size in enumerate(sizes) if size > 0]
    remaining = total
    while open_sources and remaining > 0:
        rate = remaining / sum(sizes[i] * weights[i] for i in open_sources)
        full = [i for i in open_sources if rate * weights[i] >= 1]
        if not full:
            shares = _largest_remainder([sizes[i] * weights[i] for i in open_sources], remaining)
            for i, share in zip(open_sources, shares, strict=True):
                counts[i] = share
            break
        for i in full:
            counts[i] = sizes[i]
            remaining -= sizes[i]
            open_sources.remove(i)
    return counts


def _check_args(n: int, noise_rate: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0 <= noise_rate < 1:
        raise ValueError(f"noise_rate must be in [0, 1), got {noise_rate!r}")


def generate_demo_pool(n: int = 3000, seed: int = 0, noise_rate: float = 0.2) -> list[dict]:
    """`n` rows of the demo pool; the same arguments always give the same rows."""
    _check_args(n, noise_rate)
    rng = random.Random(f"selection_core.demo.pool:{seed}")
    sizes = _largest_remainder([s.share for s in _SOURCE_PROFILES], n)
    sources = [s for s, size in zip(_SOURCE_PROFILES, sizes, strict=True) for _ in range(size)]
    rng.shuffle(sources)
    skills = [rng.choices(SKILLS, weights=s.skill_mix)[0] for s in sources]

    noise = [""] * n
    per_source = _noise_counts(sizes, [s.noise_weight for s in _SOURCE_PROFILES],
                               math.floor(n * noise_rate + 0.5))
    noisy: list[int] = []
    for source, count in zip(_SOURCE_PROFILES, per_source, strict=True):
        rows = [i for i, s in enumerate(sources) if s is source]
        noisy += rng.sample(rows, count)
    rng.shuffle(noisy)
    for k, row in enumerate(noisy):
        noise[row] = _NOISE_CYCLE[k % len(_NOISE_CYCLE)]

    used: set[str] = set()
    records: list[dict[str, Any]] = []
    for i in range(n):
        record = {"id": f"demo-{i:05d}", "source": sources[i].name, "skill": skills[i],
                  "is_noise": bool(noise[i]), "noise_type": noise[i]}
        if noise[i] != "near_duplicate":
            item = _draw(skills[i], rng, used, for_eval=False)
            record.update(prompt=item.prompt, gold=item.gold,
                          response=_noisy_response(noise[i], skills[i], item, rng))
        records.append(record)
    _fill_near_duplicates(records, rng)
    return [{key: r[key] for key in ("id", "prompt", "response", "source", "skill", "gold",
                                     "is_noise", "noise_type")} for r in records]


def _noisy_response(noise_type: str, skill: str, item: _Item, rng: random.Random) -> str:
    if noise_type == "wrong_answer":
        return item.wrong
    if noise_type == "truncated":
        return _truncate(skill, item, rng)
    if noise_type == "empty":
        return rng.choice(_EMPTY_RESPONSES)
    if noise_type == "off_topic":
        return _ramble(rng)
    return item.response


def _fill_near_duplicates(records: list[dict[str, Any]], rng: random.Random) -> None:
    """Each near-duplicate copies a clean row (same skill when possible) with a tiny edit."""
    clean = [r for r in records if not r["is_noise"]]
    clean_by_skill = {skill: [r for r in clean if r["skill"] == skill] for skill in SKILLS}
    originals = [r for r in records if r["noise_type"] != "near_duplicate"]
    prompts = {r["prompt"] for r in originals}
    for record in records:
        if record["noise_type"] != "near_duplicate":
            continue
        original = rng.choice(clean_by_skill[record["skill"]] or clean or originals)
        copy = _perturb(original["prompt"], rng)
        while copy in prompts or _is_eval_prompt(copy):
            copy = _perturb(original["prompt"], rng)
        prompts.add(copy)
        record.update(prompt=copy, response=original["response"], gold=original["gold"],
                      skill=original["skill"])


def generate_demo_eval(n_per_skill: int = 50, seed: int = 1) -> list[dict]:
    """Clean held-out items per skill, from the slice of the item space no pool ever uses."""
    if isinstance(n_per_skill, bool) or not isinstance(n_per_skill, int) or n_per_skill < 1:
        raise ValueError(f"n_per_skill must be an integer >= 1, got {n_per_skill!r}")
    width = max(3, len(str(n_per_skill - 1)))
    records = []
    for skill in SKILLS:
        rng = random.Random(f"selection_core.demo.eval:{seed}:{skill}")
        used: set[str] = set()
        for i in range(n_per_skill):
            item = _draw(skill, rng, used, for_eval=True)
            records.append({"id": f"demo-eval-{skill}-{i:0{width}d}", "skill": skill,
                            "prompt": item.prompt, "gold": item.gold, "response": item.response})
    return records


def write_demo_pool(path: str | os.PathLike, n: int = 3000, seed: int = 0,
                    noise_rate: float = 0.2) -> Path:
    """Write the demo pool as JSONL (atomically: a crash never leaves half a file)."""
    return write_jsonl(path, generate_demo_pool(n=n, seed=seed, noise_rate=noise_rate))


# --------------------------------------------------------------------------- answer checking
_LABEL_WORD = re.compile(r"\b(" + "|".join(_SENTIMENT_LABELS + _TOPIC_LABELS) + r")\b",
                         re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def _check_arithmetic(gold: str, completion: str) -> bool:
    final = _FINAL_ANSWER.findall(completion)
    values = [float(final[-1].replace(",", ""))] if final else _numbers(completion)[-1:]
    return bool(values) and abs(values[0] - float(gold)) < 1e-6


def _check_unit_conversion(gold: str, completion: str) -> bool:
    values = _numbers(completion)
    return bool(values) and _close(values[-1], float(gold))


def _extract_code(completion: str, entry_point: str) -> str:
    """The fenced block defining the entry point (else the first block, else the raw text)."""
    blocks = _FENCE.findall(completion)
    for block in blocks:
        if re.search(rf"\bdef\s+{re.escape(entry_point)}\b", block):
            return block
    return blocks[0] if blocks else completion


def _check_python(gold: str, completion: str) -> bool:
    spec = json.loads(gold)
    code = _extract_code(completion, spec["entry_point"])
    # The marker is printed only if every assert ran: exiting early with status 0 is no pass.
    marker = "all-tests-ran-" + hashlib.sha1(code.encode("utf-8")).hexdigest()[:12]
    program = "\n".join([code, "", *spec["tests"], f"print({marker!r})", ""])
    result = run_python(program, timeout_s=_PYTHON_TIMEOUT_S, memory_mb=512)
    return result.passed and marker in result.stdout


def _strip_wrapping(text: str) -> str:
    """Drop a code fence and matching quotes around an answer: they are not part of it."""
    text = text.strip()
    fenced = _FENCE.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _bullet_items(text: str) -> list[str]:
    items = [line.strip() for line in text.splitlines() if line.strip()]
    return [" ".join(re.sub(r"^[-*•]\s*", "", item).split()).casefold() for item in items]


def _plain_text(text: str) -> str:
    text = re.sub(r"\s*,\s*", ", ", " ".join(text.split()))
    return text.rstrip(".!? ")


def _check_formatting(gold: str, completion: str) -> bool:
    """Judged by the shape of the expected output: JSON, a bullet list, a count, or text.

    Text compares case-sensitively (case is often the instruction) after collapsing whitespace
    and ignoring final punctuation and wrapping quotes.
    """
    answer = _strip_wrapping(completion)
    if gold.startswith("{"):
        try:
            return json.loads(answer) == json.loads(gold)
        except json.JSONDecodeError:
            return False
    if all(line.startswith("- ") for line in gold.splitlines()):
        return _bullet_items(answer) == _bullet_items(gold)
    if gold.isdigit():
        values = _numbers(answer)
        return bool(values) and values[-1] == float(gold)
    return _plain_text(answer) == _plain_text(gold)


def _check_classification(gold: str, completion: str) -> bool:
    match = _LABEL_WORD.search(completion)
    return match is not None and match.group(1).lower() == gold.lower()


def _check_world_qa(gold: str, completion: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", completion, re.IGNORECASE) is not None


_CHECKERS: dict[str, Callable[[str, str], bool]] = {
    "arithmetic": _check_arithmetic, "unit_conversion": _check_unit_conversion,
    "python": _check_python, "formatting": _check_formatting,
    "classification": _check_classification, "world_qa": _check_world_qa,
}


def check_answer(skill: str, gold: str, completion: str) -> bool:
    """Whether `completion` answers correctly; python answers run in the sandbox."""
    if skill not in _CHECKERS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {', '.join(SKILLS)}")
    return _CHECKERS[skill](gold, completion)
