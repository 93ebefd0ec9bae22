"""Turn a model's code answer into a test program and run many of them in the sandbox.

Why a module shared by HumanEval and MBPP: chat models answer in many shapes (a fenced block, a
whole function, prose around it, or only the body continuing the prompt), and both benchmarks
must find the code the same way (`answers.extract_code`, shared with the demo pool's checker) and
judge a run the same way: a program passes only if every
part of it returned (the sandbox's token, which the program cannot forge), so an early
`exit(0)` is no pass. The solution and its tests are separate parts, compiled apart, so a
completion cannot swallow the tests (an unclosed string or bracket) and run none of them.

Limits follow the reference harnesses: human-eval's `check_correctness` and the `code_eval`
metric lm-evaluation-harness scores MBPP with both allow 3 s per program (wall clock around the
program's execution; interpreter start-up is not counted).
"""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from ..spine.sandbox import Program, SandboxResult, run_many
from .base import BaseBenchmark, EvalItem, EvalResult

_ERROR_CHARS = 600  # of stderr kept per failed item: enough for the last traceback lines
REFERENCE_TIMEOUT_S = 3.0  # human-eval check_correctness; HF code_eval (lm-eval's MBPP)


def run_test_programs(programs: Sequence[Program | None], timeout_s: float, memory_mb: int,
                      workers: int | None) -> list[dict[str, Any]]:
    """Run each program (None: nothing to run) in the sandbox, in parallel; one verdict each.

    A verdict is {"correct", "status" (passed | failed | timeout | error | no_code), "seconds",
    "error" (the tail of stderr when not passed)}.
    """
    runnable = [index for index, program in enumerate(programs) if program is not None]
    results = run_many([programs[index] for index in runnable], timeout_s=timeout_s,
                       memory_mb=memory_mb, workers=workers)
    verdicts: list[dict[str, Any]] = [
        {"correct": False, "status": "no_code", "seconds": 0.0,
         "error": "the completion holds no code"} for _ in programs]
    for index, result in zip(runnable, results, strict=True):
        verdicts[index] = _verdict(result)
    return verdicts


def _verdict(result: SandboxResult) -> dict[str, Any]:
    error = "" if result.passed else result.stderr.strip()[-_ERROR_CHARS:]
    return {"correct": result.passed, "status": result.status,
            "seconds": round(result.seconds, 3), "error": error}


class CodeBenchmark(BaseBenchmark):
    """A benchmark judged by running tests: programs run in parallel, under sandbox limits."""

    group = "coding"

    def __init__(self, timeout_s: float = REFERENCE_TIMEOUT_S, memory_mb: int = 1024,
                 workers: int | None = None) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.workers = workers

    @abc.abstractmethod
    def extract(self, item: EvalItem, completion: str) -> str:
        """The code to run from a completion (see `answers.extract_code`)."""

    @abc.abstractmethod
    def build_program(self, item: EvalItem, code: str) -> Program:
        """The test program: the extracted code with what the benchmark adds, then its tests;
        best as named parts ({"solution.py": …, "tests.py": …}) so each compiles apart."""

    def score_item(self, item: EvalItem, completion: str) -> dict[str, Any]:
        return self._judge([item], [completion])[0]

    def evaluate(self, items: list[EvalItem], completions: Mapping[str, str]) -> EvalResult:
        """All programs run in parallel through `sandbox.run_many`."""
        verdicts = self._judge(items, [completions.get(item.id, "") for item in items])
        return self.summarise(items, [self._row(item, completions, verdict)
                                      for item, verdict in zip(items, verdicts, strict=True)])

    def _judge(self, items: list[EvalItem], completions: list[str]) -> list[dict[str, Any]]:
        codes = [self.extract(item, completion)
                 for item, completion in zip(items, completions, strict=True)]
        programs = [self.build_program(item, code) if code.strip() else None
                    for item, code in zip(items, codes, strict=True)]
        verdicts = run_test_programs(programs, self.timeout_s, self.memory_mb, self.workers)
        return [{**verdict, "extracted": code} for verdict, code in zip(verdicts, codes,
                                                                        strict=True)]
