"""S per scored item, for each scorer: what METHODS §1.4 says, with the sign that makes S > 0 mean
"gold beats the model's own answer"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selection_core.iterative.loop import score_generations
from selection_core.lm.formatting import truncate_tokens
from selection_core.lm.tiny import build_byte_tokenizer, build_tiny_reward_model
from selection_core.quality.scorers import HeuristicScorer, RewardModelScorer
from selection_core.iterative.rounds import IterativeConfig

PROMPTS = ["Add 2 and 3.", "Name a colour."]
GOLD = ["2 plus 3 is 5, so the answer is 5.", "Blue is a colour you can see in the sky."]
GENERATED = ["", "red"]


class FixedLikelihood:
    """Mean log-probability per token: −1 for gold answers, −0.25 for the model's own."""

    name = "fixed"

    def truncate(self, texts):
        return list(texts)

    def response_log_likelihood(self, prompts, responses):
        return np.array([-1.0 if r in GOLD else -0.25 for r in responses])


def test_perplexity_gap_is_minus_log_of_the_perplexity_ratio() -> None:
    config = IterativeConfig(k=2, budget=4, rounds=2, scorer="perplexity")
    gold, gen, gaps, quality, _ = score_generations(config, FixedLikelihood(), PROMPTS, GOLD,
                                                 GENERATED)
    ppl_gold, ppl_gen = np.exp(1.0), np.exp(0.25)
    np.testing.assert_allclose(gaps, -np.log(ppl_gen / ppl_gold))  # 0.75 > 0: gold is further
    np.testing.assert_allclose(quality, 1 / ppl_gold)
    np.testing.assert_allclose(gold, -1.0)
    np.testing.assert_allclose(gen, -0.25)


def test_heuristic_gap_is_gold_minus_generation_on_the_0_to_10_scale() -> None:
    config = IterativeConfig(k=2, budget=4, rounds=2, scorer="heuristic")
    gold, gen, gaps, quality, _ = score_generations(config, FixedLikelihood(), PROMPTS, GOLD,
                                                 GENERATED)
    expected_gen = HeuristicScorer().score(PROMPTS, GENERATED)
    np.testing.assert_allclose(gaps, HeuristicScorer().score(PROMPTS, GOLD) - expected_gen)
    np.testing.assert_allclose(quality, expected_gen / 10)
    assert (gaps > 0).all()


def test_reward_gap_uses_the_reward_model_on_both_answers(tmp_path: Path) -> None:
    model = build_tiny_reward_model(tmp_path / "reward")
    config = IterativeConfig(k=2, budget=4, rounds=2, scorer="reward", scorer_model=str(model),
                             device="cpu")
    gold, gen, gaps, quality, _ = score_generations(config, FixedLikelihood(), PROMPTS, GOLD,
                                                 GENERATED)
    scorer = RewardModelScorer(str(model), device="cpu")
    np.testing.assert_allclose(gold, scorer.score(PROMPTS, GOLD), rtol=1e-5)
    np.testing.assert_allclose(gaps, gold - gen)
    np.testing.assert_allclose(quality, 1 / (1 + np.exp(-gen)))
    assert ((quality > 0) & (quality < 1)).all()


def test_reward_scorer_without_a_model_is_refused_up_front() -> None:
    from selection_core.spine.errors import ConfigError

    with pytest.raises(ConfigError, match="reward model"):
        IterativeConfig(k=2, budget=4, rounds=2, scorer="reward")


class CappedModel:
    """Generates at most 16 byte tokens; its log-likelihood per token falls with length."""

    name = "capped"
    cap = 16

    def __init__(self) -> None:
        self.tokenizer = build_byte_tokenizer()

    def truncate(self, texts):
        return truncate_tokens(self.tokenizer, texts, self.cap)

    def response_log_likelihood(self, prompts, responses):
        return -np.array([1.0 + 0.01 * len(r) for r in responses])


@pytest.mark.parametrize("scorer", ["heuristic", "perplexity"])
def test_gold_against_itself_cut_at_the_generation_cap_scores_zero(scorer: str) -> None:
    """A model that writes the gold answer until its token cap stops it has no gap left: gold is
    cut by the same rule before it is scored (once a long gold answer beat it on length)."""
    model = CappedModel()
    long_gold = [f"{g} Then {' '.join(f'step{i}' for i in range(30))}." for g in GOLD]
    generated = truncate_tokens(model.tokenizer, long_gold, model.cap)
    assert all(len(g) == model.cap for g in generated)  # one byte per token: really cut
    config = IterativeConfig(k=2, budget=4, rounds=2, scorer=scorer)
    scored = score_generations(config, model, PROMPTS, long_gold, generated)
    np.testing.assert_allclose(scored.gaps, 0.0, atol=1e-12)
    assert scored.gold == generated
    if scorer == "heuristic":  # uncut, the longer gold would have won by a wide margin
        uncut = HeuristicScorer().score(PROMPTS, long_gold) - HeuristicScorer().score(
            PROMPTS, generated)
        assert (uncut > 1.0).all()
