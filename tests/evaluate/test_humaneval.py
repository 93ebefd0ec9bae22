"""HumanEval: reference solutions pass in every answer shape, wrong code fails, accidents are
contained by the sandbox."""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from selection_core.evaluate.base import EvalItem
from selection_core.data.answers import defines_function, extract_code, fenced_blocks
from selection_core.evaluate.humaneval import HumanEval


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[EvalItem]:
    return HumanEval().load()


@pytest.fixture(scope="module")
def canonical(shared_data: Path) -> dict[str, str]:
    from selection_core.evaluate.base import read_jsonl

    path = shared_data / "humaneval" / "HumanEval.jsonl.gz"
    return {record["task_id"]: record["canonical_solution"] for _, record in read_jsonl(path)}


def _by_id(items: list[EvalItem], task_id: str) -> EvalItem:
    return next(item for item in items if item.id == task_id)


def test_loads_all_164_problems_with_chat_prompts(items: list[EvalItem]) -> None:
    assert len(items) == 164
    assert items[0].id == "HumanEval/0"
    assert items[0].prompt.startswith(  # the UltraInteract/Eurus kit's prompt
        "Write Python code to solve the task.\nWrite a Python function `has_close_elements("
        "numbers: List[float], threshold: float) -> bool` to solve the following problem: "
        "Present code in ```python```\n```python\nfrom typing import List\n")
    assert items[0].prompt.endswith('    """\n```\n')
    assert items[0].meta == {"entry_point": "has_close_elements"}


def test_all_canonical_solutions_pass_as_fenced_whole_functions(items: list[EvalItem]) -> None:
    started = time.monotonic()
    result = HumanEval().evaluate(items, {item.id: item.gold_response for item in items})
    assert result.score == 100.0, [row for row in result.per_item if not row["correct"]][:3]
    assert result.n == 164 and result.metrics["missing"] == 0
    assert result.per_item[0]["extracted"].startswith("from typing import List")
    assert time.monotonic() - started < 30  # about 3 s on 2 cores


def test_canonical_bodies_pass_as_continuations(items: list[EvalItem],
                                                canonical: dict[str, str]) -> None:
    subset = random.Random(0).sample(items, 40)
    result = HumanEval().evaluate(subset, {item.id: canonical[item.id] for item in subset})
    assert result.score == 100.0


def test_wrong_code_scores_zero(items: list[EvalItem]) -> None:
    subset = random.Random(1).sample(items, 40)
    completions = {item.id: f"```python\ndef {item.meta['entry_point']}(*args):\n"
                            "    return None\n```" for item in subset}
    result = HumanEval().evaluate(subset, completions)
    assert result.score == 0.0
    assert {row["status"] for row in result.per_item} == {"failed"}
    assert all("Error" in row["error"] for row in result.per_item)


def test_chat_shaped_answers_are_assembled_with_the_prompt_header(
        items: list[EvalItem], canonical: dict[str, str]) -> None:
    # make_palindrome's prompt defines the helper is_palindrome, which chat answers leave out.
    item = _by_id(items, "HumanEval/10")
    prompt = item.gold["prompt"]
    function = prompt[prompt.index("def make_palindrome("):] + canonical[item.id]
    shapes = {
        "prose and fence": f"Sure! Here is the function:\n\n```python\n{function}```\n"
                           "It uses `is_palindrome`.",
        "two blocks": f"```python\nprint('usage')\n```\nand\n```py\n{function}```",
        "unclosed fence": f"```python\n{function}",
        "prose, no fence": f"Here is my solution.\n{function}",
        "fenced body": f"```python\n{canonical[item.id]}```",
    }
    benchmark = HumanEval()
    for shape, completion in shapes.items():
        assert benchmark.score_item(item, completion)["correct"], shape


def test_missing_and_empty_answers_fail_without_running(items: list[EvalItem]) -> None:
    subset = items[:3]
    result = HumanEval().evaluate(subset, {subset[0].id: "  \n", subset[1].id: "```python\n```"})
    assert result.score == 0.0
    assert [row["status"] for row in result.per_item] == ["no_code"] * 3
    assert result.per_item[2]["missing"] and result.metrics["missing"] == 1


def test_exiting_early_with_status_zero_is_no_pass(items: list[EvalItem]) -> None:
    item = items[0]
    completion = "```python\nimport sys\nsys.exit(0)\n```"
    verdict = HumanEval().score_item(item, completion)
    assert not verdict["correct"] and verdict["status"] == "failed"


def test_infinite_loops_and_shell_calls_are_contained(items: list[EvalItem],
                                                      tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    entry = items[0].meta["entry_point"]
    loop = f"```python\ndef {entry}(numbers, threshold):\n    while True:\n        pass\n```"
    shell = (f"```python\nimport os\ndef {entry}(numbers, threshold):\n"
             f"    os.system('touch {target}')\n    return True\n```")
    benchmark = HumanEval(timeout_s=1.0)
    started = time.monotonic()
    result = benchmark.evaluate(items[:2], {items[0].id: loop,
                                            items[1].id: items[1].gold_response})
    assert [row["status"] for row in result.per_item] == ["timeout", "passed"]
    verdict = benchmark.score_item(items[0], shell)
    assert verdict["status"] == "failed"
    assert not target.exists()
    assert time.monotonic() - started < 10


def test_code_extraction_helpers() -> None:
    text = "intro\n```bash\nls\n```\n```python\nx = 1\n```\n```\ny = 2\n```"
    assert fenced_blocks(text) == ["x = 1\n", "y = 2\n"]
    assert fenced_blocks("```bash\nls\n```") == ["ls\n"]
    assert defines_function("def f(x):\n    return x\n", "f")
    assert not defines_function("def g(x):\n    def f():\n        pass\n", "f")
    assert defines_function("def f(x:\n  broken", "f")  # unparsable: judged by its def line
    assert extract_code("```python\ndef g(): pass\n```\n```python\ndef f(): pass\n```", "f") \
        == "def f(): pass\n"
    assert extract_code("    return 1\n", "f") == "    return 1\n"
    assert extract_code("LIMIT = 3\ndef f():\n    return LIMIT\n", "f").startswith("LIMIT")
    assert extract_code("Here it is:\ndef f():\n    return 3\n", "f").startswith("def f")
