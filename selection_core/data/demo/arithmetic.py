"""Arithmetic word problems: worked solutions ending in "#### N", checked by the final number."""
from __future__ import annotations

import random

from ..answers import extract_final_number, numbers_match
from .common import Item

_NAMES = ("Maya", "Leo", "Priya", "Tom", "Aisha", "Carlos", "Mei", "Sam", "Nora", "Omar",
          "Elena", "Jonas", "Fatima", "Ben", "Yuki", "Grace")


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _wrong_int(rng: random.Random, answer: int) -> int:
    return rng.choice([answer + d for d in (-10, -2, -1, 1, 2, 10) if answer + d > 0])


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


def generate(rng: random.Random) -> Item:
    prompt, steps, final, answer = rng.choice(_SCENARIOS)(rng)
    wrong = _wrong_int(rng, answer)

    def solution(result: int) -> str:
        return "\n".join([*steps, final.format(result), f"#### {result}"])

    return Item(prompt, solution(answer), str(answer), solution(wrong))


# --------------------------------------------------------------------------- checking
def check(gold: str, completion: str) -> bool:
    """The final number, read as GSM8K's answers are (`answers.extract_final_number`)."""
    return numbers_match(extract_final_number(completion), gold)
