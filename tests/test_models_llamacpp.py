"""The llama.cpp backend on the real SmolLM2 (chat) and Gemma (base) GGUF files."""

from __future__ import annotations

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2, llamacpp_config
from pydantic import ValidationError

from codeens.models import ModelUnavailable, Prompt, SamplingParams
from codeens.models.llamacpp import LlamaCpp

pytest_plugins = ["models_fixtures"]

SAMPLED = SamplingParams(temperature=0.8, max_tokens=32)
GREEDY = SamplingParams(temperature=0.0, max_tokens=32)


def test_chat_completion_has_text_and_token_counts(smollm2: LlamaCpp) -> None:
    out = smollm2.complete(ADD_PROMPT, 2, SAMPLED, seed=11)
    assert len(out) == 2
    for i, done in enumerate(out):
        assert done.text.strip()
        assert done.input_tokens > 10  # system + user turns through the GGUF's template
        assert 0 < done.output_tokens <= 32
        assert done.finish_reason in {"stop", "length"}
        assert done.mean_logprob is None  # logprobs are opt-in for llama.cpp
        assert done.extra["seed"] == 11 + i


def test_base_completion_continues_the_prefix(gemma: LlamaCpp) -> None:
    [done] = gemma.complete(ADD_PROMPT, 1, GREEDY, seed=0)
    assert done.text.strip()
    assert done.input_tokens > 5
    assert 0 < done.output_tokens <= 32
    # Only the continuation comes back, not the prefix again.
    assert not done.text.startswith("def add")


def test_same_seed_gives_same_text(smollm2: LlamaCpp, gemma: LlamaCpp) -> None:
    for model in (smollm2, gemma):
        first = [c.text for c in model.complete(ADD_PROMPT, 2, SAMPLED, seed=5)]
        again = [c.text for c in model.complete(ADD_PROMPT, 2, SAMPLED, seed=5)]
        assert first == again


def test_different_seeds_can_differ(smollm2: LlamaCpp) -> None:
    out = smollm2.complete(ADD_PROMPT, 6, SamplingParams(temperature=0.8, max_tokens=16), seed=0)
    assert len(out) == 6
    assert len({c.text for c in out}) > 1
    assert [c.extra["seed"] for c in out] == list(range(6))


def test_greedy_generates_once_and_repeats(smollm2: LlamaCpp) -> None:
    out = smollm2.complete(ADD_PROMPT, 3, GREEDY, seed=1)
    assert len(out) == 3
    assert len({c.text for c in out}) == 1
    assert out[0].output_tokens > 0 and "copy_of" not in out[0].extra
    for copy in out[1:]:
        assert (copy.input_tokens, copy.output_tokens, copy.extra["copy_of"]) == (0, 0, 0)


def test_models_are_shared_per_process(smollm2: LlamaCpp) -> None:
    """A second instance over the same file and options reuses the loaded model."""
    other = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="again", n_ctx=1024))
    try:
        assert other._model() is smollm2._model()
    finally:
        other.close()
    assert smollm2.complete(ADD_PROMPT, 1, GREEDY, seed=0)[0].text  # still loaded


def test_logprobs_option_reports_a_mean(smollm2_file: object) -> None:
    for chat in (True, False):
        model = LlamaCpp(llamacpp_config(SMOLLM2, chat=chat, n_ctx=512, logprobs=True))
        try:
            [done] = model.complete(ADD_PROMPT, 1, SamplingParams(max_tokens=6), seed=3)
        finally:
            model.close()
        assert done.mean_logprob is not None and done.mean_logprob < 0


def test_missing_file_is_one_clear_line() -> None:
    model = LlamaCpp(llamacpp_config("/nonexistent/model.gguf", chat=True))
    ok, why = model.available()
    assert not ok and why == "model file not found: /nonexistent/model.gguf"
    with pytest.raises(ModelUnavailable, match=r"^model file not found: /nonexistent/model\.gguf$"):
        model.complete(ADD_PROMPT, 1, GREEDY, seed=0)


def test_prompt_beyond_the_context_is_one_line(smollm2_file: object) -> None:
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=False, n_ctx=256))
    long = Prompt(messages=(), prefix="x = 1\n" * 300)
    try:
        with pytest.raises(
            ModelUnavailable, match=r"exceed context window of \d+ \(options.n_ctx\)$"
        ):
            model.complete(long, 1, GREEDY, seed=0)
    finally:
        model.close()


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValidationError, match="n_ctxx"):
        LlamaCpp(llamacpp_config(SMOLLM2, chat=True, n_ctxx=10))
