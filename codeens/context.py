"""The context a strategy works in for one target function (see strategies/interface.py).

:class:`SolveContext` turns model completions into frozen samples and candidates, runs
candidates in the sandbox through the execution cache, and hands every value to the run's
recorder the moment it is final. Failures, the deadline and seeds are handled here for
every model call a strategy makes, candidate or not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from codeens.config import Config
from codeens.errors import first_line
from codeens.executions import ExecutionCache, Program, run_logged
from codeens.extract import extract_function, normalize
from codeens.generation import Generated, Generator
from codeens.models.base import ModelConfig, Prompt, SamplingParams
from codeens.problem import Problem, fill
from codeens.progress import Progress
from codeens.prompts import solve_prompt
from codeens.recorder import Recorder
from codeens.sandbox.backends.base import Sandbox
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import TestSuite, parse_test_suite
from codeens.strategies.interface import (
    Answers,
    Candidate,
    Likelihood,
    LogReader,
    Question,
    Sample,
)
from codeens.stub import Stub


@dataclass(frozen=True)
class Services:
    """What every target of a run shares: models, sandbox, log and the execution cache."""

    config: Config
    generator: Generator
    sandbox: Sandbox
    recorder: Recorder
    history: LogReader
    progress: Progress
    executions: ExecutionCache | None = None
    deadline: float | None = None


class SolveContext:
    """Implements :class:`codeens.strategies.interface.Context` for one stub."""

    def __init__(
        self,
        services: Services,
        *,
        problem: Problem,
        stub: Stub,
        tests: str,
        models: Sequence[ModelConfig],
        samples: int,
        target: str | None = None,
    ) -> None:
        self._services = services
        self._problem = problem
        self._stub = stub
        self._tests = tests
        self._models = tuple(models)
        self._samples = samples
        self._target = target or stub.name
        self._suite = parse_test_suite(tests, "visible tests") if tests else None
        self._failures: dict[str, str] = {}
        self._drawn: list[Sample] = []
        self._logged: list[int] = []  # the generation row id of each drawn sample
        self._programs: dict[str, str] = {}  # filled programs of codes not yet in the pool
        self._pool: dict[str, Candidate] = {}
        self._next_seed: dict[str, int] = {}
        self.out_of_time = False

    # -- read-only views -------------------------------------------------------------
    @property
    def problem(self) -> Problem:
        return self._problem

    @property
    def stub(self) -> Stub:
        return self._stub

    @property
    def tests(self) -> str:
        return self._tests

    @property
    def suite(self) -> TestSuite | None:
        return self._suite

    @property
    def config(self) -> Config:
        return self._services.config

    @property
    def models(self) -> Sequence[ModelConfig]:
        return self._models

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def run_id(self) -> str:
        return self._services.recorder.run_id or ""

    @property
    def deadline(self) -> float | None:
        return self._services.deadline

    @property
    def progress(self) -> Progress:
        return self._services.progress

    @property
    def history(self) -> LogReader:
        return self._services.history

    @property
    def failures(self) -> Mapping[str, str]:
        return MappingProxyType(self._failures)

    @property
    def drawn(self) -> Sequence[Sample]:
        return tuple(self._drawn)

    def candidates(self) -> list[Candidate]:
        return list(self._pool.values())

    def logged(self) -> list[tuple[int, Sample]]:
        """Each drawn sample with the id of its generation row."""
        return list(zip(self._logged, self._drawn, strict=True))

    def prompt(self, feedback: str = "") -> Prompt:
        return solve_prompt(self._problem, self._stub, self._tests, feedback)

    def note(self, line: str) -> None:
        if self.progress.enabled:
            self.progress.note(line)
        else:
            print(line, file=sys.stderr)

    # -- model calls -----------------------------------------------------------------
    def _call(
        self,
        model: ModelConfig,
        n: int,
        prompt: Prompt,
        seed: int,
        params: SamplingParams | None,
        doing: str,
    ) -> list[Generated] | str:
        """The completions, or one line why there are none (out of time, model failed)."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.out_of_time = True
            return "out of time"
        self.progress.update(f"{self._stub.name}: {model.name} {doing}")
        try:
            return self._services.generator.sample(model, prompt, n, seed, params)
        except Exception as exc:  # any backend failure: report it and go on with the rest
            return first_line(exc)

    def generate(
        self, model: ModelConfig, n: int, prompt: Prompt | None = None, origin: str = "sample"
    ) -> list[Candidate]:
        """``n`` samples of ``model``; the candidates they map to (newest values).

        A model that fails is recorded in :attr:`failures` and yields nothing; the run goes
        on with the others.
        """
        if model.name in self._failures:
            return []
        prompt = prompt or self.prompt()
        seed = self._next_seed.get(model.name, self.config.seed)
        got = self._call(model, n, prompt, seed, None, f"generating {n} sample(s)")
        if isinstance(got, str):
            if not self.out_of_time:
                self._failures[model.name] = got
                self.progress.note(f"model {model.name} failed: {got}")
            return []
        self._next_seed[model.name] = seed + n
        samples = [self._sample(model, g, prompt, origin) for g in got]
        self._logged.extend(self._services.recorder.samples(samples, self._target))
        self._drawn.extend(samples)
        touched: dict[str, None] = {}
        for sample in samples:
            if sample.code is not None and sample.code_hash is not None:
                self._add(sample, origin)
                touched[sample.code_hash] = None
        return [self._pool[h] for h in touched]

    def _sample(self, model: ModelConfig, got: Generated, prompt: Prompt, origin: str) -> Sample:
        """The sample with its extracted code, when a function can be extracted and put in
        the problem (the file's own tests and __main__ blocks run from the test side)."""
        prefix = "" if model.chat else prompt.prefix
        code = extract_function(got.text, self._stub, prefix)
        if code is None:
            return Sample(model, got, origin=origin)
        digest = hashlib.sha256(normalize(code).encode()).hexdigest()
        if digest not in self._pool and digest not in self._programs:
            try:
                self._programs[digest] = fill(
                    self._problem, {self._stub.name: code}, keep_tests=False
                )
            except ValueError:
                return Sample(model, got, origin=origin)
        return Sample(model, got, code, digest, origin)

    def _add(self, sample: Sample, origin: str) -> None:
        assert sample.code is not None and sample.code_hash is not None
        known = self._pool.get(sample.code_hash)
        if known is None:
            program = self._programs.pop(sample.code_hash)
            known = Candidate(sample.code_hash, sample.code, program, origin=origin)
        self._pool[sample.code_hash] = dataclasses.replace(known, samples=(*known.samples, sample))

    def ask(self, model: ModelConfig, question: Question) -> Answers:
        """Answers seeded from the run seed (the same question, the same answers). A model
        that fails here is not a run failure: it may still be fine for candidates."""
        if model.name in self._failures:
            return Answers(model.name, error=self._failures[model.name])
        q = question
        got = self._call(model, q.n, q.prompt, self.config.seed, q.params, q.purpose)
        if isinstance(got, str):
            return Answers(model.name, error=got)
        keep = q.keep or (lambda _text: None)
        samples = tuple(Sample(model, g, keep(g.text), origin=q.purpose) for g in got)
        self._services.recorder.samples(samples, f"{self._target}/{q.purpose}")
        return Answers(model.name, samples)

    def score(self, model: ModelConfig, prefix: str, continuation: str) -> Likelihood:
        """log p(continuation | prefix), or why not. Like :meth:`ask`, a model that cannot
        score is no run failure. Scores are not logged: the strategy's trace holds them."""
        if model.name in self._failures:
            return Likelihood(model.name, error=self._failures[model.name])
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.out_of_time = True
            return Likelihood(model.name, error="out of time")
        self.progress.update(f"{self._stub.name}: {model.name} scoring")
        try:
            got = self._services.generator.model(model).score(prefix, continuation)
        except Exception as exc:  # any backend failure: the strategy says so and goes on
            return Likelihood(model.name, error=first_line(exc))
        return Likelihood(model.name, got)

    def sample_all(self) -> list[Candidate]:
        for model in self._models:
            self.generate(model, self._samples)
        return self.execute(self.candidates())

    # -- executions ------------------------------------------------------------------
    def execute(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The same candidates, each with its result on the visible tests."""
        current = [self._pool.get(c.hash, c) for c in candidates]
        todo = [c for c in current if c.result is None]
        if self._suite is not None and todo:
            for candidate, result in self.run_suite(todo, self._suite).items():
                self._pool[candidate.hash] = dataclasses.replace(
                    self._pool.get(candidate.hash, candidate), result=result
                )
        return [self._pool.get(c.hash, c) for c in current]

    def run_suite(
        self, candidates: Sequence[Candidate], suite: TestSuite
    ) -> dict[Candidate, ExecutionResult]:
        if not candidates:
            return {}
        self.progress.update(
            f"{self._stub.name}: running {len(candidates)} candidate(s) in the sandbox"
        )
        by_label = {f"{self._target}#{c.hash[:12]}": c for c in candidates}
        services = self._services
        results = run_logged(
            services.sandbox,
            [Program(label, c.program, c.hash) for label, c in by_label.items()],
            suite,
            target=self._target,
            recorder=services.recorder,
            cache=services.executions,
        )
        return {by_label[label]: result for label, result in results.items()}
