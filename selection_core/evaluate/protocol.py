"""Evaluation protocols: how each benchmark is asked and decoded (shots, length, stops, sampling).

Why named protocols: users put our tables next to the papers'. The default, `papers`, is the
protocol BIDS reports (A.2: "We follow the evaluation convention of UltraInteract ... greedy
decoding for all the evaluation tasks except for IFEval, where we use temperature 0.7 and take the
median result of three random seeds"), read from the UltraInteract/Eurus evaluation kit
(OpenBMB/Eurus, eval/) and lm-evaluation-harness. `cpu-demo` is a named, faster protocol for CPU
demos (zero-shot, short generations, one greedy IFEval run): never the default, and every result
records the protocol that produced it.

A spec's hash (everything but its `source` note) keys a stored result, so changing a benchmark's
protocol recomputes that benchmark's results and nothing else.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..spine.config import HashedConfig
from ..spine.errors import ConfigError
from .base import DEFAULT_STOP, lookup

# The Eurus kit stops maths generations at its few-shot delimiter, so a model that goes on with
# a question of its own is not scored on it; BBH stops at the next "Q:" for the same reason.
MATH_STOP = "\n###\nProblem: "
BBH_STOP = "\nQ:"
# the kit's MBPP STOP_WORDS (less its per-item "\n\nprint(<function>" stop)
MBPP_STOP = ("\nassert", "assert", "\ndef ")


@dataclass(frozen=True)
class BenchmarkSpec(HashedConfig):
    """How one benchmark is run: prompt shots, generation length, stop strings and sampling."""

    shots: int = 0  # few-shot examples before the question
    max_new_tokens: int = 512
    stop: tuple[str, ...] = DEFAULT_STOP
    temperature: float = 0.0  # 0: greedy
    seeds: tuple[int, ...] = (0,)  # sampled runs (temperature > 0); the median score is reported
    # how an answer is judged: the generation, by the benchmark's judge; or (MMLU) the letter
    # with the highest log-likelihood, without generating
    scoring: str = "generate"
    source: str = field(default="", metadata={"hash": False})  # where the settings come from

    def __post_init__(self) -> None:
        if self.shots < 0 or self.max_new_tokens < 1 or self.temperature < 0 or not self.seeds \
                or self.scoring not in SCORING_RULES:
            raise ConfigError(f"bad benchmark protocol {self}")


@dataclass(frozen=True)
class Protocol:
    """A named set of per-benchmark specs."""

    name: str
    description: str
    specs: Mapping[str, BenchmarkSpec]

    def spec(self, benchmark: str) -> BenchmarkSpec:
        return lookup(self.specs, benchmark, f"benchmark for protocol '{self.name}'")


_KIT = "UltraInteract/Eurus evaluation kit (OpenBMB/Eurus eval/)"
SCORING_RULES = ("generate", "letter-loglik")
# The kit's MMLU (mmlu/evaluate_mmlu.py): Hendrycks' 5-shot prompt from the dev split, sent raw,
# one greedy token (vLLM max_tokens=1, temperature 0), stripped and compared with the letter.
_KIT_MMLU = BenchmarkSpec(shots=5, max_new_tokens=1,
                          source=f"{_KIT}, mmlu/evaluate_mmlu.py: Hendrycks' 5-shot prompt from the "
                                 "dev split, one greedy token compared with the letter")
_MATH = BenchmarkSpec(max_new_tokens=1024, stop=(MATH_STOP, *DEFAULT_STOP),
                      source=f"{_KIT}, Math/*/evaluate_*_cot.py: zero-shot, greedy, 1024 tokens")
PAPERS = Protocol(
    name="papers",
    description="BIDS A.2 / UltraInteract: greedy decoding; IFEval at temperature 0.7, median of "
                "3 seeds; BBH 3-shot CoT; MMLU 5-shot",
    specs=MappingProxyType({
        "humaneval": BenchmarkSpec(max_new_tokens=1024, source=f"{_KIT}, Coding/human_eval"),
        "mbpp": BenchmarkSpec(max_new_tokens=512, stop=(*MBPP_STOP, *DEFAULT_STOP),
                              source=f"{_KIT}, Coding/mbpp/evaluate_mbpp.py: signature + first "
                                     "test, code prefill, the kit's stops, 512 tokens"),
        "bbh": BenchmarkSpec(shots=3, max_new_tokens=2048, stop=(BBH_STOP, *DEFAULT_STOP),
                             source=f"{_KIT}, Reasoning/bbh: 3-shot CoT as chat turns"),
        "mmlu": _KIT_MMLU,
        "gsm8k": _MATH, "gsm-plus": _MATH, "math": _MATH,
        "ifeval": BenchmarkSpec(max_new_tokens=1024, temperature=0.7, seeds=(0, 1, 2),
                                source=f"BIDS A.2; {_KIT}, Ins-Following/if_eval"),
        "demo": BenchmarkSpec(max_new_tokens=256, source="the demo pool's held-out skills"),
    }))
CPU_DEMO = Protocol(
    name="cpu-demo",
    description="fast CPU demo, NOT the papers' protocol: zero-shot everywhere, short "
                "generations, one greedy IFEval run",
    specs=MappingProxyType({
        "humaneval": BenchmarkSpec(max_new_tokens=384), "mbpp": BenchmarkSpec(max_new_tokens=384),
        "bbh": BenchmarkSpec(max_new_tokens=256, stop=(BBH_STOP, *DEFAULT_STOP)),
        "mmlu": BenchmarkSpec(max_new_tokens=1, scoring="letter-loglik"),
        "gsm8k": BenchmarkSpec(max_new_tokens=256, stop=(MATH_STOP, *DEFAULT_STOP)),
        "gsm-plus": BenchmarkSpec(max_new_tokens=256, stop=(MATH_STOP, *DEFAULT_STOP)),
        "math": BenchmarkSpec(max_new_tokens=384, stop=(MATH_STOP, *DEFAULT_STOP)),
        "ifeval": BenchmarkSpec(max_new_tokens=384),
        "demo": BenchmarkSpec(max_new_tokens=256),
    }))
PAPERS_MMLU_LOGLIK = Protocol(
    name="papers-mmlu-loglik",
    description=PAPERS.description.replace("MMLU 5-shot", "MMLU 5-shot by the letters' "
                                           "log-likelihood (not the kit's greedy token)"),
    specs=MappingProxyType({**PAPERS.specs, "mmlu": dataclasses.replace(
        _KIT_MMLU, scoring="letter-loglik",
        source=f"{_KIT}, mmlu/evaluate_mmlu.py's prompt; scored by the letter with the highest "
               "log-likelihood (Hendrycks et al.'s original rule; the kit's is commented out)")}))
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PAPERS, PAPERS_MMLU_LOGLIK, CPU_DEMO)}
DEFAULT_PROTOCOL = PAPERS.name


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; a ConfigError lists the valid names."""
    return lookup(PROTOCOLS, name, "protocol")
