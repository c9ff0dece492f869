"""Strategies: how a set of candidates becomes one answer, and their registry.

A strategy is a subclass of :class:`Strategy` registered under the entry-point group
``codeens.strategies`` (the built-ins are registered there too). It receives a
:class:`~codeens.strategies.interface.Context`, which generates candidates from the
configured models and executes them in the sandbox (both logged), and returns a frozen
:class:`~codeens.strategies.interface.Decision` whose trace records why. Strategies never
import the benchmark code and never see hidden tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from codeens.registry import Registry
from codeens.strategies.interface import Candidate, Context, Decision

__all__ = ["STRATEGIES", "Candidate", "Context", "Decision", "Strategy", "StrategyCannotRun"]


class StrategyCannotRun(Exception):
    """The strategy cannot run with this configuration or history; one line why."""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Strategy(ABC):
    """Turns generated and executed candidates into one decision."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = self.Options.model_validate(options or {})

    @abstractmethod
    def solve(self, ctx: Context) -> Decision:
        """Generate (through ``ctx``), execute, and choose."""


STRATEGIES: Registry[type[Strategy]] = Registry("codeens.strategies", "strategy")
