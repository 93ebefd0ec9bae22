"""The benchmarks by name, as the CLI and the app refer to them."""
from __future__ import annotations

from .base import Benchmark, lookup
from .bbh import BBH
from .demo import DemoBenchmark
from .gsm8k import GSM8K
from .gsm_plus import GSMPlus
from .hendrycks_math import HendrycksMath
from .humaneval import HumanEval
from .ifeval import IFEval
from .mbpp import MBPP
from .mmlu import MMLU

BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (HumanEval(), MBPP(), GSM8K(), GSMPlus(), HendrycksMath(), BBH(), MMLU(),
                      IFEval(), DemoBenchmark())
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; a ConfigError lists the valid names."""
    return lookup(BENCHMARKS, name, "benchmark")
