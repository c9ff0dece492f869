"""The llama.cpp backend on the real SmolLM2 (chat) and Gemma (base) GGUF files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2, llamacpp_config
from pydantic import ValidationError

from codeens.generation import Generator
from codeens.models import ModelUnavailable, Prompt, SamplingParams
from codeens.models.llamacpp import LlamaCpp
from codeens.storage import Store

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


def test_configured_models_over_one_file_share_one_load(
    smollm2_file: object, tmp_path: Path
) -> None:
    """A generator loads a file once for every configured model over it (other names,
    sampling, chat or base) and frees it when it closes; other options load again."""
    hot = llamacpp_config(SMOLLM2, chat=True, name="hot", n_ctx=512)
    cold = hot.model_copy(update={"name": "cold", "sampling": GREEDY})
    base = llamacpp_config(SMOLLM2, chat=False, name="base", n_ctx=512)
    wide = llamacpp_config(SMOLLM2, chat=True, name="wide", n_ctx=1024)
    generator = Generator(Store(tmp_path / "log.db"), "run")
    try:
        models = [generator.model(c) for c in (hot, cold, base)]
        assert len({id(m) for m in models}) == 3  # one backend per configured name
        assert [m.complete(ADD_PROMPT, 1, GREEDY, seed=0)[0].text for m in models]
        assert len(generator._pool) == 1
        loaded = {id(m._model()) for m in models if isinstance(m, LlamaCpp)}
        assert len(loaded) == 1
        run = generator.for_run("other")
        assert run.model(hot) is models[0]
        run.model(wide).complete(ADD_PROMPT, 1, GREEDY, seed=0)
        assert len(generator._pool) == 2
    finally:
        generator.close()
    assert len(generator._pool) == 0


def test_an_instance_on_its_own_loads_and_frees_its_own(smollm2_file: object) -> None:
    first = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="a", n_ctx=512))
    second = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="b", n_ctx=512))
    try:
        assert first._model() is not second._model()
        first.complete(ADD_PROMPT, 1, GREEDY, seed=0)
        loaded = first._model()
        assert loaded.decoder.layout is not None
        first.close()
        assert loaded.decoder.layout is None  # its context is freed
        assert second.complete(ADD_PROMPT, 1, GREEDY, seed=0)[0].text  # the other is not
        assert first.complete(ADD_PROMPT, 1, GREEDY, seed=0)[0].text  # loads again
    finally:
        first.close()
        second.close()


LOAD_SMOLLM2 = f"""
from codeens.models import ModelConfig
from codeens.models.llamacpp import LlamaCpp
model = LlamaCpp(ModelConfig(name="m", backend="llamacpp", location={SMOLLM2!r}))
model._model()
model.close()
"""


@pytest.mark.parametrize(
    ("policy", "spin"), [(None, "'1000'"), ("ACTIVE", "'30000000000'"), ("PASSIVE", "'0'")]
)
def test_waiting_threads_spin_briefly_unless_the_user_chose(
    smollm2_file: object, tmp_path: Path, policy: str | None, spin: str
) -> None:
    """What the OpenMP runtime under llama.cpp read when it loaded, as it reports it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SMOLLM2],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"GOMP_SPINCOUNT = {spin}" in proc.stderr


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
