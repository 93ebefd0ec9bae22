from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selection_core.spine.config import EmbedConfig
from selection_core.features import embed as embed_module
from selection_core.features.embed import TextEmbedder, embed_texts, resolve_model_location, \
    resume_chunk_rows

TEXTS = ["Convert 5 km to metres.", "Write a Python function that reverses a string.",
         "What is the capital of Velmora?", "Sort these numbers: 3, 1, 2.", "short"]


class ExplodingEmbedder:
    """Stands in for the model when a test asserts the cache answered instead."""

    def encode(self, texts):  # noqa: ANN001 - test double
        raise AssertionError("the model was called although the cache should answer")


def test_default_model_is_the_offline_minilm() -> None:
    location = resolve_model_location(EmbedConfig().model)
    assert Path(location, "modules.json").exists()
    vectors = TextEmbedder().encode(TEXTS)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar = vectors @ vectors.T
    assert similar[0, 3] < 0.99  # distinct prompts stay distinct


def test_cache_makes_a_second_run_free(tmp_path: Path) -> None:
    config = EmbedConfig()
    first = embed_texts(TEXTS, config, "fp1", cache_dir=tmp_path)
    second = embed_texts(TEXTS, config, "fp1", cache_dir=tmp_path, embedder=ExplodingEmbedder())
    assert np.array_equal(first, second)
    # a different text field or content is a different cache entry
    with pytest.raises(AssertionError, match="cache should answer"):
        embed_texts(TEXTS, EmbedConfig(text="prompt+response"), "fp1", cache_dir=tmp_path,
                    embedder=ExplodingEmbedder())
    # batch size and device do not change the result, so they share the entry
    embed_texts(TEXTS, EmbedConfig(batch_size=2, device="cpu"), "fp1", cache_dir=tmp_path,
                embedder=ExplodingEmbedder())


def test_interrupted_embedding_resumes_from_finished_chunks(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_module, "CHUNK_ROWS", 2)
    seen: list[int] = []

    class Flaky:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def encode(self, texts):  # noqa: ANN001 - test double
            seen.append(len(texts))
            if self.fail and len(seen) == 2:
                raise KeyboardInterrupt
            return np.ones((len(texts), 3), dtype=np.float32)

    with pytest.raises(KeyboardInterrupt):
        embed_texts(TEXTS, EmbedConfig(), "fp2", cache_dir=tmp_path, embedder=Flaky(True))
    seen.clear()
    vectors = embed_texts(TEXTS, EmbedConfig(), "fp2", cache_dir=tmp_path, embedder=Flaky(False))
    assert seen == [2, 1]  # chunk 0 came from disk
    assert vectors.shape == (5, 3)


def test_an_interrupted_small_pool_keeps_a_twentieth_per_chunk(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(2000)]
    calls: list[int] = []

    class Interrupted:
        def encode(self, batch):  # noqa: ANN001 - test double
            calls.append(len(batch))
            if len(calls) == 4:
                raise KeyboardInterrupt
            return np.ones((len(batch), 3), dtype=np.float32)

    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts, EmbedConfig(), "fp-resume", cache_dir=tmp_path, embedder=Interrupted())
    saved = sorted(tmp_path.glob("embeddings/*/chunk_*.npy"))
    assert calls == [100, 100, 100, 100] and len(saved) == 3  # 300 of 2000 rows kept
    assert (resume_chunk_rows(100), resume_chunk_rows(2000), resume_chunk_rows(10 ** 6)) == \
        (64, 100, 4096)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer BERT built from a config, with MiniLM's tokenizer (no download)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_location("default"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_hf_pooling_ignores_padding(tiny_encoder: Path, pooling: str) -> None:
    from transformers import AutoModel, AutoTokenizer

    embedder = TextEmbedder(str(tiny_encoder), pooling=pooling, normalize=False, batch_size=8,
                            device="cpu")
    batched = embedder.encode(TEXTS)
    model = AutoModel.from_pretrained(tiny_encoder).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    for text, row in zip(TEXTS, batched, strict=True):
        with torch.no_grad():
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        expected = {"mean": hidden.mean(0), "last": hidden[-1], "cls": hidden[0]}[pooling]
        assert np.allclose(row, expected.numpy(), atol=1e-5)
