"""codeens.toml: the models to ask, the strategy, the sandbox. One pydantic model per surface.

With no file, the embedded default applies: the two Qwen2.5-Coder models that ship inside
PyPI packages, run by llama.cpp, so ``codeens solve`` works offline with no configuration.
Every model of the embedded catalog (:mod:`codeens.embedded`) can be named by
``--models`` or a strategy option even when the file does not list it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codeens.embedded import CATALOG, default_models
from codeens.models.base import ModelConfig
from codeens.models.composite import expand
from codeens.sandbox.results import Limits
from codeens.validation import first_error

if TYPE_CHECKING:
    from codeens.sandbox.backends.base import Sandbox

CONFIG_NAME = "codeens.toml"
M = TypeVar("M", bound=BaseModel)


class SandboxConfig(BaseModel):
    """Where and how candidates run.

    A backend's own options (its ``Options`` model, such as docker's ``image``) go under
    ``[sandbox.options.NAME]``; written directly under ``[sandbox]`` they are options of
    the backend named there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field("docker", description="Sandbox backend.")
    workers: int = Field(2, ge=1, le=64, description="Candidates run in parallel.")
    timeout: float = Field(Limits.timeout, gt=0, le=3600, description="Seconds per candidate.")
    memory_mb: int = Field(Limits.memory_mb, ge=32, le=65536, description="Megabytes.")
    options: dict[str, dict[str, object]] = Field(
        default_factory=dict, description="Each backend's own options, by backend name."
    )

    @model_validator(mode="before")
    @classmethod
    def _backend_keys(cls, data: Any) -> Any:
        """Keys of the chosen backend's ``Options`` written directly under ``[sandbox]``."""
        if not isinstance(data, Mapping):
            return data
        own = {k: v for k, v in data.items() if k in cls.model_fields}
        # None is "not set": logs of older versions hold `"image": null` for every backend.
        rest = {k: v for k, v in data.items() if k not in own and v is not None}
        if not rest:
            return own
        backend = str(own.get("backend", cls.model_fields["backend"].default))
        declared = _option_names(backend)
        mine = {k: v for k, v in rest.items() if k in declared}
        options = dict(own.get("options") or {})
        if mine:
            options[backend] = {**mine, **dict(options.get(backend) or {})}
        return {**own, "options": options, **{k: v for k, v in rest.items() if k not in mine}}

    @field_validator("options")
    @classmethod
    def _valid_options(cls, options: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
        from codeens.registry import UnknownName
        from codeens.sandbox.backends.base import backend_options

        for name, table in options.items():
            try:
                backend_options(name, table)
            except UnknownName as exc:
                raise ValueError(str(exc)) from None
            except ValidationError as exc:
                raise ValueError(f"{name}: {first_error(exc)}") from None
        return options

    def limits(self) -> Limits:
        """The per-candidate limits these settings ask for."""
        return Limits(timeout=self.timeout, memory_mb=self.memory_mb)

    def open(self) -> Sandbox:
        """A sandbox of the configured backend, with its options; close it after use."""
        from codeens.sandbox.backends.base import open_sandbox

        options = self.options.get(self.backend, {})
        return open_sandbox(self.backend, self.limits(), self.workers, options)

    def warning(self) -> str | None:
        """The backend's one-line warning about what it cannot contain, if any."""
        from codeens.sandbox.backends.base import SANDBOXES

        return SANDBOXES.get(self.backend).warning()


def _option_names(backend: str) -> set[str]:
    """The option names of a backend (none when it is unknown: the backend check says why)."""
    from codeens.registry import UnknownName
    from codeens.sandbox.backends.base import SANDBOXES

    try:
        options = SANDBOXES.get(backend).Options
    except UnknownName:
        return set()
    return set(options.model_fields) if options is not None else set()


class Config(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelConfig, ...] = Field(default_factory=default_models)
    strategy: str = Field("vote", description="Combination strategy.")
    samples: int = Field(4, ge=1, le=200, description="Candidates per model.")
    seed: int = Field(0, description="Base sampling seed.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    strategies: dict[str, dict[str, object]] = Field(
        default_factory=dict, description="Per-strategy options, by strategy name."
    )

    @field_validator("models")
    @classmethod
    def _composites(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        """Composite models (options ``members``) get their members' configs."""
        by_name = {m.name: m for m in (*models, *(e.config for e in CATALOG))}
        return expand(models, lambda name: by_name.get(name))

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


def override(model: M, values: Mapping[str, object]) -> M:
    """``model`` with the dotted keys of ``values`` replaced ("seed", "sandbox.workers").

    None stands for an option that was not given and changes nothing. The result is
    validated again, so a value outside a field's limits is a ConfigError.
    """
    given = {key: value for key, value in values.items() if value is not None}
    if not given:
        return model
    data = model.model_dump()
    for key, value in given.items():
        *path, last = key.split(".")
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from exc


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
