"""Quality scorers: one float per example, higher is better, each with a name (Yu et al., 2024).

Three kinds: a cheap heuristic (emptiness, length, repetition, a clean ending), the perplexity of
the response under a causal LM (−log PPL, so lower perplexity scores higher), and a reward model
(any HF sequence-classification model). All share `score(prompts, responses) -> np.ndarray`, so
selection code never needs to know which one it got.
"""
from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..spine.config import ScorerConfig
from ..spine.errors import ConfigError
from ..spine.progress import Progress



class QualityScorer(Protocol):
    name: str

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              progress: Progress | None = None) -> np.ndarray: ...


def _check_lengths(prompts: Sequence[str], responses: Sequence[str]) -> None:
    if len(prompts) != len(responses):
        raise ConfigError(f"{len(prompts)} prompts but {len(responses)} responses")


# --------------------------------------------------------------------------- heuristic
_WORD = re.compile(r"\w+", re.UNICODE)
_CLEAN_END = re.compile(r"""([.!?)"'\]}>*`:;]|\d|```)\s*$""")
_PAIRS = (("(", ")"), ("[", "]"), ("{", "}"))
HEURISTIC_SCALE = 10.0


def heuristic_components(response: str) -> dict[str, float]:
    """Named 0–1 factors behind the heuristic score (shown to users to explain a score).

    length: saturating in the word count (1 word → 0.2, ~40 words → 1); diversity: share of
    distinct word trigrams (rambling repeats itself); compression: how poorly the text compresses
    (repetition compresses well; judged on texts of 200+ bytes only); clean_end: the text ends
    like a finished answer; balanced: brackets, quotes and code fences are closed (truncated
    answers leave them open).
    """
    text = response.strip()
    words = _WORD.findall(text.lower())
    if not words:
        return {"length": 0.0, "diversity": 0.0, "compression": 0.0, "clean_end": 0.0,
                "balanced": 0.0}
    length = min(1.0, 0.2 + 0.8 * math.log1p(len(words) - 1) / math.log1p(40))
    trigrams = list(zip(words, words[1:], words[2:]))
    diversity = len(set(trigrams)) / len(trigrams) if trigrams else 1.0
    raw = text.encode("utf-8")
    compression = min(1.0, len(zlib.compress(raw, 6)) / len(raw) / 0.45) if len(raw) >= 200 \
        else 1.0
    clean_end = 1.0 if _CLEAN_END.search(text) else 0.0
    balanced = float(text.count("```") % 2 == 0 and text.count('"') % 2 == 0
                     and all(text.count(a) == text.count(b) for a, b in _PAIRS))
    return {"length": length, "diversity": diversity, "compression": compression,
            "clean_end": clean_end, "balanced": balanced}


def heuristic_score(response: str) -> float:
    """0–10: 10 × (0.4 + 0.6·length) × diversity × compression × end × balance penalties.

    The 0–10 scale (like an LLM judge's rating) matters: kMQ samples ∝ exp(q/τ), and with τ = 1 a
    two-point gap makes an answer e² ≈ 7× less likely to be drawn.
    """
    parts = heuristic_components(response)
    return HEURISTIC_SCALE * ((0.4 + 0.6 * parts["length"]) * parts["diversity"]
                              * parts["compression"] * (0.75 + 0.25 * parts["clean_end"])
                              * (0.5 + 0.5 * parts["balanced"]))


class HeuristicScorer:
    """Length, n-gram diversity, compressibility, a clean ending and closed brackets; 0–10,
    empty responses score 0. A model-free fallback: it cannot tell a wrong answer from a right
    one — use the perplexity or reward scorer for that."""

    name = "heuristic"

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              progress: Progress | None = None) -> np.ndarray:
        _check_lengths(prompts, responses)
        scores = np.array([heuristic_score(r) for r in responses], dtype=np.float64)
        if progress:
            progress(len(responses), len(responses))
        return scores


# --------------------------------------------------------------------------- language models
class _ModelScorer:
    """Shared parameters of the scorers that run a model (loaded lazily, cached in-process)."""

    def __init__(self, model: str, max_length: int = 512, batch_size: int = 8,
                 device: str = "auto") -> None:
        self.model = model
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device


class PerplexityScorer(_ModelScorer):
    """Mean log-probability of the response tokens given the prompt (= −log perplexity).

    An empty response has no tokens to judge; it gets −log(vocabulary size), the score of a model
    that guesses uniformly — worse than any real answer a trained model finds plausible.
    """

    name = "perplexity"

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              progress: Progress | None = None) -> np.ndarray:
        from ..lm.formatting import mean_log_likelihood
        from ..lm.loading import load_causal_lm

        _check_lengths(prompts, responses)
        model, tokenizer = load_causal_lm(self.model, device=self.device)
        return mean_log_likelihood(model, tokenizer, list(prompts), list(responses),
                                   batch_size=self.batch_size, max_length=self.max_length,
                                   progress=progress)


class RewardModelScorer(_ModelScorer):
    """The reward model's score of (prompt, response); higher means preferred.

    One-logit models give that logit; classifiers with several labels give the log-probability of
    the last label (the "good"/"positive" class by convention).
    """

    name = "reward"

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              progress: Progress | None = None) -> np.ndarray:
        import torch

        from ..lm.loading import load_sequence_classifier

        _check_lengths(prompts, responses)
        model, tokenizer = load_sequence_classifier(self.model, device=self.device)
        device = next(model.parameters()).device
        use_template = getattr(tokenizer, "chat_template", None) is not None
        order = np.argsort([-(len(p) + len(r)) for p, r in zip(prompts, responses, strict=True)],
                           kind="stable")
        scores = np.empty(len(prompts), dtype=np.float64)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if use_template:
                texts = [tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompts[i]},
                     {"role": "assistant", "content": responses[i]}], tokenize=False)
                    for i in idx]
                batch = tokenizer(texts, padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
            else:
                batch = tokenizer([prompts[i] for i in idx], [responses[i] for i in idx],
                                  padding=True, truncation="longest_first",
                                  max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                logits = model(**batch.to(device)).logits.float()
            values = logits[:, 0] if logits.shape[-1] == 1 else \
                torch.log_softmax(logits, dim=-1)[:, -1]
            scores[idx] = values.cpu().numpy()
            if progress:
                progress(min(start + self.batch_size, len(order)), len(order))
        return scores


def loaded_scorer(config: ScorerConfig) -> QualityScorer:
    """A scorer with its model loaded now (a Ray worker loads it once, at start): scoring no rows
    loads the model into the in-process cache the later calls read."""
    scorer = make_scorer(config)
    scorer.score([], [])
    return scorer


def score_shard(scorer: QualityScorer, part: str, prompts: list[str],
                responses: list[str]) -> np.ndarray:
    return scorer.score(prompts, responses)


def make_scorer(config: ScorerConfig) -> QualityScorer:
    if config.name == "heuristic":
        return HeuristicScorer()
    if not config.model:
        raise ConfigError(f"the {config.name} scorer needs a model (--scorer-model NAME_OR_PATH)")
    cls = {"perplexity": PerplexityScorer, "reward": RewardModelScorer}.get(config.name)
    if cls is None:
        raise ConfigError(f"unknown scorer '{config.name}'; use heuristic, perplexity or reward")
    return cls(config.model, max_length=config.max_length, batch_size=config.batch_size,
               device=config.device)
