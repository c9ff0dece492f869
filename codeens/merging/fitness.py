"""The fitness extension point of ``codeens merge evolve``: how good is one merged model.

A fitness is a class with a nested pydantic ``Options`` (the keys of the recipe's
``fitness`` section besides ``kind``) and one method, :meth:`Fitness.score`, that gets a
checkpoint directory and returns a number to maximise. Fitnesses register under the
entry-point group ``codeens.merge_fitness`` (the built-in ``pass-rate`` too) and are
found by :data:`FITNESS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from codeens.registry import Registry

if TYPE_CHECKING:
    from codeens.config import Config
    from codeens.storage import Store


@dataclass(frozen=True)
class Candidate:
    """One model to score: a merge the search built, or a source model alone.

    ``label`` is unique to this model's weights within the search (it names the scratch
    directory and, for pass-rate, the model in the log); ``genome`` is None for a source.
    """

    model_dir: Path
    label: str
    genome: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Score:
    """A fitness value and, when it came from an eval run, that run's id."""

    value: float
    eval_run_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitnessContext:
    """What a fitness may use: the log (under the search's run) and the configuration."""

    store: Store
    run_id: str
    config: Config
    log: Callable[[str], None] = lambda _line: None


class FitnessError(Exception):
    """The fitness cannot be measured here (no sandbox, a model that does not load): the
    search stops; the message is one line."""


class Fitness(ABC):
    """Scores merged checkpoints; one instance serves a whole search."""

    name: ClassVar[str]

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, options: BaseModel, context: FitnessContext) -> None:
        self.options = options
        self.context = context

    @abstractmethod
    def score(self, candidate: Candidate) -> Score:
        """The fitness of ``candidate`` (higher is better)."""


FITNESS: Registry[type[Fitness]] = Registry("codeens.merge_fitness", "fitness")
