"""The transformers backend: a tiny llama built here, and the real SmolLM2 GGUF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2
from tiny_models import build_tiny_llama

from codeens.models import ModelConfig, ModelUnavailable, Prompt, SamplingParams
from codeens.models.llamacpp import LlamaCpp
from codeens.models.locate import CACHE_ENV
from codeens.models.transformers_backend import Transformers

pytest_plugins = ["models_fixtures"]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer llama (hidden size 32) with a BPE tokenizer trained here on a few lines."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def tiny(folder: Path, chat: bool = False, **options: object) -> Transformers:
    return Transformers(
        ModelConfig(
            name="tiny", backend="transformers", location=str(folder), chat=chat, options=options
        )
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_llama: Path) -> Iterator[Transformers]:
    model = tiny(tiny_llama)
    yield model
    model.close()


SAMPLED = SamplingParams(temperature=1.0, max_tokens=12)


def test_n_samples_come_from_one_batched_generate(tiny_model: Transformers) -> None:
    out = tiny_model.complete(ADD_PROMPT, 4, SAMPLED, seed=3)
    assert len(out) == 4
    assert [(c.extra["batch"], c.extra["batch_size"]) for c in out] == [(0, 4)] * 4
    for done in out:
        assert done.input_tokens > 3
        assert 0 <= done.output_tokens <= 12
        assert done.finish_reason in {"stop", "length"}
        if done.output_tokens:
            assert done.mean_logprob is not None and done.mean_logprob < 0


def test_seeds_are_reproducible(tiny_model: Transformers) -> None:
    first = [c.text for c in tiny_model.complete(ADD_PROMPT, 4, SAMPLED, seed=7)]
    again = [c.text for c in tiny_model.complete(ADD_PROMPT, 4, SAMPLED, seed=7)]
    other = [c.text for c in tiny_model.complete(ADD_PROMPT, 4, SAMPLED, seed=8)]
    assert first == again
    assert first != other
    assert len(set(first)) > 1  # samples within one batch differ too


def test_max_batch_splits_generate_calls(tiny_llama: Path) -> None:
    model = tiny(tiny_llama, max_batch=3)
    try:
        out = model.complete(ADD_PROMPT, 5, SAMPLED, seed=0)
    finally:
        model.close()
    assert [c.extra["batch"] for c in out] == [0, 0, 0, 1, 1]
    assert [c.extra["batch_size"] for c in out] == [3, 3, 3, 2, 2]
    assert [c.extra["seed"] for c in out] == [0, 0, 0, 3, 3]


def test_chat_uses_the_tokenizer_template(tiny_llama: Path) -> None:
    chat, base = tiny(tiny_llama, chat=True), tiny(tiny_llama)
    short = Prompt(messages=({"role": "user", "content": "add"},), prefix="add")
    try:
        [from_chat] = chat.complete(short, 1, SAMPLED, seed=0)
        [from_base] = base.complete(short, 1, SAMPLED, seed=0)
    finally:
        chat.close()
        base.close()
    # "<s>user: add\n<s>assistant: " against "add"
    assert from_chat.input_tokens > from_base.input_tokens >= 1


def test_greedy_generates_once(tiny_model: Transformers) -> None:
    out = tiny_model.complete(ADD_PROMPT, 3, SamplingParams(temperature=0, max_tokens=8), 0)
    assert len({c.text for c in out}) == 1
    assert out[0].extra["batch_size"] == 1
    assert [c.output_tokens for c in out][1:] == [0, 0]


def test_missing_directory_is_one_line() -> None:
    model = tiny(Path("/nonexistent/tiny-model"))
    assert model.available() == (False, "model file not found: /nonexistent/tiny-model")
    with pytest.raises(ModelUnavailable, match=r"^model file not found: /nonexistent/tiny-model$"):
        model.complete(ADD_PROMPT, 1, SAMPLED, seed=0)


# --- the real SmolLM2 GGUF through transformers ------------------------------------------


def smollm2_config() -> ModelConfig:
    return ModelConfig(name="smollm2-hf", backend="transformers", location=SMOLLM2, chat=True)


@pytest.fixture(scope="session")
def smollm2_hf(model_cache: Path) -> Iterator[Transformers]:
    """SmolLM2 de-quantized by transformers; the first load converts into the session cache."""
    model = Transformers(smollm2_config())
    model.load()
    yield model
    model.close()


def test_gguf_is_converted_once_then_loaded_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache of its own: the session cache may already hold SmolLM2 (merge and MoE tests).
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = Transformers(smollm2_config())
    try:
        first.load()
    finally:
        first.close()
    assert first.cache_hit is False  # a fresh cache: converted from the GGUF
    cached = first.weights_dir
    assert isinstance(cached, Path) and cached.parent == tmp_path / "models" / "transformers"
    assert (cached / "model.safetensors").is_file() and (cached / "tokenizer.json").is_file()
    assert not list(cached.parent.glob("*.partial"))
    second = Transformers(smollm2_config())
    try:
        second.load()
        assert second.cache_hit is True
        assert second.weights_dir == cached
    finally:
        second.close()


def test_stop_strings_apply_to_the_answer_only(smollm2_hf: Transformers) -> None:
    greedy = SamplingParams(temperature=0, max_tokens=24, stop=("\n",))
    [done] = smollm2_hf.complete(ADD_PROMPT, 1, greedy, seed=0)
    # The chat prompt itself ends in a newline; only the answer's first line counts.
    assert done.text == "```python"
    assert done.finish_reason == "stop"


def test_greedy_parity_with_llamacpp(smollm2_hf: Transformers, smollm2: LlamaCpp) -> None:
    """llama.cpp on the Q4_1 file and torch on its float32 de-quantization agree, greedily.

    They need not: llama.cpp multiplies with quantized Q4_1/Q8 kernels (activations are
    quantized to 8 bits too) and its own RoPE and softmax, torch with dense float32 weights,
    so logits differ by small amounts and a near-tie can flip an argmax, after which the two
    texts part. Observed here: the same 45 prompt tokens (both use the GGUF's chat template)
    and the same first 24 generated tokens. The assertion covers the first 8 tokens'
    worth of text, where a flip is least likely; beyond that only non-emptiness is checked.
    """
    greedy = SamplingParams(temperature=0, max_tokens=24)
    [torch_out] = smollm2_hf.complete(ADD_PROMPT, 1, greedy, seed=0)
    [cpp_out] = smollm2.complete(ADD_PROMPT, 1, greedy, seed=0)
    assert torch_out.text.strip() and cpp_out.text.strip()
    assert torch_out.input_tokens == cpp_out.input_tokens
    assert torch_out.text[:20] == cpp_out.text[:20], (torch_out.text, cpp_out.text)
