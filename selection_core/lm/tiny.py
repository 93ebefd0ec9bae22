"""Tiny randomly initialised Llama models built in code, for tests and CPU demos (no download).

Why: scorers, LoRA training and gradient features need a real transformers model and tokenizer
to exercise their code paths; these are a few hundred kilobytes, build in well under a second and
are identical for a given seed.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders
from tokenizers.models import BPE
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from .llama2c import save_pretrained_atomic

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS)  # ids 0, 1, 2; byte b is id 3 + b
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256
MAX_POSITIONS = 1024
# Zephyr-style turns; the template writes BOS itself, as most real chat templates do.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_byte_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: every UTF-8 byte is one `<0xXX>` token; adds BOS, not EOS.

    A BPE with no merges and byte fallback keeps this exact and dependency-free: any text
    round-trips, and token ids follow the byte values.
    """
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"<0x{byte:02X}>": len(SPECIAL_TOKENS) + byte for byte in range(256)})
    backend = Tokenizer(BPE(vocab=vocab, merges=[], byte_fallback=True))
    backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, bos_token=BOS,
                                   eos_token=EOS, add_bos_token=True, add_eos_token=False,
                                   model_max_length=MAX_POSITIONS,
                                   chat_template=CHAT_TEMPLATE if chat_template else None)


def _tiny_config(hidden_size: int, num_layers: int, num_heads: int, **extra: object) -> LlamaConfig:
    return LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden_size,
                       intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                       num_attention_heads=num_heads, num_key_value_heads=num_heads,
                       max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
                       pad_token_id=SPECIAL_TOKENS.index(PAD),
                       bos_token_id=SPECIAL_TOKENS.index(BOS),
                       eos_token_id=SPECIAL_TOKENS.index(EOS), dtype="float32", **extra)


def build_tiny_causal_lm(out_dir: Path, *, hidden_size: int = 32, num_layers: int = 2,
                         num_heads: int = 4, seed: int = 0, chat_template: bool = True) -> Path:
    """Save a random LlamaForCausalLM plus the byte tokenizer to `out_dir` (safetensors)."""
    config = _tiny_config(hidden_size, num_layers, num_heads)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return save_pretrained_atomic(out_dir, model, build_byte_tokenizer(chat_template))


def build_tiny_reward_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a random LlamaForSequenceClassification (one score per text) with the byte tokenizer."""
    config = _tiny_config(32, 2, 4, num_labels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(config)
    return save_pretrained_atomic(out_dir, model, build_byte_tokenizer(chat_template=True))
