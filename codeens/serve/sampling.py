"""A request's sampling parameters applied to the members it asks.

``temperature``, ``top_p``, ``max_tokens`` (or ``max_completion_tokens``) and ``stop``
replace the same fields of every asked member's configured sampling; what the request
leaves out keeps the member's own value. ``seed`` replaces the config's base seed (sample
``i`` of a member draws with ``seed + i``). ``n`` is the number of choices, not of
samples: see :mod:`codeens.serve.stubs` and :mod:`codeens.serve.chat`.
"""

from __future__ import annotations

from codeens.config import Config, ConfigError, override
from codeens.models.base import ModelConfig
from codeens.serve.errors import ApiError
from codeens.serve.protocol import ChatRequest


def sampled_members(
    request: ChatRequest, members: tuple[ModelConfig, ...]
) -> tuple[ModelConfig, ...]:
    """The members with the request's sampling parameters in their ``sampling``."""
    values: dict[str, object] = {
        "sampling.temperature": request.temperature,
        "sampling.top_p": request.top_p,
        "sampling.max_tokens": request.token_limit,
        "sampling.stop": request.stops,
    }
    try:
        return tuple(override(m, values) for m in members)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from exc


def seeded(request: ChatRequest, config: Config) -> Config:
    """The config with the request's seed, if it gave one."""
    return override(config, {"seed": request.seed})
