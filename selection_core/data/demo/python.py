"""Small Python functions to write: correct and subtly buggy code, checked by running the
item's asserts in the sandbox."""
from __future__ import annotations

import functools
import json
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..answers import extract_code
from ...spine.sandbox import run_python
from .common import Item

_PYTHON_TIMEOUT_S = 5.0


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


def generate(rng: random.Random) -> Item:
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

    return Item(prompt, answer(solution), gold, answer(bug))


# --------------------------------------------------------------------------- checking
def check(gold: str, completion: str) -> bool:
    """The code found as the code benchmarks find it, run with the item's asserts; it passes
    only if every line ran (the sandbox's own token, so an early `exit(0)` is no pass)."""
    spec = json.loads(gold)
    code = extract_code(completion, spec["entry_point"])
    program = "\n".join([code, "", *spec["tests"], ""])
    return run_python(program, timeout_s=_PYTHON_TIMEOUT_S, memory_mb=512).passed
