"""What a strategy sees: frozen values and the small protocol that produces them.

A strategy asks its :class:`Context` for samples (``generate``, ``ask``) and for executions
(``execute``, ``run_suite``), reads the values that come back, and returns a
:class:`Decision`. It never writes the log and never sees hidden tests: the context records
every generation and execution as it happens. Every value here is immutable; a candidate
that gains samples or a result is a new value of the same candidate (equal by hash), and
``ctx.candidates()`` always returns the newest values.

This module imports no other strategy module, so strategies, the pipeline and plugins can
all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from codeens.config import Config
from codeens.generation import Generated
from codeens.models.base import ModelConfig, Prompt, SamplingParams, TokenScore
from codeens.problem import Problem
from codeens.progress import Progress
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import TestSuite
from codeens.storage.models import Execution, Generation, Lineage, Run
from codeens.storage.models import Problem as ProblemRow
from codeens.stub import Stub


@dataclass(frozen=True)
class Sample:
    """One completion and what the pipeline took from it: the extracted code (or None) and
    its hash (None for answers that are not candidates: tests, judgements)."""

    model: ModelConfig
    generated: Generated
    code: str | None = None
    code_hash: str | None = None
    origin: str = "sample"

    @property
    def text(self) -> str:
        return self.generated.text

    @property
    def mean_logprob(self) -> float | None:
        return self.generated.mean_logprob

    @property
    def tokens(self) -> int:
        return self.generated.input_tokens + self.generated.output_tokens

    @property
    def cost(self) -> float:
        return self.generated.cost


@dataclass(frozen=True, eq=False)
class Candidate:
    """One distinct program (after normalisation) with every sample that produced it and
    its result on the visible tests once executed. Equal (and hashed) by ``hash``."""

    hash: str
    code: str
    program: str
    samples: tuple[Sample, ...] = ()
    result: ExecutionResult | None = None
    origin: str = "sample"

    @property
    def models(self) -> list[str]:
        return sorted({s.model.name for s in self.samples})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Candidate) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)


@dataclass(frozen=True)
class Question:
    """A request whose answers are no candidates: ``n`` completions of ``prompt``, logged
    under ``<target>/<purpose>``; ``keep`` says what of each answer's text is logged as its
    code (the asserts parsed from it, say)."""

    prompt: Prompt
    purpose: str
    n: int = 1
    params: SamplingParams | None = None
    keep: Callable[[str], str | None] | None = None


@dataclass(frozen=True)
class Answers:
    """What one model said to a question that is not a candidate program (tests to write,
    a yes/no judgement): its samples, or why there are none."""

    model: str
    samples: tuple[Sample, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Likelihood:
    """How likely a model finds a continuation after a prefix, or one line why it cannot
    say (a backend that cannot score, a model that failed, out of time)."""

    model: str
    score: TokenScore | None = None
    error: str = ""


@dataclass(frozen=True)
class Decision:
    """The chosen candidate (or None) and the strategy's reasons, JSON-ready."""

    chosen: Candidate | None
    trace: Mapping[str, Any] = field(default_factory=dict)


class LogReader(Protocol):
    """The history a strategy may read (routing learns from past runs): the reads of
    :class:`codeens.storage.Store` it uses, nothing that writes."""

    def problems(self) -> dict[str, ProblemRow]: ...
    def executions(self, *, limit: int | None, oldest_first: bool) -> Sequence[Execution]: ...
    def runs(self, *, limit: int | None, children: bool) -> Sequence[Run]: ...
    def generations_of(self, models: Sequence[str] | None) -> Sequence[Generation]: ...
    def model_usage(self, exclude_run: str | None) -> dict[str, tuple[float, float, float]]: ...
    def lineage(self, model_dir: str | None) -> Sequence[Lineage]:
        """Where built checkpoints (merges, MoE) came from, newest first."""


class Context(Protocol):
    """One target function's solve, as a strategy works with it."""

    @property
    def problem(self) -> Problem: ...
    @property
    def stub(self) -> Stub: ...
    @property
    def tests(self) -> str:
        """The visible tests' source ('' when there are none)."""

    @property
    def suite(self) -> TestSuite | None: ...
    @property
    def config(self) -> Config: ...
    @property
    def models(self) -> Sequence[ModelConfig]: ...
    @property
    def samples(self) -> int:
        """Samples per model in a first round."""

    @property
    def run_id(self) -> str: ...
    @property
    def deadline(self) -> float | None: ...
    @property
    def progress(self) -> Progress: ...
    @property
    def history(self) -> LogReader: ...
    @property
    def failures(self) -> Mapping[str, str]:
        """Models that failed in this solve, with one line why."""

    @property
    def drawn(self) -> Sequence[Sample]:
        """Every candidate sample so far, in order, rejected ones (code None) included."""

    def prompt(self, feedback: str = "") -> Prompt: ...

    def generate(
        self, model: ModelConfig, n: int, prompt: Prompt | None = None, origin: str = "sample"
    ) -> list[Candidate]:
        """``n`` samples of ``model``; the candidates they map to (newest values)."""

    def ask(self, model: ModelConfig, question: Question) -> Answers:
        """Answers to a question that is not a candidate program."""

    def score(self, model: ModelConfig, prefix: str, continuation: str) -> Likelihood:
        """log p(continuation | prefix) under ``model``, for backends that can score text
        (``Model.can_score``); no sampling, nothing logged."""

    def candidates(self) -> list[Candidate]: ...

    def sample_all(self) -> list[Candidate]:
        """The usual first step: ``samples`` from every model, all executed."""

    def execute(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The same candidates with their results on the visible tests."""

    def run_suite(
        self, candidates: Sequence[Candidate], suite: TestSuite
    ) -> dict[Candidate, ExecutionResult]:
        """Results on another suite (generated tests, say); not kept on the candidates."""

    def note(self, line: str) -> None:
        """One line for the user that survives the progress display."""
