"""The served model names: ``codeens-<strategy>`` for every registered strategy over the
configured ensemble, ``codeens`` for the config's own strategy, and each member by name."""

from __future__ import annotations

from dataclasses import dataclass

from codeens.config import Config
from codeens.models.base import ModelConfig
from codeens.serve.errors import ApiError
from codeens.strategies.base import STRATEGIES

PREFIX = "codeens-"


@dataclass(frozen=True)
class Route:
    """What a model name asks for: a strategy over every member, or one member alone
    (``strategy`` None)."""

    name: str
    strategy: str | None
    members: tuple[ModelConfig, ...]


def served_names(config: Config) -> list[str]:
    """Every name ``GET /v1/models`` lists, strategies first."""
    names = ["codeens", *(PREFIX + s for s in STRATEGIES.names())]
    return names + [m.name for m in config.models if m.name not in names]


def route(config: Config, name: str) -> Route:
    """The route of a requested model name; ApiError 404 (as OpenAI answers) otherwise."""
    members = tuple(config.models)
    if name == "codeens":
        return Route(name, config.strategy, members)
    for member in members:
        if member.name == name:
            return Route(name, None, (member,))
    if name.startswith(PREFIX) and name[len(PREFIX) :] in STRATEGIES.names():
        return Route(name, name[len(PREFIX) :], members)
    raise ApiError(
        404,
        f"the model {name!r} does not exist here; GET /v1/models lists "
        + ", ".join(served_names(config)),
        param="model",
        code="model_not_found",
    )
