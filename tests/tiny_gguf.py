"""Tiny real llama-architecture GGUF files for tests, loadable by llama-cpp-python.

``build_tiny_gguf(path)`` writes a GGUF file that ``llama_cpp.Llama(model_path=...)``
loads like any downloaded model: a 2-layer llama with hidden size 32 (float32, random
normal * 0.02 from ``seed``; norms are ones) and the byte-level BPE tokenizer of
``tests/tiny_models.py`` trained on its CORPUS, so any text tokenizes and round-trips.
``vocab_size`` changes the number of merges, so two sizes give two different
vocabularies (a token of the larger one is several tokens of the smaller one). The same
arguments give byte-identical files.

llama.cpp notes: the tokenizer is stored as ``tokenizer.ggml.model = "gpt2"`` with
``tokenizer.ggml.pre = "gpt-2"`` (the GPT-2 split regex, the one the HF ByteLevel
pre-tokenizer uses; "default" selects a different split), tokens in the byte-level
*unicode* form of the HF vocab ("Ġ" for a space), merges as "a b" strings, and the
special tokens typed CONTROL so that ``detokenize`` leaves them out unless asked.

Nothing here is a fixture and it holds no asserts (PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import CHAT_TEMPLATE, CORPUS

SPECIAL_TOKENS = ("<s>", "</s>", "<pad>")
CONTEXT_LENGTH = 512
HEAD_COUNT = 4
HEAD_COUNT_KV = 2


def train_tokenizer(vocab_size: int = 320) -> object:
    """Train the byte-level BPE ``tokenizers.Tokenizer`` on CORPUS and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    return bpe


def _tokens_and_merges(bpe: object) -> tuple[list[str], list[str]]:
    """The vocabulary ordered by id and the merges as "a b" strings."""
    model = json.loads(bpe.to_str())["model"]  # type: ignore[attr-defined]
    vocab: dict[str, int] = model["vocab"]
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def build_tiny_gguf(
    path: Path,
    *,
    vocab_size: int = 320,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    chat_template: str = CHAT_TEMPLATE,
) -> Path:
    """Write a tiny random llama GGUF (float32) with its tokenizer to ``path``; return it."""
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpe = train_tokenizer(vocab_size)
    tokens, merges = _tokens_and_merges(bpe)
    n_vocab = len(tokens)
    head_dim = hidden_size // HEAD_COUNT
    ffn = 2 * hidden_size
    special_ids = {t: tokens.index(t) for t in SPECIAL_TOKENS}

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("codeens tiny llama")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(hidden_size)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(HEAD_COUNT)
    writer.add_head_count_kv(HEAD_COUNT_KV)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    control = set(special_ids.values())
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in control else gguf.TokenType.NORMAL for i in range(n_vocab)]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(special_ids["<s>"])
    writer.add_eos_token_id(special_ids["</s>"])
    writer.add_pad_token_id(special_ids["<pad>"])
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    # numpy arrays in PyTorch layout [out, in]; GGUF stores the reversed ggml ne.
    writer.add_tensor("token_embd.weight", normal(n_vocab, hidden_size))
    for i in range(layers):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", ones(hidden_size))
        writer.add_tensor(f"{blk}.attn_q.weight", normal(HEAD_COUNT * head_dim, hidden_size))
        writer.add_tensor(f"{blk}.attn_k.weight", normal(HEAD_COUNT_KV * head_dim, hidden_size))
        writer.add_tensor(f"{blk}.attn_v.weight", normal(HEAD_COUNT_KV * head_dim, hidden_size))
        writer.add_tensor(f"{blk}.attn_output.weight", normal(hidden_size, HEAD_COUNT * head_dim))
        writer.add_tensor(f"{blk}.ffn_norm.weight", ones(hidden_size))
        writer.add_tensor(f"{blk}.ffn_gate.weight", normal(ffn, hidden_size))
        writer.add_tensor(f"{blk}.ffn_up.weight", normal(ffn, hidden_size))
        writer.add_tensor(f"{blk}.ffn_down.weight", normal(hidden_size, ffn))
    writer.add_tensor("output_norm.weight", ones(hidden_size))
    writer.add_tensor("output.weight", normal(n_vocab, hidden_size))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
