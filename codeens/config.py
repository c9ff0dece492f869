"""codeens.toml: the models to ask, the strategy, the sandbox. One pydantic model per surface.

With no file, the embedded default applies: the two Qwen2.5-Coder models that ship inside
PyPI packages, run by llama.cpp, so ``codeens solve`` works offline with no configuration.
Every model of the embedded catalog (:mod:`codeens.embedded`) can be named by
``--models`` or a strategy option even when the file does not list it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeens.embedded import CATALOG, default_models
from codeens.models.base import ModelConfig
from codeens.validation import first_error

CONFIG_NAME = "codeens.toml"


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

    models: tuple[ModelConfig, ...] = Field(default_factory=default_models)
    strategy: str = "vote"
    samples: int = Field(4, ge=1, le=200, description="Candidates per model.")
    seed: int = 0
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    strategies: dict[str, dict[str, object]] = Field(
        default_factory=dict, description="Per-strategy options, by strategy name."
    )

    def model(self, name: str) -> ModelConfig:
        """The configured model called ``name``, else the embedded one of that name."""
        for model in (*self.models, *(m.config for m in CATALOG)):
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models)
        embedded = ", ".join(m.name for m in CATALOG)
        raise ConfigError(f"unknown model {name!r} (configured: {known}; embedded: {embedded})")


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
