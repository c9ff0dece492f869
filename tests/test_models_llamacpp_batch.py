"""Batched sampling in the llama.cpp backend, against llama-cpp-python's own calls.

Everything runs on real GGUF files: SmolLM2-135M (fast) for most tests, and the embedded
Qwen2.5-Coder-0.5B for one. The reference is a plain ``llama_cpp.Llama`` over the same
file with the same window, asked through ``create_chat_completion`` / ``create_completion``
exactly as the backend used to ask it, one sample at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2, llamacpp_config

from codeens.models import Completion, ModelUnavailable, Prompt, SamplingParams
from codeens.models.llamacpp import LlamaCpp

pytest_plugins = ["models_fixtures"]

N_CTX = 1024  # the smollm2 fixture's window
GREEDY = SamplingParams(temperature=0.0, max_tokens=48)
SAMPLED = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=24)

# A second request that shares the first one's system turn and user-turn opening.
SUB_PROMPT = Prompt(
    messages=(
        ADD_PROMPT.messages[0],
        {"role": "user", "content": "Write a Python function sub(a, b) that returns a - b."},
    ),
    prefix='def sub(a, b):\n    """Return a minus b."""\n',
)


def _llama(path: Path, n_ctx: int = N_CTX, **kwargs: Any) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count(), verbose=False, **kwargs
    )


@pytest.fixture(scope="module")
def reference(smollm2_file: Path) -> Iterator[Any]:
    """llama-cpp-python's own Llama over SmolLM2, the pre-batching path."""
    llama = _llama(smollm2_file)
    yield llama
    llama.close()


def library(
    llama: Any, prompt: Prompt, chat: bool, params: SamplingParams, seed: int, **extra: Any
) -> tuple[str, int, int, str, dict[str, Any]]:
    """(text, prompt tokens, completion tokens, finish reason, choice) as the old backend
    asked for them: temperature + top_p, top_k 0, min_p 0."""
    common: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": 0,
        "min_p": 0.0,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop),
        "seed": seed,
    }
    if chat:
        response = llama.create_chat_completion(
            messages=[dict(m) for m in prompt.messages], **common, **extra
        )
        text = response["choices"][0]["message"]["content"]
    else:
        response = llama.create_completion(prompt.prefix, **common, **extra)
        text = response["choices"][0]["text"]
    choice = response["choices"][0]
    usage = response["usage"]
    return text, usage["prompt_tokens"], usage["completion_tokens"], choice["finish_reason"], choice


def fields(done: Completion) -> tuple[str, int, int, str]:
    return done.text, done.input_tokens, done.output_tokens, done.finish_reason


@pytest.fixture
def smollm2_base(smollm2_file: Path) -> Iterator[LlamaCpp]:
    """SmolLM2 asked as a base model: it continues ``prompt.prefix``."""
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=False, name="base", n_ctx=N_CTX))
    yield model
    model.close()


def test_single_greedy_sample_is_create_chat_completions(smollm2: LlamaCpp, reference: Any) -> None:
    [done] = smollm2.complete(ADD_PROMPT, 1, GREEDY, seed=0)
    text, prompt_tokens, completion_tokens, finish, _ = library(
        reference, ADD_PROMPT, True, GREEDY, 0
    )
    assert done.text.strip()
    assert fields(done) == (text, prompt_tokens, completion_tokens, finish)


def test_single_greedy_sample_is_create_completions(smollm2_base: LlamaCpp, reference: Any) -> None:
    [done] = smollm2_base.complete(ADD_PROMPT, 1, GREEDY, seed=0)
    expected = library(reference, ADD_PROMPT, False, GREEDY, 0)[:4]
    assert done.text.strip()
    assert fields(done) == expected


def test_a_single_sample_draws_what_the_library_draws_with_its_seed(
    smollm2: LlamaCpp, reference: Any
) -> None:
    """Same chain, same seed, same logits: the same tokens, not just the same distribution."""
    for seed in (3, 7):
        [done] = smollm2.complete(ADD_PROMPT, 1, SAMPLED, seed=seed)
        assert fields(done) == library(reference, ADD_PROMPT, True, SAMPLED, seed)[:4]


def test_same_seed_gives_the_same_batch(smollm2: LlamaCpp) -> None:
    first = smollm2.complete(ADD_PROMPT, 4, SAMPLED, seed=21)
    again = smollm2.complete(ADD_PROMPT, 4, SAMPLED, seed=21)
    assert [fields(c) for c in first] == [fields(c) for c in again]


def test_samples_of_a_batch_differ_and_carry_their_seeds(smollm2: LlamaCpp) -> None:
    out = smollm2.complete(ADD_PROMPT, 4, SAMPLED, seed=100)
    assert [c.extra["seed"] for c in out] == [100, 101, 102, 103]
    assert len({c.text for c in out}) > 1
    other = smollm2.complete(ADD_PROMPT, 4, SAMPLED, seed=200)
    assert [c.text for c in out] != [c.text for c in other]


@pytest.mark.parametrize("unified", [True, False])
def test_more_samples_than_sequences_run_in_chunks(smollm2_file: Path, unified: bool) -> None:
    options = {"n_ctx": 512, "n_seq_max": 2, "kv_unified": unified}
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="chunks", **options))
    try:
        out = model.complete(ADD_PROMPT, 5, SAMPLED, seed=0)
        decoder = model._model().decoder
        evaluated = decoder.evaluated
        again = model.complete(ADD_PROMPT, 5, SAMPLED, seed=0)
    finally:
        model.close()
    assert len(out) == 5
    assert [c.extra["seed"] for c in out] == list(range(5))
    assert all(c.text.strip() and 0 < c.output_tokens <= 24 for c in out)
    assert len({c.text for c in out}) > 1
    assert [fields(c) for c in out] == [fields(c) for c in again]
    # Three chunks: the prompt once, then one token per later chunk for fresh logits.
    assert evaluated == out[0].input_tokens + 2


def test_streams_of_their_own_give_the_library_answer_and_batches(
    smollm2_file: Path, reference: Any
) -> None:
    """kv_unified = false: each sequence in a stream of its own, the prompt copied in."""
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="streams", kv_unified=False))
    try:
        [greedy] = model.complete(ADD_PROMPT, 1, GREEDY, seed=0)
        [sampled] = model.complete(ADD_PROMPT, 1, SAMPLED, seed=7)
        batch = model.complete(ADD_PROMPT, 4, SAMPLED, seed=7)
        again = model.complete(ADD_PROMPT, 4, SAMPLED, seed=7)
        layout = model._model().decoder.layout
    finally:
        model.close()
    assert layout is not None and not layout.unified and layout.streams == 8
    assert fields(greedy) == library(reference, ADD_PROMPT, True, GREEDY, 0)[:4]
    assert fields(sampled) == library(reference, ADD_PROMPT, True, SAMPLED, 7)[:4]
    assert [fields(c) for c in batch] == [fields(c) for c in again]
    assert len({c.text for c in batch}) > 1 and all(c.text.strip() for c in batch)


def test_the_kv_budget_bounds_how_many_run_together(smollm2_file: Path) -> None:
    """Six answers of up to 200 tokens do not fit two 512-token windows at once: they run
    four and two, and the KV cache stays within the budget."""
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="budget", n_ctx=512))
    params = SamplingParams(temperature=0.8, max_tokens=200)
    try:
        out = model.complete(ADD_PROMPT, 6, params, seed=0)
        decoder = model._model().decoder
        evaluated, layout = decoder.evaluated, decoder.layout
    finally:
        model.close()
    assert len(out) == 6 and all(c.text.strip() for c in out)
    assert layout is not None and layout.cells <= 1024
    assert evaluated == out[0].input_tokens + 1  # two chunks: the prompt, then one token


def test_stop_strings_cut_the_text(smollm2: LlamaCpp, reference: Any) -> None:
    [whole] = smollm2.complete(ADD_PROMPT, 1, GREEDY, seed=0)
    assert "\n" in whole.text  # else the stop string below would not be tested
    stopped_params = SamplingParams(temperature=0.0, max_tokens=48, stop=("\n",))
    [stopped] = smollm2.complete(ADD_PROMPT, 1, stopped_params, seed=0)
    assert stopped.text == whole.text[: whole.text.index("\n")]
    assert stopped.finish_reason == "stop"
    assert fields(stopped) == library(reference, ADD_PROMPT, True, stopped_params, 0)[:4]
    sampled = smollm2.complete(
        ADD_PROMPT, 4, SamplingParams(temperature=0.8, max_tokens=48, stop=("\n",)), seed=0
    )
    assert all("\n" not in c.text for c in sampled)


def test_max_tokens_ends_with_length(smollm2: LlamaCpp) -> None:
    out = smollm2.complete(ADD_PROMPT, 3, SamplingParams(temperature=0.8, max_tokens=5), seed=0)
    assert [(c.output_tokens, c.finish_reason) for c in out] == [(5, "length")] * 3


def test_the_window_caps_the_answer_as_in_the_library(smollm2_file: Path) -> None:
    """Prompt + answer never exceed n_ctx: create_completion's cap, and beyond it for a
    window that is no multiple of 256 (a Llama fails there, its arrays hold n_ctx tokens)."""
    long_user = {"role": "user", "content": "Write a Python function add(a, b). " * 15}
    prompt = Prompt(messages=(ADD_PROMPT.messages[0], long_user), prefix="")
    params = SamplingParams(temperature=0.0, max_tokens=400)
    llama = _llama(smollm2_file, n_ctx=256)
    try:
        expected = library(llama, prompt, True, params, 0)[:4]
    finally:
        llama.close()
    for n_ctx in (256, 200):
        model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="window", n_ctx=n_ctx))
        try:
            [done] = model.complete(prompt, 1, params, seed=0)
        finally:
            model.close()
        assert done.input_tokens + done.output_tokens == n_ctx, done  # else nothing was capped
        assert done.finish_reason == "length"
        if n_ctx == 256:
            assert fields(done) == expected
        else:
            assert expected[0].startswith(done.text)


def test_prefix_reuse_does_not_change_the_samples(smollm2_file: Path) -> None:
    def fresh() -> LlamaCpp:
        return LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="reuse", n_ctx=768))

    cold = fresh()
    try:
        cold_out = cold.complete(SUB_PROMPT, 3, SAMPLED, seed=9)
    finally:
        cold.close()  # its only user: the model is freed, the next load starts cold
    warm = fresh()
    try:
        warm.complete(ADD_PROMPT, 2, SAMPLED, seed=1)
        before = warm._model().decoder.evaluated
        warm_out = warm.complete(SUB_PROMPT, 3, SAMPLED, seed=9)
        evaluated = warm._model().decoder.evaluated - before
    finally:
        warm.close()
    assert [fields(c) for c in warm_out] == [fields(c) for c in cold_out]
    # Only the tokens after the shared system turn and user-turn opening were evaluated.
    assert 0 < evaluated < warm_out[0].input_tokens - 10


def test_logprobs_are_the_library_values(smollm2_file: Path) -> None:
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="lp", n_ctx=512, logprobs=True))
    llama = _llama(smollm2_file, n_ctx=512, logits_all=True)
    params = SamplingParams(temperature=0.0, max_tokens=12)
    try:
        [done] = model.complete(ADD_PROMPT, 1, params, seed=0)
        *_, choice = library(llama, ADD_PROMPT, True, params, 0, logprobs=True, top_logprobs=1)
        sampled = model.complete(ADD_PROMPT, 3, SAMPLED, seed=0)
    finally:
        model.close()
        llama.close()
    values = [float(item["logprob"]) for item in choice["logprobs"]["content"]]
    assert done.output_tokens == len(values)
    assert done.mean_logprob == pytest.approx(sum(values) / len(values), abs=1e-4)
    assert all(c.mean_logprob is not None and c.mean_logprob < 0 for c in sampled)


def test_an_empty_prompt_is_one_line(smollm2_base: LlamaCpp) -> None:
    # SmolLM2's vocabulary adds no BOS: an empty prefix leaves nothing to evaluate.
    with pytest.raises(ModelUnavailable, match=r"^llama\.cpp: the prompt is empty"):
        smollm2_base.complete(Prompt(messages=(), prefix=""), 1, GREEDY, seed=0)


@pytest.fixture(scope="module")
def qwen_05b() -> Iterator[Path]:
    """The embedded Qwen2.5-Coder-0.5B file, found through the catalog."""
    from codeens.config import Config, ConfigError
    from codeens.models.locate import resolve

    try:
        config = Config().model("qwen-coder-0.5b")
        path = resolve(config.location)
    except (ConfigError, ModelUnavailable) as exc:
        pytest.skip(f"qwen-coder-0.5b is not available here: {exc}")
    yield path


def test_qwen_batch_of_four_and_greedy_parity(qwen_05b: Path) -> None:
    model = LlamaCpp(llamacpp_config(str(qwen_05b), chat=True, name="qwen", n_ctx=N_CTX))
    llama = _llama(qwen_05b)
    params = SamplingParams(temperature=0.0, max_tokens=32)
    try:
        [done] = model.complete(ADD_PROMPT, 1, params, seed=0)
        expected = library(llama, ADD_PROMPT, True, params, 0)[:4]
        batch = model.complete(ADD_PROMPT, 4, SamplingParams(temperature=0.8, max_tokens=32), 5)
    finally:
        model.close()
        llama.close()
    assert fields(done) == expected
    assert "def add" in done.text
    assert len(batch) == 4 and all(c.text.strip() for c in batch)
    assert all(c.input_tokens == done.input_tokens for c in batch)
