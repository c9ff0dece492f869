"""A strategy is a chooser over values: driven here by a context of recorded values.

The candidates are built once from recorded completions and run once in the real process
sandbox; the strategies then choose over those frozen values with no model, no log and no
further execution (the context refuses anything that was not recorded).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from codeens.config import Config
from codeens.extract import extract_function, normalize
from codeens.generation import Generated
from codeens.models.base import ModelConfig, Prompt
from codeens.problem import Problem, fill, load_problem
from codeens.progress import Progress
from codeens.prompts import solve_prompt
from codeens.sandbox import testfile
from codeens.sandbox.backends.base import Candidate as Program
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import ExecutionResult, Limits
from codeens.sandbox.testfile import parse_test_suite
from codeens.storage import Store
from codeens.strategies.interface import (
    Answers,
    Candidate,
    Context,
    Likelihood,
    LogReader,
    Question,
    Sample,
)
from codeens.strategies.majority import Majority
from codeens.strategies.vote import Vote
from codeens.stub import Stub
from conftest import REPO

RIGHT = "def add(a, b):\n    return a + b\n"
MINUS = "def add(a, b):\n    return a - b\n"
MINUS_TOO = "def add(x, y):\n    result = x - y\n    return result\n"


class RecordedContext:
    """:class:`Context` over candidates already generated and executed."""

    def __init__(self, problem: Problem, candidates: list[Candidate], history: Store) -> None:
        self._problem = problem
        self._candidates = candidates
        self._history = history
        self.tests = problem.tests_for(problem.stubs[0].name)
        self.suite: testfile.TestSuite | None = parse_test_suite(self.tests)
        self.config = Config()
        self.models: Sequence[ModelConfig] = []
        self.samples = 0
        self.run_id = "recorded"
        self.deadline: float | None = None
        self.progress = Progress(enabled=False)
        self.failures: Mapping[str, str] = {}
        self.drawn: Sequence[Sample] = [s for c in candidates for s in c.samples]

    @property
    def problem(self) -> Problem:
        return self._problem

    @property
    def stub(self) -> Stub:
        return self._problem.stubs[0]

    @property
    def history(self) -> LogReader:
        return self._history

    def prompt(self, feedback: str = "") -> Prompt:
        return solve_prompt(self._problem, self.stub, self.tests, feedback)

    def generate(
        self, model: ModelConfig, n: int, prompt: Prompt | None = None, origin: str = "sample"
    ) -> list[Candidate]:
        raise AssertionError("nothing more was recorded")

    def ask(self, model: ModelConfig, question: Question) -> Answers:
        raise AssertionError("nothing more was recorded")

    def score(self, model: ModelConfig, prefix: str, continuation: str) -> Likelihood:
        raise AssertionError("nothing more was recorded")

    def candidates(self) -> list[Candidate]:
        return list(self._candidates)

    def sample_all(self) -> list[Candidate]:
        return self.candidates()

    def execute(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        recorded = {c.hash: c for c in self._candidates}
        return [recorded[c.hash] for c in candidates]

    def run_suite(
        self, candidates: Sequence[Candidate], suite: testfile.TestSuite
    ) -> dict[Candidate, ExecutionResult]:
        raise AssertionError("nothing more was recorded")

    def note(self, line: str) -> None:
        raise AssertionError(line)


def _sample(code: str, seed: int) -> Sample:
    model = ModelConfig(name="recorded", backend="replay")
    text = f"```python\n{code}```"
    generated = Generated("recorded", "replay", f"key{seed}", "prompt", "{}", seed, text)
    digest = hashlib.sha256(normalize(code).encode()).hexdigest()
    return Sample(model, generated, code, digest)


@pytest.fixture(scope="module")
def recorded() -> tuple[Problem, list[Candidate]]:
    """Five samples (one right, four that subtract in two spellings), run once."""
    problem = load_problem(REPO / "examples" / "problems" / "add.py")
    stub = problem.stubs[0]
    suite = parse_test_suite(problem.tests_for(stub.name))
    pool: dict[str, Candidate] = {}
    for seed, text in enumerate([RIGHT, MINUS, MINUS_TOO, MINUS, MINUS_TOO]):
        code = extract_function(f"```python\n{text}```", stub)
        assert code is not None
        sample = _sample(code, seed)
        assert sample.code_hash is not None
        known = pool.get(sample.code_hash) or Candidate(
            sample.code_hash, code, fill(problem, {stub.name: code}, keep_tests=False)
        )
        pool[known.hash] = dataclasses.replace(known, samples=(*known.samples, sample))
    with ProcessSandbox(Limits(timeout=5.0)) as box:
        executed = [
            dataclasses.replace(c, result=box.run(Program(c.hash[:12], c.program), suite))
            for c in pool.values()
        ]
    return problem, executed


def _context(tmp_path: Path, recorded: tuple[Problem, list[Candidate]]) -> Context:
    return RecordedContext(recorded[0], recorded[1], Store(tmp_path / "log.db"))


def test_majority_chooses_the_largest_behaviour_group(
    tmp_path: Path, recorded: tuple[Problem, list[Candidate]]
) -> None:
    decision = Majority().solve(_context(tmp_path, recorded))
    assert decision.chosen is not None
    assert "a - b" in decision.chosen.code or "x - y" in decision.chosen.code
    groups: Any = decision.trace["groups"]
    assert [g["size"] for g in groups] == [4, 1]


def test_vote_chooses_the_best_pass_rate_over_the_same_values(
    tmp_path: Path, recorded: tuple[Problem, list[Candidate]]
) -> None:
    decision = Vote({"generated_tests": 0}).solve(_context(tmp_path, recorded))
    assert decision.chosen is not None and "return a + b" in decision.chosen.code
    assert decision.chosen.result is not None and decision.chosen.result.pass_rate == 1.0


def test_values_are_frozen_and_equal_by_hash(recorded: tuple[Problem, list[Candidate]]) -> None:
    candidate = recorded[1][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.result = None  # type: ignore[misc]
    fresh = dataclasses.replace(candidate, samples=(), result=None)
    assert fresh == candidate and {fresh: 1}[candidate] == 1
    assert fresh.samples == () and candidate.samples
