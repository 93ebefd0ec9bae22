"""Questions about a fictional atlas (so no model knows the answers beforehand), checked by the
fact appearing as a whole word."""
from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from .common import Item


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


def generate(rng: random.Random) -> Item:
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
    return Item(prompt, answer.format(**names, value=value), value,
                 answer.format(**names, value=getattr(other, attribute)))


# --------------------------------------------------------------------------- checking
def check(gold: str, completion: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", completion, re.IGNORECASE) is not None
