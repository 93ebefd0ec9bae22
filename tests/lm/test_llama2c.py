"""llama2.c → Hugging Face conversion, checked against an independent numpy forward pass of the
.bin and a Python copy of run.c's tokenizer."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selection_core.spine.errors import InputError
from selection_core.lm.llama2c import convert_llama2c

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STORIES = SHARED / "data" / "models" / "stories260K"
SKIP_REASON = f"shared data not found at {STORIES} (../shared beside the repo)"
needs_shared = pytest.mark.skipif(not (STORIES / "stories260K.bin").is_file(), reason=SKIP_REASON)


# --------------------------------------------------------------------------- references
def reference_logits(model_bin: Path, tokens: list[int]) -> np.ndarray:
    """Logits of every position, computed straight from the .bin as llama2.c's run.c does."""
    dim, hidden, n_layers, n_heads, n_kv, vocab, max_seq = np.fromfile(model_bin, "<i4", 7).tolist()
    shared, vocab = vocab > 0, abs(vocab)
    flat = np.fromfile(model_bin, "<f4", offset=28).astype(np.float64)
    head, kv_dim, seq_len = dim // n_heads, dim // n_heads * n_kv, len(tokens)
    pos = 0

    def take(*shape: int) -> np.ndarray:
        nonlocal pos
        size = int(np.prod(shape))
        pos += size
        return flat[pos - size:pos].reshape(shape)

    emb = take(vocab, dim)
    rms_att, wq, wk = take(n_layers, dim), take(n_layers, dim, dim), take(n_layers, kv_dim, dim)
    wv, wo = take(n_layers, kv_dim, dim), take(n_layers, dim, dim)
    rms_ffn, w1 = take(n_layers, dim), take(n_layers, hidden, dim)
    w2, w3 = take(n_layers, dim, hidden), take(n_layers, hidden, dim)
    rms_final = take(dim)
    cos, sin = take(max_seq, head // 2), take(max_seq, head // 2)
    wcls = emb if shared else take(vocab, dim)

    def rmsnorm(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * gain

    def rope(v: np.ndarray, heads: int) -> np.ndarray:  # interleaved pairs, as complex numbers
        pairs = v.reshape(seq_len, heads, head // 2, 2)
        c, s = cos[:seq_len, None, :], sin[:seq_len, None, :]
        a, b = pairs[..., 0], pairs[..., 1]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(seq_len, heads * head)

    x = emb[tokens]
    future = np.triu(np.full((seq_len, seq_len), -np.inf), 1)
    for layer in range(n_layers):
        h = rmsnorm(x, rms_att[layer])
        q, k = rope(h @ wq[layer].T, n_heads), rope(h @ wk[layer].T, n_kv)
        v = h @ wv[layer].T
        out = np.zeros((seq_len, dim))
        for hd in range(n_heads):
            kv = hd // (n_heads // n_kv)
            qs, ks, vs = (slice(hd * head, (hd + 1) * head), slice(kv * head, (kv + 1) * head),
                          slice(kv * head, (kv + 1) * head))
            scores = q[:, qs] @ k[:, ks].T / np.sqrt(head) + future
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            out[:, qs] = probs / probs.sum(-1, keepdims=True) @ v[:, vs]
        x = x + out @ wo[layer].T
        h = rmsnorm(x, rms_ffn[layer])
        gate = h @ w1[layer].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w3[layer].T)) @ w2[layer].T
    return rmsnorm(x, rms_final) @ wcls.T


def read_tokenizer(path: Path) -> tuple[list[bytes], list[float]]:
    data = path.read_bytes()
    pieces, scores, offset = [], [], 4
    while offset < len(data):
        score, length = struct.unpack_from("<fi", data, offset)
        pieces.append(data[offset + 8:offset + 8 + length])
        scores.append(score)
        offset += 8 + length
    return pieces, scores


def run_c_encode(pieces: list[bytes], scores: list[float], text: str) -> list[int]:
    """run.c's encode(text, bos=1, eos=0): dummy prefix, chars/bytes, best-score merges."""
    lookup = {piece: index for index, piece in enumerate(pieces)}
    tokens = [1] + ([lookup[b" "]] if text else [])
    for char in text:
        raw = char.encode("utf-8")
        tokens += [lookup[raw]] if raw in lookup else [byte + 3 for byte in raw]
    while True:
        best = None
        for i in range(len(tokens) - 1):
            merged = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]])
            if merged is not None and (best is None or scores[merged] > scores[best[1]]):
                best = (i, merged)
        if best is None:
            return tokens
        tokens[best[0]:best[0] + 2] = [best[1]]


# --------------------------------------------------------------------------- synthetic files
def write_checkpoint(path: Path, *, dim: int = 16, hidden: int = 40, n_layers: int = 2,
                     n_heads: int = 4, n_kv: int = 2, vocab: int, seq_len: int = 32,
                     shared: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    head = dim // n_heads
    kv_dim = head * n_kv
    inv_freq = 10000.0 ** (-np.arange(0, head, 2) / head)
    angles = np.arange(seq_len)[:, None] * inv_freq[None, :]
    def weight(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.3, shape)

    def norm(*shape: int) -> np.ndarray:
        return 1 + 0.1 * rng.normal(size=shape)

    parts = [weight(vocab, dim), norm(n_layers, dim), weight(n_layers, dim, dim),
             weight(n_layers, kv_dim, dim), weight(n_layers, kv_dim, dim),
             weight(n_layers, dim, dim), norm(n_layers, dim), weight(n_layers, hidden, dim),
             weight(n_layers, dim, hidden), weight(n_layers, hidden, dim), norm(dim),
             np.cos(angles), np.sin(angles)]
    if not shared:
        parts.append(weight(vocab, dim))
    header = struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv, vocab if shared else -vocab,
                         seq_len)
    path.write_bytes(header + b"".join(p.astype("<f4").tobytes() for p in parts))
    return path


# scores mostly run against id order, so merging by id instead of score gives other tokens
SYNTHETIC_PIECES = [(b" ", -20.0), (b"a", -21.0), (b"b", -22.0), (b"c", -23.0),
                    (b"\xc3\xa9", -24.0), (b" a", -5.0), (b"ab", -4.0), (b"bc", -3.0),
                    (b" ab", -2.0), (b"ca", -1.0), (b"abc", -6.0), (b" \xc3\xa9", -7.0),
                    (b"cab", -0.5)]


def write_tokenizer(path: Path) -> tuple[list[bytes], list[float]]:
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    scores = [0.0] * len(pieces)
    pieces += [piece for piece, _ in SYNTHETIC_PIECES]
    scores += [score for _, score in SYNTHETIC_PIECES]
    body = b"".join(struct.pack("<fi", s, len(p)) + p for p, s in zip(pieces, scores, strict=True))
    path.write_bytes(struct.pack("<i", max(map(len, pieces))) + body)
    return pieces, scores


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("synthetic")
    pieces, scores = write_tokenizer(root / "tok.bin")
    model_bin = write_checkpoint(root / "model.bin", vocab=len(pieces))
    out = convert_llama2c(model_bin, root / "tok.bin", root / "hf")
    return {"root": root, "bin": model_bin, "out": out, "pieces": pieces, "scores": scores}


# --------------------------------------------------------------------------- synthetic tests
def test_synthetic_logits_match_reference(synthetic: dict) -> None:
    model = AutoModelForCausalLM.from_pretrained(synthetic["out"]).eval()
    assert not model.config.tie_word_embeddings  # negative vocab_size: own classifier
    tokens = [1, 260, 271, 12, 100, 259, 265, 5, 270, 263, 261, 268, 3, 1, 2, 262]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
    expected = reference_logits(synthetic["bin"], tokens)
    assert np.abs(logits - expected).max() < 1e-4


def test_synthetic_tokenizer_matches_run_c(synthetic: dict) -> None:
    tokenizer = AutoTokenizer.from_pretrained(synthetic["out"])
    rng = random.Random(0)
    texts = ["", "a", " abc", "abcabc", "ca bc", "café é", "x\ny", "  a  b  "]
    texts += ["".join(rng.choice(" abcé\nd") for _ in range(rng.randint(1, 14)))
              for _ in range(300)]
    for text in texts:
        expected = run_c_encode(synthetic["pieces"], synthetic["scores"], text)
        assert tokenizer(text)["input_ids"] == expected, text
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_convert_replaces_existing_dir_and_leaves_no_temp(synthetic: dict) -> None:
    root = synthetic["root"]
    out = convert_llama2c(synthetic["bin"], root / "tok.bin", root / "again")
    (out / "stale.txt").write_text("old")
    convert_llama2c(synthetic["bin"], root / "tok.bin", out)
    assert not (out / "stale.txt").exists()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]


def test_bad_files_raise_input_error(synthetic: dict, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(synthetic["bin"].read_bytes()[:-4])
    with pytest.raises(InputError, match="bytes"):
        convert_llama2c(truncated, synthetic["root"] / "tok.bin", tmp_path / "out")
    versioned = tmp_path / "v1.bin"
    versioned.write_bytes(struct.pack("<2i", 0x616B3432, 1) + bytes(256))
    with pytest.raises(InputError, match="legacy"):
        convert_llama2c(versioned, synthetic["root"] / "tok.bin", tmp_path / "out")
    small_vocab = write_checkpoint(tmp_path / "small.bin", vocab=100)
    with pytest.raises(InputError, match="expects 100"):
        convert_llama2c(small_vocab, synthetic["root"] / "tok.bin", tmp_path / "out")
    with pytest.raises(InputError, match="not found"):
        convert_llama2c(tmp_path / "missing.bin", synthetic["root"] / "tok.bin", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- real stories260K
@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (STORIES / "stories260K.bin").is_file():
        pytest.skip(SKIP_REASON)
    return convert_llama2c(STORIES / "stories260K.bin", STORIES / "tok512.bin",
                           tmp_path_factory.mktemp("stories") / "hf")


@needs_shared
def test_stories260k_generates_a_story(stories: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(stories).eval()
    tokenizer = AutoTokenizer.from_pretrained(stories)
    inputs = tokenizer("Once upon a time", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=30, do_sample=False)
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    assert text.startswith("Once upon a time, there was a little girl named Lily"), text


@needs_shared
def test_stories260k_logits_match_reference(stories: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(stories).eval()
    tokenizer = AutoTokenizer.from_pretrained(stories)
    tokens = tokenizer("Once upon a time, there was a big dog. He liked to run!")["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
    expected = reference_logits(STORIES / "stories260K.bin", tokens)
    assert np.abs(logits - expected).max() < 1e-4


@needs_shared
def test_stories260k_tokenizer_matches_run_c(stories: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(stories)
    pieces, scores = read_tokenizer(STORIES / "tok512.bin")
    rng = random.Random(0)
    words = ["Once", "upon", "a", "time", "Lily", "little", "the", "happy", "Tim", "named", "play"]
    texts = ["Once upon a time, there was a little girl named Lily.", "Hello  world\n\nThe end",
             " leading space", "trailing space ", "naïve café — “quotes” 123 + 🙂 and 中文", "\t",
             "She said, \"I'm happy!\" (really)"]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(100)]
    texts += ["".join(rng.choice("aehilnorst ,.") for _ in range(rng.randint(1, 20)))
              for _ in range(200)]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids == run_c_encode(pieces, scores, text), text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
