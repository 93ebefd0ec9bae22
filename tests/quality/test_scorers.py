from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from selection_core.spine.config import ScorerConfig
from selection_core.spine.errors import ConfigError
from selection_core.lm.tiny import build_tiny_causal_lm, build_tiny_reward_model
from selection_core.quality.scorers import HeuristicScorer, PerplexityScorer, RewardModelScorer, \
    heuristic_components, make_scorer

PROMPTS = ["Convert 3 km to metres.", "Name a primary colour.", "Write a haiku about rain.",
           "Reverse the word 'stone'."]
RESPONSES = ["Since 1 km = 1000 m, 3 km = 3000 m.", "Red.", "", "enots"]


def test_heuristic_ranks_obvious_cases() -> None:
    good = "Since 1 km = 1000 m, 3.5 km is 3.5 × 1000 = 3500 m, so the answer is 3500 metres."
    rambling = "Click the link to learn more about our offers. " * 12
    truncated = 'Here is the JSON you asked for: {"text": "My grandmother sold fresh bre'
    scores = HeuristicScorer().score(["q"] * 4, [good, rambling, truncated, "   "])
    assert scores[0] > scores[2] > scores[1] > scores[3] == 0.0
    assert 0 <= scores.min() and scores.max() <= 10
    assert heuristic_components(rambling)["diversity"] < 0.3
    assert heuristic_components(truncated)["balanced"] == 0.0


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm") / "model", seed=0)


def test_perplexity_scorer_is_mean_response_log_probability(tiny_lm: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selection_core.lm.formatting import format_prompt

    scores = PerplexityScorer(str(tiny_lm), batch_size=3, device="cpu").score(PROMPTS, RESPONSES)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    # empty response: the uniform-guess floor
    assert scores[2] == pytest.approx(-math.log(len(tokenizer)))
    # a non-empty one: the mean log-probability of its tokens, computed by hand
    prompt_ids = tokenizer(format_prompt(tokenizer, PROMPTS[0]), add_special_tokens=False)[
        "input_ids"]
    response_ids = tokenizer(RESPONSES[0], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    token_lp = logprobs[torch.arange(len(targets)), targets][len(prompt_ids) - 1:]
    assert scores[0] == pytest.approx(float(token_lp.mean()), abs=1e-4)


@pytest.mark.shared_data
def test_perplexity_under_a_real_pretrained_model_prefers_fluent_text(shared_data: Path) -> None:
    model = str(shared_data / "models" / "stories260K" / "stories260K.bin")
    story = "Once upon a time, there was a little girl named Lily. She liked to play outside."
    noise = "xq zzv kpl, wmmq trr vhx. Qqq plk zzr mnb vvx jjq."
    scores = PerplexityScorer(model, device="cpu").score(["Tell me a story."] * 2, [story, noise])
    assert scores[0] > scores[1] + 1.0


def test_reward_scorer_with_a_tiny_classifier(tmp_path: Path) -> None:
    folder = build_tiny_reward_model(tmp_path / "rm", seed=0)
    scorer = RewardModelScorer(str(folder), batch_size=2, device="cpu")
    scores = scorer.score(PROMPTS, RESPONSES)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert np.allclose(scores, scorer.score(PROMPTS, RESPONSES))  # deterministic
    # batching/padding does not change a score
    single = [scorer.score([p], [r])[0] for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    assert np.allclose(scores, single, atol=1e-4)


def test_make_scorer_needs_a_model_for_lm_scorers() -> None:
    assert make_scorer(ScorerConfig()).name == "heuristic"
    with pytest.raises(ConfigError, match="needs a model"):
        make_scorer(ScorerConfig(name="reward"))
    with pytest.raises(ConfigError, match="prompts but"):
        HeuristicScorer().score(["a"], [])
