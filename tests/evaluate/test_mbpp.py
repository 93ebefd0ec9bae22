"""MBPP: every reference solution of the test split passes; wrong or hostile code does not."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.mbpp import MBPP


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return MBPP().load()


def _by_id(items: list[EvalItem], task_id: str) -> EvalItem:
    return next(item for item in items if item.id == task_id)


def test_loads_the_standard_test_split(items: list[EvalItem]) -> None:
    assert [item.id for item in items] == [str(task_id) for task_id in range(11, 511)]
    first = items[0]
    assert first.prompt == (  # the kit's make_conv: signature, task text, first test
        "Write Python code to solve the task.\nWrite a Python function `remove_Occ(s, ch)` to "
        "solve the following problem: Present code in ```python```\nWrite a python function to "
        "remove first and last occurrence of a given character from the string.\n"
        '>>> assert remove_Occ("hello","l") == "heo"\n')
    assert first.prefill == "```python\ndef"  # the kit appends it after the generation prompt
    assert first.gold["function"] == "remove_Occ"
    assert _by_id(items, "126").gold["function"] == "sum"  # it shadows the builtin


def test_all_reference_solutions_pass(items: list[EvalItem]) -> None:
    started = time.monotonic()
    # How programs are assembled is under test, not speed: task 123's reference needs 2-4 s of
    # CPU on a busy 2-core machine, past the reference harnesses' 3 s.
    result = MBPP(timeout_s=30.0).evaluate(items, {item.id: item.gold_response for item in items})
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]
    assert time.monotonic() - started < 40  # about 9 s on 2 cores


def test_setup_code_runs_after_the_solution(items: list[EvalItem]) -> None:
    with_setup = [item for item in items if item.gold["setup"]]
    assert with_setup, "the test split has one task with test_setup_code"
    program = "".join(MBPP().build_program(with_setup[0], "class Node: pass").values())
    assert program.index("class Node") < program.index(with_setup[0].gold["setup"])


def test_wrong_code_scores_zero(items: list[EvalItem]) -> None:
    subset = random.Random(0).sample(items, 40)
    completions = {item.id: f"```python\ndef {item.gold['function']}(*args):\n    return None\n```"
                   for item in subset}
    assert MBPP().evaluate(subset, completions).score == 0.0


def test_the_block_defining_the_tested_function_is_used(items: list[EvalItem]) -> None:
    item = items[0]
    reference = item.gold_response.removeprefix("```python\n").removesuffix("\n```")
    completion = ("Let me think.\n```python\nprint(remove_Occ('x', 'y'))\n```\nSolution:\n"
                  f"```python\n{reference}\n```\nDone.")
    assert MBPP().score_item(item, completion)["correct"]


def test_infinite_loop_is_a_timeout_and_a_shell_call_does_nothing(items: list[EvalItem],
                                                                   tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    name = items[0].gold["function"]
    completions = {
        items[0].id: f"def {name}(s, ch):\n    while True:\n        pass",
        items[1].id: f"import os\nos.system({json.dumps('touch ' + str(target))})\n"
                     f"{items[1].gold_response.strip('`').removeprefix('python')}",
    }
    started = time.monotonic()
    result = MBPP(timeout_s=1.0).evaluate(items[:2], completions)
    # os.system cannot start a process in the sandbox; the correct solution still passes
    assert [row["status"] for row in result.per_item] == ["timeout", "passed"]
    assert not target.exists()
    assert time.monotonic() - started < 5


def test_the_kit_signature_and_a_prefilled_completion_is_judged_whole(
        items: list[EvalItem]) -> None:
    from selection_core.evaluate.mbpp import kit_signature

    assert kit_signature("import re\ndef fib( n ,memo = {} ):\n  pass") == "fib(n, memo={})"
    item = items[0]
    code = item.gold_response.removeprefix("```python\n").removesuffix("\n```")
    # what generation returns after the prefill, stopped at the kit's "\nassert"
    continuation = code.split("def", 1)[1] + "\n"
    assert MBPP().score_item(item, item.prefill + continuation)["correct"]
