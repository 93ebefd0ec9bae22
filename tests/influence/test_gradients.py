"""LESS gradient features (METHODS §2.1): batched per-example gradients == the batch-size-1 loop,
Adam preconditioning by hand, the seeded Rademacher projection, normalised features."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from selection_core.spine.errors import ConfigError
from selection_core.influence.gradients import (
    PROJECTION_BLOCK,
    AdamState,
    PerExampleGradients,
    RademacherProjector,
    adam_precondition,
    adam_state,
    gradient_features,
    loop_gradients,
)
from selection_core.lm.formatting import IGNORE_INDEX, collate, encode_pair
from selection_core.lm.tiny import build_tiny_causal_lm

# different lengths (padding in every batch); the last is cut by max_length
PAIRS = [("Say yes.", "yes"),
         ("Count to three, please.", "one two three"),
         ("Hi", "a much longer response, with many more bytes in it than the others"),
         ("Name a colour.", "blue"),
         ("Repeat this long prompt " * 8, "and a response that is cut short by max_length " * 3)]
MAX_LENGTH = 160
ModelAndTokenizer = tuple[Any, Any]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lora_model(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
               ) -> ModelAndTokenizer:
    """A tiny llama (from a config) with LoRA on q/k/v/o and random B matrices, as after a
    warmup: with B = 0 (peft's init) every lora_A gradient would be 0 and the test toothless."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(
        r=4, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj",
                                                              "o_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval(), tokenizer  # eval: dropout off, as gradient_features does


def _examples(tokenizer: Any) -> list[dict[str, list[int]]]:
    return [encode_pair(tokenizer, p, r, MAX_LENGTH) for p, r in PAIRS]


# --------------------------------------------------------------------------- per-example gradients
def test_batched_per_example_gradients_equal_the_batch_size_1_loop(
        lora_model: ModelAndTokenizer) -> None:
    model, tokenizer = lora_model
    examples = _examples(tokenizer)
    lengths = [len(e["input_ids"]) for e in examples]
    assert len(set(lengths)) == len(lengths) and max(lengths) == MAX_LENGTH  # padding, a cut
    assert all(e["labels"][1] == IGNORE_INDEX for e in examples)  # prompt tokens are masked
    hooks = PerExampleGradients(model)
    try:
        batched = hooks(collate(examples, tokenizer.pad_token_id))
    finally:
        hooks.close()
    loop = loop_gradients(model, examples, tokenizer.pad_token_id)
    assert batched.shape == loop.shape == (len(examples), hooks.dim)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert hooks.names == trainable and all("lora_" in n for n in trainable)
    cosine = torch.nn.functional.cosine_similarity(batched.double(), loop.double(), dim=1)
    assert cosine.min().item() >= 0.999, cosine
    assert torch.allclose(batched, loop, rtol=1e-4, atol=1e-6 * loop.abs().max().item())
    for kind in ("lora_A", "lora_B"):  # both kinds of matrix get gradients
        columns = torch.cat([torch.full((p.numel(),), kind in n) for n, p in
                             model.named_parameters() if p.requires_grad])
        assert (batched[:, columns].abs().sum(dim=1) > 0).all(), kind


def test_gradient_is_of_the_mean_loss_over_response_tokens_only(
        lora_model: ModelAndTokenizer) -> None:
    """An independent reference: cross-entropy written out here over the unpadded sequence,
    response positions only, then plain autograd."""
    model, tokenizer = lora_model
    examples = _examples(tokenizer)
    hooks = PerExampleGradients(model)
    try:
        batched = hooks(collate(examples, tokenizer.pad_token_id))
    finally:
        hooks.close()
    params = [p for p in model.parameters() if p.requires_grad]
    for row in (0, 2):
        model.zero_grad(set_to_none=True)
        ids = torch.tensor([examples[row]["input_ids"]])
        labels = torch.tensor(examples[row]["labels"][1:])
        response = labels != IGNORE_INDEX
        logits = model(input_ids=ids).logits[0, :-1]
        torch.nn.functional.cross_entropy(logits[response], labels[response]).backward()
        expected = torch.cat([p.grad.flatten() for p in params])
        assert torch.allclose(batched[row], expected, rtol=1e-4,
                              atol=1e-6 * expected.abs().max().item())
    model.zero_grad(set_to_none=True)


def test_parameter_grads_are_untouched_and_hooks_removed_on_close(
        lora_model: ModelAndTokenizer) -> None:
    model, tokenizer = lora_model
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, 7.0)
    hooks = PerExampleGradients(model)
    hooks(collate(_examples(tokenizer)[:2], tokenizer.pad_token_id))
    hooks.close()
    assert all(bool((p.grad == 7.0).all()) for p in params)
    model.zero_grad(set_to_none=True)
    left = [hook for m in model.modules() for hook in m._forward_hooks.values()]
    # transformers keeps its own output-capturing hooks (installed by output_hidden_states)
    assert not [hook for hook in left if not hook.__module__.startswith("transformers.")]


def test_only_linear_trainables_are_accepted(lora_model: ModelAndTokenizer) -> None:
    model, _ = lora_model
    norm = model.base_model.model.model.norm.weight  # not a Linear's
    tied = model.get_input_embeddings().weight  # also the lm_head Linear's: shared
    assert tied is model.get_output_embeddings().weight
    for param in (norm, tied):
        param.requires_grad_(True)
        try:
            with pytest.raises(ConfigError, match="not a Linear layer's own"):
                PerExampleGradients(model)
        finally:
            param.requires_grad_(False)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with pytest.raises(ConfigError, match="no trainable parameters"):
            PerExampleGradients(model)
    finally:
        for p in frozen:
            p.requires_grad_(True)


# --------------------------------------------------------------------------- Adam preconditioning
def test_adam_preconditioning_by_hand_both_variants() -> None:
    """LESS's m'/√(v' + ε) (the default) and Adam's m'/(√v' + ε), m' = β1·m + (1−β1)·g,
    v' = β2·v + (1−β2)·g², no bias correction (METHODS §2.1), on a hand-made state."""
    state = AdamState(torch.tensor([0.1, -0.2, 1e-4], dtype=torch.float64),
                      torch.tensor([0.01, 0.04, 0.0], dtype=torch.float64),
                      beta1=0.9, beta2=0.999, eps=1e-8)
    g = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    m = [[0.9 * 0.1 + 0.1 * 1.0, 0.9 * -0.2 + 0.1 * -1.0, 0.9 * 1e-4],
         [0.9 * 0.1, 0.9 * -0.2 + 0.1 * 2.0, 0.9 * 1e-4]]
    v = [[0.999 * 0.01 + 0.001 * 1.0, 0.999 * 0.04 + 0.001 * 1.0, 0.0],
         [0.999 * 0.01, 0.999 * 0.04 + 0.001 * 4.0, 0.0]]
    plain = [[m[i][j] / (math.sqrt(v[i][j]) + 1e-8) for j in range(3)] for i in range(2)]
    less = [[m[i][j] / math.sqrt(v[i][j] + 1e-8) for j in range(3)] for i in range(2)]
    np.testing.assert_allclose(adam_precondition(g, state).numpy(), less, rtol=1e-12)  # default
    np.testing.assert_allclose(adam_precondition(g, state, "less").numpy(), less, rtol=1e-12)
    np.testing.assert_allclose(adam_precondition(g, state, "adam").numpy(), plain, rtol=1e-12)
    with pytest.raises(ConfigError, match="unknown preconditioner"):
        adam_precondition(g, state, "sgd")  # type: ignore[arg-type]
    # where v' = 0 the variants differ most: 9e-5 / 1e-8 = 9000 vs 9e-5 / 1e-4 = 0.9
    assert plain[0][2] == pytest.approx(9000) and less[0][2] == pytest.approx(0.9)


def test_adam_state_reads_moments_in_the_given_parameter_order(tmp_path: Path) -> None:
    save_file({"a.exp_avg": torch.tensor([1.0, 2.0]), "a.exp_avg_sq": torch.tensor([3.0, 4.0]),
               "b.exp_avg": torch.tensor([[5.0]]), "b.exp_avg_sq": torch.tensor([[6.0]]),
               "a.step": torch.tensor(7.0), "b.step": torch.tensor(7.0)},
              str(tmp_path / "optimizer.safetensors"))
    state = adam_state(tmp_path, ["b", "a"])
    assert state.exp_avg.tolist() == [5.0, 1.0, 2.0]
    assert state.exp_avg_sq.tolist() == [6.0, 3.0, 4.0]
    with pytest.raises(ConfigError, match="no optimizer state for c"):
        adam_state(tmp_path, ["a", "c"])


# --------------------------------------------------------------------------- projection
def _matrix(projector: RademacherProjector) -> torch.Tensor:
    """P itself: the identity's projection (each output is one entry of P plus exact zeros)."""
    return projector(torch.eye(projector.dim_in))


def test_projection_is_the_same_whatever_the_chunking() -> None:
    dim_in = 2 * PROJECTION_BLOCK + 452  # a partial last block
    cached = _matrix(RademacherProjector(dim_in, 48, seed=3))
    for chunk_rows in (PROJECTION_BLOCK, 2 * PROJECTION_BLOCK, 8 * PROJECTION_BLOCK):
        chunked = RademacherProjector(dim_in, 48, seed=3, chunk_rows=chunk_rows,
                                      max_cache_bytes=0)
        assert chunked._cached is None
        assert torch.equal(_matrix(chunked), cached), chunk_rows
    x = torch.randn(5, dim_in, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(RademacherProjector(dim_in, 48, seed=3, max_cache_bytes=0)(x),
                          x @ cached, rtol=1e-5, atol=1e-5)
    # entries are ±1/√d, about half of each sign
    assert cached.unique().numel() == 2
    assert torch.allclose(cached.abs(), torch.full_like(cached, 1 / math.sqrt(48)))
    assert abs((cached > 0).float().mean().item() - 0.5) < 0.02


def test_different_seeds_and_blocks_give_different_projections() -> None:
    dim_in = 2 * PROJECTION_BLOCK
    a = _matrix(RademacherProjector(dim_in, 32, seed=0))
    b = _matrix(RademacherProjector(dim_in, 32, seed=1))
    assert (a == b).float().mean().item() < 0.55  # independent signs agree half the time
    assert (a[:PROJECTION_BLOCK] == a[PROJECTION_BLOCK:]).float().mean().item() < 0.55
    with pytest.raises(ConfigError, match="multiple of"):
        RademacherProjector(dim_in, 32, chunk_rows=PROJECTION_BLOCK + 1)
    with pytest.raises(ConfigError, match="expected"):
        RademacherProjector(dim_in, 32)(torch.zeros(1, dim_in + 1))


def test_projection_preserves_norms_and_inner_products_within_jl_bounds() -> None:
    """Rademacher JL (Achlioptas 2003): P(|‖xP‖²/‖x‖² − 1| > ε) ≤ 2·exp(−d(ε²/2 − ε³/3)/2).
    With d = 2048 and ε = 0.2 that is 3.9e-8 per vector; over 16 norms and the 2·120 sums and
    differences (polarisation: |⟨xP, yP⟩ − ⟨x, y⟩| ≤ ε for unit x, y) it is ≈ 1e-5, so a
    failure means a bug, not an unlucky seed. The typical error is √(2/d) ≈ 0.031."""
    dim_in, d, n = 20_000, 2048, 16
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn(dim_in, generator=generator)  # correlated rows: non-zero inner products
    x = torch.randn(n, dim_in, generator=generator) + 0.7 * shared
    x = (x / x.norm(dim=1, keepdim=True)).double()
    y = RademacherProjector(dim_in, d, seed=11, chunk_rows=8 * PROJECTION_BLOCK,
                            max_cache_bytes=0)(x.float()).double()
    ratio = (y * y).sum(dim=1)  # ‖x‖ = 1
    assert (ratio - 1).abs().max().item() < 0.2
    assert ((ratio - 1).square().mean().sqrt().item()) < 2 * math.sqrt(2 / d)
    gram, projected = x @ x.T, y @ y.T
    assert gram.triu(1).abs().max().item() > 0.2  # there are inner products to preserve
    assert (projected - gram).abs().max().item() < 0.2


# --------------------------------------------------------------------------- gradient_features
def test_gradient_features_are_normalised_deterministic_and_batch_independent(
        lora_model: ModelAndTokenizer) -> None:
    model, tokenizer = lora_model
    prompts, responses = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    hooks = PerExampleGradients(model)
    dim_in = hooks.dim
    hooks.close()
    projector = RademacherProjector(dim_in, 32, seed=5)

    def run(batch_size: int, state: AdamState | None = None, order: slice = slice(None)
            ) -> np.ndarray:
        return gradient_features(model, tokenizer, prompts[order], responses[order], projector,
                                 state, batch_size=batch_size, max_length=MAX_LENGTH)

    features = run(2)
    assert features.shape == (len(PAIRS), 32) and features.dtype == np.float32
    assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert np.array_equal(run(2), features)
    np.testing.assert_allclose(run(1), features, atol=1e-5)  # no dependence on the batch
    np.testing.assert_allclose(run(3, order=slice(None, None, -1)), features[::-1], atol=1e-5)
    reference = projector(loop_gradients(model, _examples(tokenizer), tokenizer.pad_token_id))
    reference = reference / reference.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(features, reference.numpy(), atol=1e-5)

    generator = torch.Generator().manual_seed(1)
    state = AdamState(torch.randn(dim_in, generator=generator) * 1e-3,
                      torch.rand(dim_in, generator=generator) * 1e-6)
    preconditioned = run(2, state)
    assert np.allclose(np.linalg.norm(preconditioned, axis=1), 1, atol=1e-5)
    assert np.abs(preconditioned - features).max() > 0.1
