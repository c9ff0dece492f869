"""The model backend interface.

A backend is a subclass of :class:`Model` registered under the entry-point group
``codeens.models`` (built-ins are registered there too, in pyproject.toml). It implements
one method, :meth:`Model.complete`, which returns ``n`` sampled completions for a prompt.
Backends never log, cache or price anything: the generation layer does that for all of
them in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.registry import Registry


class ModelUnavailable(Exception):
    """The model cannot be used here (missing file, package, GPU, endpoint): one line."""


class SamplingParams(BaseModel):
    """How to sample; part of the cache key of every generation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.8, ge=0.0, le=2.0, description="0 means greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(384, ge=1, le=32768, description="New tokens per completion.")
    stop: tuple[str, ...] = Field((), description="Stop sequences.")


class ModelConfig(BaseModel):
    """One entry of ``[[models]]`` in codeens.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The name used on the command line and in the log.")
    backend: str = Field(description="llamacpp, transformers, openai, vllm, replay, ...")
    location: str = Field(
        "",
        description="Path, hub id, URL or 'package:<pkg>/<file>' for files inside a package.",
    )
    chat: bool = Field(True, description="Instruction model with a chat template.")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    price_input_per_mtok: float = Field(0.0, ge=0.0, description="Cost per 1M input tokens.")
    price_output_per_mtok: float = Field(0.0, ge=0.0, description="Cost per 1M output tokens.")
    price_per_second: float = Field(0.0, ge=0.0, description="Cost per second of generation.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific options, validated by it."
    )
    lineage: str = Field(
        "",
        description="The family this model belongs to (one name for two quantisations or "
        "fine-tunes of one model); lineage-aware voting counts a family once. Default: the "
        "model itself (its location, else its name) or, for a logged merge, its sources.",
    )


@dataclass(frozen=True)
class Prompt:
    """What to ask: chat messages for instruction models, a prefix for base models.

    ``prefix`` is text the answer continues (the stub's signature and docstring); chat
    backends ignore it, completion backends send only it.
    """

    messages: tuple[dict[str, str], ...]
    prefix: str

    def text_for(self, chat: bool) -> str:
        """A canonical rendering, used as the cache key and in the log."""
        if not chat:
            return self.prefix
        return "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in self.messages)


@dataclass(frozen=True)
class Completion:
    """One sampled completion and what it cost in tokens."""

    text: str
    input_tokens: int
    output_tokens: int
    mean_logprob: float | None = None
    finish_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenScore:
    """How likely a model finds a continuation after a prefix (teacher-forced): the sum of
    the continuation's token log-probabilities and how many tokens it has."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """The mean per-token log-probability."""
        return self.logprob / self.tokens if self.tokens else 0.0


class CannotScore(ModelUnavailable):
    """The backend cannot score text (see :meth:`Model.score`)."""


class Model(ABC):
    """A loaded model that can sample completions, and, where the backend can, score text."""

    backend: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    can_score: ClassVar[bool] = False
    """Whether :meth:`score` is implemented: known without loading the model."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.options = self.Options.model_validate(config.options)

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        """Return ``n`` completions; sample ``i`` uses seed ``seed + i`` where supported.

        Raises :class:`ModelUnavailable` when the model cannot run at all.
        """

    def score(self, prefix: str, continuation: str) -> TokenScore:
        """log p(continuation | prefix) under the model: one evaluation, no sampling.

        Optional: backends that cannot (this default) raise :class:`CannotScore`; any
        backend raises :class:`ModelUnavailable` when the model cannot run at all.
        """
        raise CannotScore(f"the {self.backend} backend cannot score text")

    def available(self) -> tuple[bool, str]:
        """Whether the model can be used here, without loading it; and why not."""
        return True, ""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model's memory or connections."""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


Backend = Literal["llamacpp", "transformers", "openai", "vllm", "replay"]
MODELS: Registry[type[Model]] = Registry("codeens.models", "model backend")
