"""The strategy interface: how a set of candidates becomes one answer.

A strategy is a subclass of :class:`Strategy` registered under the entry-point group
``codeens.strategies`` (the built-ins are registered there too). It receives a
:class:`~codeens.solve.SolveContext`, which generates candidates from the configured models
and executes them in the sandbox (both logged), and returns a :class:`Decision` whose trace
records why. Strategies never import the benchmark code and never see hidden tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from codeens.registry import Registry

if TYPE_CHECKING:
    from codeens.solve import CandidateRecord, SolveContext


class StrategyCannotRun(Exception):
    """The strategy cannot run with this configuration or history; one line why."""


@dataclass
class Decision:
    """The chosen candidate (or None) and the strategy's reasons."""

    chosen: CandidateRecord | None
    trace: dict[str, Any] = field(default_factory=dict)


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
    def solve(self, ctx: SolveContext) -> Decision:
        """Generate (through ``ctx``), execute, and choose."""


STRATEGIES: Registry[type[Strategy]] = Registry("codeens.strategies", "strategy")
