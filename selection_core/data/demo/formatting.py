"""Text formatting tasks (case, bullets, JSON, counting, sorting, snake_case), checked by the
shape of the expected output."""
from __future__ import annotations

import json
import random
import re

from .common import FENCE, Item, numbers

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


def _fmt_uppercase(rng: random.Random) -> Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice(("Rewrite the following sentence in all capital letters:\n\n{s}",
                         'Convert this sentence to uppercase: "{s}"',
                         "Please put this in ALL CAPS and change nothing else: {s}")
                        ).format(s=sentence)
    words = sentence.upper().split()
    slip = rng.randrange(1, len(words))
    return Item(prompt, " ".join(words), " ".join(words),
                 " ".join(w.lower() if i == slip else w for i, w in enumerate(words)))


def _fmt_lowercase(rng: random.Random) -> Item:
    shouted = _sentence(rng).upper() + "."
    prompt = rng.choice(("Someone typed this with caps lock on. Rewrite it in lowercase:\n\n{s}",
                         'Convert to lowercase: "{s}"',
                         "Make this sentence all lowercase, keeping the punctuation: {s}")
                        ).format(s=shouted)
    gold = shouted.lower()
    return Item(prompt, gold, gold, gold[0].upper() + gold[1:])


def _fmt_title_case(rng: random.Random) -> Item:
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
    return Item(prompt, gold, gold, " ".join(slipped))


def _fmt_reverse_words(rng: random.Random) -> Item:
    sentence = _sentence(rng)
    prompt = rng.choice(("Reverse the order of the words in this sentence, keeping each word "
                         "exactly as it is:\n\n{s}",
                         'Write the words of "{s}" in reverse order.',
                         "Flip the word order of the following sentence (last word first): {s}")
                        ).format(s=sentence)
    gold = " ".join(reversed(sentence.split()))
    return Item(prompt, gold, gold, sentence[::-1])


def _fmt_bullets(rng: random.Random) -> Item:
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
    return Item(prompt, gold, gold, wrong)


def _fmt_json(rng: random.Random) -> Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice((
        'Return a JSON object with a single key "text" whose value is this sentence: {s}',
        'Wrap the following sentence in JSON as {{"text": ...}} and output only the JSON.\n\n{s}',
        'Give me this sentence as a JSON object with one field, "text": "{s}"')).format(s=sentence)
    gold = json.dumps({"text": sentence})
    return Item(prompt, gold, gold, json.dumps({"message": sentence}))


def _fmt_word_count(rng: random.Random) -> Item:
    sentence = _sentence(rng) + "."
    prompt = rng.choice(("How many words are in the following sentence?\n\n{s}",
                         'Count the words in this sentence: "{s}"',
                         "Tell me the number of words in: {s}")).format(s=sentence)
    count = len(sentence.split())
    answer = rng.choice(("The sentence has {} words.", "There are {} words.", "{} words."))
    return Item(prompt, answer.format(count), str(count),
                 answer.format(count + rng.choice((-1, 1))))


def _fmt_sort_words(rng: random.Random) -> Item:
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
    return Item(prompt, ", ".join(ordered), ", ".join(ordered), ", ".join(wrong))


def _fmt_snake_case(rng: random.Random) -> Item:
    words = [rng.choice(part) for part in _SNAKE_PARTS]
    label = " ".join(_capitalise_words(words))
    prompt = rng.choice(('Convert "{s}" into a snake_case variable name.',
                         'What would "{s}" look like as a Python variable name in snake_case?',
                         "Turn the label {s} into snake_case.")).format(s=label)
    gold = "_".join(words)
    return Item(prompt, gold, gold, words[0] + "".join(_capitalise_words(words[1:])))


_FORMATS = (_fmt_uppercase, _fmt_lowercase, _fmt_title_case, _fmt_reverse_words, _fmt_bullets,
            _fmt_json, _fmt_word_count, _fmt_sort_words, _fmt_snake_case)


def generate(rng: random.Random) -> Item:
    return rng.choice(_FORMATS)(rng)


# --------------------------------------------------------------------------- checking
def _strip_wrapping(text: str) -> str:
    """Drop a code fence and matching quotes around an answer: they are not part of it."""
    text = text.strip()
    fenced = FENCE.fullmatch(text)
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


def check(gold: str, completion: str) -> bool:
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
        values = numbers(answer)
        return bool(values) and values[-1] == float(gold)
    return _plain_text(answer) == _plain_text(gold)
