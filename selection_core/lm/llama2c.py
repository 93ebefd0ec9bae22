"""Convert Karpathy's llama2.c legacy checkpoints (`.bin` + `tok*.bin`) to Hugging Face Llama dirs.

Why: the llama2.c "tinyllamas" (stories260K, 15M, 42M, 110M) are the smallest real pretrained LMs;
converted once, the perplexity / reward scorers, LoRA training and generation all run them through
the same transformers code path as any hub model, on a CPU, with no download.

Two conventions differ from Hugging Face and are translated here:
- RoPE: llama2.c rotates interleaved pairs (x0, x1), (x2, x3), ... of each head; HF Llama rotates
  the first half against the second half (`rotate_half`). The rows of wq and wk are permuted so
  that pair i of llama2.c becomes dimensions (i, i + head_dim/2) of HF (as transformers'
  `convert_llama_weights_to_hf.permute` does for Meta checkpoints).
- Tokenizer: llama2.c stores sentencepiece pieces with '▁' written as ' ' and their scores, and
  `run.c` encodes by prepending a dummy space, splitting into characters (byte fallback to
  `<0xXX>` tokens) and repeatedly merging the adjacent pair whose merged piece scores highest.
  An HF BPE whose merges are ranked by the merged piece's score reproduces that.
"""
from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, normalizers
from tokenizers.models import BPE
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from ..spine.errors import InputError

SPACE_MARKER = "▁"
SPECIAL_PIECES = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 in llama2.c / sentencepiece Llama vocabs
_HEADER = struct.Struct("<7i")
_VERSIONED_MAGIC = 0x616B3432  # "ak42": llama2.c's newer export format, not the legacy one
_RMS_NORM_EPS = 1e-5  # run.c's rmsnorm epsilon


@dataclass(frozen=True)
class Llama2cConfig:
    """The 7-int header of a legacy llama2.c checkpoint (a negative vocab_size = own classifier)."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.head_dim * self.n_kv_heads


def read_llama2c_checkpoint(path: Path) -> tuple[Llama2cConfig, dict[str, np.ndarray]]:
    """Header and fp32 weights (llama2.c names, per-layer tensors stacked on axis 0)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise InputError("too short for a llama2.c checkpoint header", path=str(path))
    values = _HEADER.unpack_from(data)
    if values[0] == _VERSIONED_MAGIC:
        raise InputError("this is a versioned llama2.c export (magic 'ak42'); only the legacy "
                         "format (export.py --version 0) is supported", path=str(path))
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = values
    if min(dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len) <= 0 \
            or dim % n_heads or n_heads % n_kv_heads or (dim // n_heads) % 2:
        raise InputError(f"implausible llama2.c header {values}", path=str(path))
    config = Llama2cConfig(dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len,
                           shared_classifier=vocab_size > 0)

    shapes = _weight_shapes(config)
    expected = _HEADER.size + 4 * sum(math.prod(shape) for shape in shapes.values())
    if len(data) != expected:
        raise InputError(f"file has {len(data)} bytes but header {values} implies {expected}",
                         path=str(path))
    weights: dict[str, np.ndarray] = {}
    offset = _HEADER.size
    for name, shape in shapes.items():
        count = math.prod(shape)
        weights[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(shape)
        offset += 4 * count
    return config, weights


def _weight_shapes(c: Llama2cConfig) -> dict[str, tuple[int, ...]]:
    """Tensors in the order llama2.c's legacy export writes them."""
    shapes = {
        "token_embedding": (c.vocab_size, c.dim),
        "rms_att": (c.n_layers, c.dim),
        "wq": (c.n_layers, c.dim, c.dim),
        "wk": (c.n_layers, c.kv_dim, c.dim),
        "wv": (c.n_layers, c.kv_dim, c.dim),
        "wo": (c.n_layers, c.dim, c.dim),
        "rms_ffn": (c.n_layers, c.dim),
        "w1": (c.n_layers, c.hidden_dim, c.dim),
        "w2": (c.n_layers, c.dim, c.hidden_dim),
        "w3": (c.n_layers, c.hidden_dim, c.dim),
        "rms_final": (c.dim,),
        "freq_cis_real": (c.seq_len, c.head_dim // 2),
        "freq_cis_imag": (c.seq_len, c.head_dim // 2),
    }
    if not c.shared_classifier:
        shapes["wcls"] = (c.vocab_size, c.dim)
    return shapes


def read_llama2c_tokenizer(path: Path, vocab_size: int) -> tuple[list[bytes], list[float]]:
    """Pieces (raw bytes, ' ' for the space marker) and scores of a llama2.c `tok*.bin`."""
    path = Path(path)
    data = path.read_bytes()
    pieces: list[bytes] = []
    scores: list[float] = []
    offset = 4  # int32 max_token_length, only a buffer size hint for run.c
    while offset < len(data):
        if offset + 8 > len(data):
            raise InputError(f"truncated entry for token {len(pieces)}", path=str(path))
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if length < 0 or offset + length > len(data):
            raise InputError(f"bad length {length} for token {len(pieces)}", path=str(path))
        pieces.append(data[offset:offset + length])
        scores.append(score)
        offset += length
    if len(pieces) != vocab_size:
        raise InputError(f"tokenizer has {len(pieces)} tokens but the model expects {vocab_size}; "
                         "pass the tokenizer the model was trained with", path=str(path))
    return pieces, scores


def build_llama2c_tokenizer(pieces: list[bytes], scores: list[float],
                            model_max_length: int) -> PreTrainedTokenizerFast:
    """A fast tokenizer that encodes and decodes like llama2.c's `run.c` (with BOS, no EOS)."""
    vocab: dict[str, int] = {}
    for token_id, piece in enumerate(pieces):
        if token_id < len(SPECIAL_PIECES):
            text = SPECIAL_PIECES[token_id]
        else:
            try:
                text = piece.decode("utf-8").replace(" ", SPACE_MARKER)
            except UnicodeDecodeError as exc:
                raise InputError(f"token {token_id} is not UTF-8 text ({exc})") from exc
        if text in vocab:
            raise InputError(f"duplicate piece {text!r} (ids {vocab[text]} and {token_id})")
        vocab[text] = token_id

    merges = _merges_by_score(vocab, scores)
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True,
                            byte_fallback=True))
    # Prepend + Replace (not Metaspace, which skips the dummy prefix when the text already starts
    # with a space) so " x" encodes as "▁▁x" exactly like run.c.
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE_MARKER),
                                               normalizers.Replace(" ", SPACE_MARKER)])
    backend.decoder = decoders.Sequence([decoders.Replace(SPACE_MARKER, " "),
                                         decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", add_bos_token=True, add_eos_token=False,
                                   clean_up_tokenization_spaces=False,
                                   model_max_length=model_max_length)


def _merges_by_score(vocab: dict[str, int], scores: list[float]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces, ranked by the merged piece's score (best first).

    run.c merges the best-scoring adjacent pair first; an HF BPE applies merges in rank order, so
    ranking by score (ties by the merged piece's id, then the split point) gives the same result.
    """
    mergeable = {text: token_id for text, token_id in vocab.items()
                 if token_id >= len(SPECIAL_PIECES) and not _is_byte_piece(text)}
    ranked: list[tuple[float, int, int, str, str]] = []
    for text, token_id in mergeable.items():
        for split in range(1, len(text)):
            left, right = text[:split], text[split:]
            if left in mergeable and right in mergeable:
                ranked.append((-scores[token_id], token_id, split, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _is_byte_piece(text: str) -> bool:
    return len(text) == 6 and text.startswith("<0x") and text.endswith(">")


def _permute_rotary(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's output rows from interleaved pairs to HF's [first half | second half]."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, head_dim // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def _rope_theta(config: Llama2cConfig, weights: dict[str, np.ndarray], path: Path) -> float:
    """Recover the RoPE base from the stored frequency tables and check they are standard RoPE."""
    half = config.head_dim // 2
    if half < 2 or config.seq_len < 2:
        return 10000.0  # too small to identify; llama2.c's only base
    inv_freq_1 = math.atan2(weights["freq_cis_imag"][1, 1], weights["freq_cis_real"][1, 1])
    # float32 tables give e.g. 9999.9986: bases are round numbers, so keep 3 significant digits
    theta = float(f"{inv_freq_1 ** (-config.head_dim / 2):.3g}")
    inv_freq = theta ** (-np.arange(half, dtype=np.float64) * 2 / config.head_dim)
    angles = np.arange(config.seq_len, dtype=np.float64)[:, None] * inv_freq[None, :]
    if not (np.allclose(np.cos(angles), weights["freq_cis_real"], atol=1e-3)
            and np.allclose(np.sin(angles), weights["freq_cis_imag"], atol=1e-3)):
        raise InputError("the stored RoPE tables are not standard rotary frequencies",
                         path=str(path))
    return theta


def _hf_state_dict(config: Llama2cConfig,
                   weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=torch.float32)  # a copy: the arrays view read-only bytes

    state = {"model.embed_tokens.weight": tensor(weights["token_embedding"]),
             "model.norm.weight": tensor(weights["rms_final"])}
    for i in range(config.n_layers):
        prefix = f"model.layers.{i}."
        state.update({
            prefix + "input_layernorm.weight": tensor(weights["rms_att"][i]),
            prefix + "self_attn.q_proj.weight":
                tensor(_permute_rotary(weights["wq"][i], config.n_heads)),
            prefix + "self_attn.k_proj.weight":
                tensor(_permute_rotary(weights["wk"][i], config.n_kv_heads)),
            prefix + "self_attn.v_proj.weight": tensor(weights["wv"][i]),
            prefix + "self_attn.o_proj.weight": tensor(weights["wo"][i]),
            prefix + "post_attention_layernorm.weight": tensor(weights["rms_ffn"][i]),
            prefix + "mlp.gate_proj.weight": tensor(weights["w1"][i]),
            prefix + "mlp.down_proj.weight": tensor(weights["w2"][i]),
            prefix + "mlp.up_proj.weight": tensor(weights["w3"][i]),
        })
    classifier = "token_embedding" if config.shared_classifier else "wcls"
    state["lm_head.weight"] = tensor(weights[classifier])
    return state


def convert_llama2c(model_bin: Path, tokenizer_bin: Path, out_dir: Path) -> Path:
    """Write an HF Llama directory (config.json, model.safetensors, tokenizer files) for a .bin.

    Written atomically (see `save_pretrained_atomic`); an existing `out_dir` is replaced.
    """
    model_bin, tokenizer_bin, out_dir = Path(model_bin), Path(tokenizer_bin), Path(out_dir)
    for path in (model_bin, tokenizer_bin):
        if not path.is_file():
            raise InputError("file not found", path=str(path))
    config, weights = read_llama2c_checkpoint(model_bin)
    pieces, scores = read_llama2c_tokenizer(tokenizer_bin, config.vocab_size)
    tokenizer = build_llama2c_tokenizer(pieces, scores, model_max_length=config.seq_len)

    hf_config = LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim, intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, head_dim=config.head_dim,
        max_position_embeddings=config.seq_len, rms_norm_eps=_RMS_NORM_EPS, hidden_act="silu",
        rope_parameters={"rope_type": "default",
                         "rope_theta": _rope_theta(config, weights, model_bin)},
        tie_word_embeddings=config.shared_classifier, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, dtype="float32")
    model = LlamaForCausalLM(hf_config)
    model.load_state_dict(_hf_state_dict(config, weights), strict=True)

    return save_pretrained_atomic(out_dir, model, tokenizer)


def save_pretrained_atomic(out_dir: Path,
                           *parts: PreTrainedModel | PreTrainedTokenizerBase) -> Path:
    """`save_pretrained` each part into a temp dir beside `out_dir`, then rename it into place.

    Why: a reader (or a crash) never sees half a model directory; an existing `out_dir` is
    replaced only once the new one is complete.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for part in parts:
            part.save_pretrained(staging)
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, retired / out_dir.name)
            shutil.rmtree(retired, ignore_errors=True)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
