"""The solve pipeline: problem -> prompts -> samples -> candidates -> executions -> decision.

:class:`SolveContext` is what a strategy works with for one target function: it generates
samples (logged and cached by :mod:`codeens.generation`), turns them into distinct
candidate programs, and executes those in the sandbox (logged). :func:`solve` runs the
configured strategy for every stub of a problem and records the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

from pydantic import ValidationError

from codeens.config import Config, ConfigError
from codeens.extract import extract_function, normalize
from codeens.generation import Generator, Sample
from codeens.models.base import ModelConfig, Prompt
from codeens.problem import Problem, Stub, fill
from codeens.progress import Progress
from codeens.prompts import solve_prompt
from codeens.recording import execution_row
from codeens.sandbox.backends.base import SANDBOXES, Candidate, Sandbox
from codeens.sandbox.results import ExecutionResult, Limits, Verdict
from codeens.sandbox.runner import run_all
from codeens.sandbox.testfile import TestSuite, parse_test_suite
from codeens.storage import Decision as DecisionRow
from codeens.storage import Problem as ProblemRow
from codeens.storage import Run, Store
from codeens.strategies.base import STRATEGIES, Decision, Strategy


class AllModelsFailed(Exception):
    """No model produced anything; the message lists why each failed."""


@dataclass(eq=False)
class CandidateRecord:
    """One distinct program (after normalisation) and every sample that produced it."""

    hash: str
    code: str
    program: str
    samples: list[Sample] = field(default_factory=list)
    result: ExecutionResult | None = None
    origin: str = "sample"

    @property
    def models(self) -> list[str]:
        return sorted({s.model.name for s in self.samples})


class SolveContext:
    """Everything a strategy needs to produce a decision for one stub."""

    def __init__(
        self,
        *,
        problem: Problem,
        stub: Stub,
        tests: str,
        config: Config,
        models: list[ModelConfig],
        samples: int,
        generator: Generator,
        sandbox: Sandbox,
        store: Store,
        run_id: str,
        progress: Progress,
        deadline: float | None = None,
    ) -> None:
        self.deadline = deadline
        self.problem = problem
        self.stub = stub
        self.tests = tests
        self.config = config
        self.models = models
        self.samples = samples
        self.generator = generator
        self.sandbox = sandbox
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self.failures: dict[str, str] = {}
        self.out_of_time = False
        self.rejected: list[Sample] = []
        self.all_samples: list[Sample] = []
        self._pool: dict[str, CandidateRecord] = {}
        self._next_seed: dict[str, int] = {}
        self.suite: TestSuite | None = parse_test_suite(tests, "visible tests") if tests else None

    def prompt(self, feedback: str = "") -> Prompt:
        return solve_prompt(self.problem, self.stub, self.tests, feedback)

    def generate(
        self, model: ModelConfig, n: int, prompt: Prompt | None = None, origin: str = "sample"
    ) -> list[CandidateRecord]:
        """Sample ``n`` completions from ``model``; return the candidates they map to.

        A model that fails is recorded in :attr:`failures` and yields nothing; the run goes
        on with the others.
        """
        if model.name in self.failures:
            return []
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.out_of_time = True
            return []
        prompt = prompt or self.prompt()
        seed = self._next_seed.get(model.name, self.config.seed)
        self._next_seed[model.name] = seed + n
        self.progress.update(f"{self.stub.name}: {model.name} generating {n} sample(s)")
        try:
            samples = self.generator.sample(model, prompt, n, seed, self.stub.name)
        except Exception as exc:  # any backend failure: report it and go on with the rest
            self.failures[model.name] = _one_line(exc)
            self.progress.note(f"model {model.name} failed: {self.failures[model.name]}")
            return []
        touched = self.ingest(samples, prompt, origin)
        self.store.write(*[s.row for s in samples])
        return touched

    def ingest(
        self, samples: list[Sample], prompt: Prompt, origin: str = "sample"
    ) -> list[CandidateRecord]:
        """Extract each sample's code into the candidate pool (rows are not written)."""
        touched: list[CandidateRecord] = []
        for sample in samples:
            model = sample.model
            prefix = "" if model.chat else prompt.prefix
            code = extract_function(sample.text, self.stub, prefix)
            record = None if code is None else self._add(sample, code, origin)
            if record is None:
                sample.row.code = None
                sample.row.code_hash = None
                self.rejected.append(sample)
            else:
                touched.append(record)
            self.all_samples.append(sample)
        return list(dict.fromkeys(touched))

    def _add(self, sample: Sample, code: str, origin: str) -> CandidateRecord | None:
        digest = hashlib.sha256(normalize(code).encode()).hexdigest()
        sample.row.code = code
        sample.row.code_hash = digest
        record = self._pool.get(digest)
        if record is None:
            # The file's own tests and __main__ blocks run from the test side, not here.
            try:
                program = fill(self.problem, {self.stub.name: code}, keep_tests=False)
            except ValueError:
                return None
            record = CandidateRecord(digest, code, program, origin=origin)
            self._pool[digest] = record
        record.samples.append(sample)
        return record

    def candidates(self) -> list[CandidateRecord]:
        return list(self._pool.values())

    def sample_all(self) -> list[CandidateRecord]:
        """The usual first step: ``samples`` from every model, all executed; the pool."""
        for model in self.models:
            self.generate(model, self.samples)
        candidates = self.candidates()
        self.execute(candidates)
        return candidates

    def execute(self, candidates: list[CandidateRecord]) -> None:
        """Run every not yet executed candidate against the visible tests."""
        todo = [c for c in candidates if c.result is None]
        if self.suite is None or not todo:
            return
        for record, result in self.run_suite(todo, self.suite).items():
            record.result = result

    def run_suite(
        self, candidates: list[CandidateRecord], suite: TestSuite
    ) -> dict[CandidateRecord, ExecutionResult]:
        """Run candidates against any suite (generated tests, say); every run is logged.

        The results are returned, not stored on the records, which keep their result on
        the visible tests.
        """
        if not candidates:
            return {}
        self.progress.update(
            f"{self.stub.name}: running {len(candidates)} candidate(s) in the sandbox"
        )
        by_label = {f"{self.stub.name}#{c.hash[:12]}": c for c in candidates}
        items = [Candidate(label, c.program) for label, c in by_label.items()]
        results: dict[CandidateRecord, ExecutionResult] = {}
        for result in run_all(self.sandbox, items, suite):
            results[by_label[result.candidate]] = result
            record = by_label[result.candidate]
            row = execution_row(result, self.run_id, target=self.stub.name, code_hash=record.hash)
            self.store.write(row)
        return results


@dataclass
class TargetOutcome:
    """What happened for one stub."""

    stub: Stub
    status: str  # solved | unsolved | unverified
    decision: Decision
    context: SolveContext


@dataclass
class SolveReport:
    """The outcome of a whole run."""

    run_id: str
    status: str
    solution: str
    targets: list[TargetOutcome]
    wall_s: float
    input_tokens: int
    output_tokens: int
    cost: float
    failures: dict[str, str]


def status_of(decision: Decision, tests: str) -> str:
    chosen = decision.chosen
    if chosen is None:
        return "unsolved"
    if not tests.strip() or chosen.result is None or chosen.result.tests_total == 0:
        return "unverified"
    return "solved" if chosen.result.verdict is Verdict.PASSED else "unsolved"


def open_sandbox(config: Config) -> Sandbox:
    factory = SANDBOXES.get(config.sandbox.backend)
    limits = Limits(timeout=config.sandbox.timeout, memory_mb=config.sandbox.memory_mb)
    if config.sandbox.image and config.sandbox.backend == "docker":
        return factory(limits, config.sandbox.workers, image=config.sandbox.image)  # type: ignore[call-arg]
    return factory(limits, config.sandbox.workers)


def solve(
    problem: Problem,
    config: Config,
    *,
    models: list[ModelConfig],
    strategy: Strategy,
    samples: int,
    store: Store,
    progress: Progress,
    kind: str = "solve",
    budget_s: float | None = None,
    run_id: str | None = None,
    parent_id: str | None = None,
    sandbox: Sandbox | None = None,
    generator: Generator | None = None,
) -> SolveReport:
    """Run ``strategy`` on every stub of ``problem``; everything lands in ``store``.

    With ``budget_s``, no generation starts after that many seconds; what was found by
    then is decided on as usual. A caller running many solves (an eval) passes its own
    ``run_id`` and ``parent_id``, an open ``sandbox`` and a ``generator`` whose loaded
    models are shared (see :meth:`Generator.for_run`); they stay open afterwards.
    """
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s
    run_id = run_id or uuid.uuid4().hex[:12]
    problem_hash = hashlib.sha256(problem.source.encode()).hexdigest()
    run = Run(
        id=run_id,
        kind=kind,
        problem_hash=problem_hash,
        problem_path=str(problem.path),
        strategy=strategy.name,
        models_json=json.dumps([m.name for m in models]),
        config_json=config.model_dump_json(),
        parent_id=parent_id,
    )
    store.write(
        ProblemRow(
            hash=problem_hash,
            path=str(problem.path),
            source=problem.source,
            visible_tests=problem.visible_tests,
        ),
        run,
    )
    own_generator = generator is None
    generator = Generator(store, run_id) if generator is None else generator.for_run(run_id)
    targets: list[TargetOutcome] = []
    solutions: dict[str, str] = {}
    failures: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            if sandbox is None:
                sandbox = stack.enter_context(open_sandbox(config))
            for stub in problem.stubs:
                tests = problem.tests_for(stub.name)
                ctx = SolveContext(
                    problem=problem,
                    stub=stub,
                    tests=tests,
                    config=config,
                    models=[m for m in models if m.name not in failures],
                    samples=samples,
                    generator=generator,
                    sandbox=sandbox,
                    store=store,
                    run_id=run_id,
                    progress=progress,
                    deadline=deadline,
                )
                decision = strategy.solve(ctx)
                if decision.chosen is None and ctx.suite is None and ctx.candidates():
                    # Nothing could be verified: offer the program most samples agree on.
                    best = max(ctx.candidates(), key=lambda c: len(c.samples))
                    decision.chosen = best
                    decision.trace["fallback"] = "no visible tests: the most frequent program"
                failures.update(ctx.failures)
                status = status_of(decision, tests)
                targets.append(TargetOutcome(stub, status, decision, ctx))
                store.write(_decision_row(run_id, stub, strategy, status, decision))
                if decision.chosen is not None:
                    solutions[stub.name] = decision.chosen.code
                if (
                    not ctx.all_samples
                    and not ctx.out_of_time
                    and len(ctx.failures) == len(ctx.models)
                ):
                    raise AllModelsFailed(
                        "every model failed: "
                        + "; ".join(f"{k}: {v}" for k, v in ctx.failures.items())
                    )
    finally:
        if own_generator:
            generator.close()
        report = _finish(run, problem, targets, solutions, failures, started, store)
        store.write(run)
    return report


def _decision_row(
    run_id: str, stub: Stub, strategy: Strategy, status: str, decision: Decision
) -> DecisionRow:
    return DecisionRow(
        run_id=run_id,
        target=stub.name,
        strategy=strategy.name,
        status=status,
        chosen_hash=decision.chosen.hash if decision.chosen else None,
        trace_json=json.dumps(decision.trace, default=str),
    )


def _finish(
    run: Run,
    problem: Problem,
    targets: list[TargetOutcome],
    solutions: dict[str, str],
    failures: dict[str, str],
    started: float,
    store: Store,
) -> SolveReport:
    # Every generation of the run counts, including a strategy's own calls (judges, tests).
    rows = list(store.generations(run.id))
    statuses = [t.status for t in targets]
    if len(targets) < len(problem.stubs):
        status = "failed"
    elif all(s == "solved" for s in statuses):
        status = "solved"
    elif "unsolved" in statuses:
        status = "unsolved"
    else:
        status = "unverified"
    solution = fill(problem, solutions) if solutions else problem.source
    run.status = status
    run.wall_s = time.monotonic() - started
    run.input_tokens = sum(r.input_tokens for r in rows)
    run.output_tokens = sum(r.output_tokens for r in rows)
    run.cost = sum(r.cost for r in rows)
    run.solution = solution
    run.summary_json = json.dumps({t.stub.name: t.status for t in targets} | {"failures": failures})
    return SolveReport(
        run_id=run.id,
        status=status,
        solution=solution,
        targets=targets,
        wall_s=run.wall_s,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost=run.cost,
        failures=failures,
    )


def load_strategy(name: str, config: Config) -> Strategy:
    """The named strategy with its ``[strategies.NAME]`` options; ConfigError if invalid."""
    factory = STRATEGIES.get(name)
    try:
        return factory(dict(config.strategies.get(name, {})))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        what = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"[strategies.{name}] {where}: {what}") from exc


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
