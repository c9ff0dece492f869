"""Tiny real Llama-architecture checkpoints for tests: config, safetensors, tokenizer.

``build_tiny_llama(out_dir)`` writes a directory that ``AutoModelForCausalLM`` and
``AutoTokenizer`` load like any hub checkpoint: a 2-layer Llama with hidden size 32 and a
byte-level BPE tokenizer trained here on a few lines of Python (so any text encodes).
The same ``seed`` gives the same weights; the tokenizer does not depend on the seed, so
checkpoints built with different seeds share one vocabulary and can be merged.

Nothing here is a fixture: test modules (merging, MoE) wrap it in their own session
fixtures. It holds no asserts and opts out of assertion rewriting (PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def sub(a: int, b: int) -> int:\n    return a - b\n",
    '    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n    """\n',
    "for i in range(10):\n    print(i * i)\n",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
    "Write a Python function that returns the sum of two numbers.",
] * 20
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build_tokenizer(out_dir: Path) -> object:
    """Train the byte-level BPE tokenizer and save it into ``out_dir``; return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def build_tiny_llama(
    out_dir: Path,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    *,
    intermediate_size: int | None = None,
    tie_word_embeddings: bool = False,
) -> Path:
    """Write a tiny random Llama checkpoint (safetensors) plus tokenizer to ``out_dir``.

    Returns ``out_dir``. ``tie_word_embeddings=True`` leaves ``lm_head`` out of the file,
    as SmolLM2 does.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    vocab = len(tokenizer)  # type: ignore[arg-type]
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out_dir))
    return out_dir
