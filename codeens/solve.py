"""The solve pipeline: problem -> prompts -> samples -> candidates -> executions -> decision.

:func:`solve` runs the configured strategy on every stub of a problem. Each stub gets a
:class:`~codeens.context.SolveContext`; the strategy generates and executes through it and
returns a frozen :class:`~codeens.strategies.interface.Decision`. Every generation,
execution and decision is logged by the run's :class:`~codeens.recorder.Recorder` as it
becomes final; the report carries frozen summaries, not the live context.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from codeens.config import Config, ConfigError
from codeens.context import Services, SolveContext
from codeens.executions import ExecutionCache
from codeens.generation import Generator
from codeens.models.base import ModelConfig
from codeens.problem import Problem, fill
from codeens.progress import Progress
from codeens.recorder import Recorder
from codeens.sandbox.backends.base import Sandbox
from codeens.sandbox.results import Verdict
from codeens.storage import Problem as ProblemRow
from codeens.storage import Run, Store
from codeens.strategies.base import STRATEGIES, Strategy
from codeens.strategies.interface import Candidate, Decision, Sample
from codeens.stub import Stub
from codeens.validation import first_error


class AllModelsFailed(Exception):
    """No model produced anything; the message lists why each failed."""


@dataclass(frozen=True)
class TargetSummary:
    """What happened for one stub: the decision, the candidates and the samples drawn
    (each with its generation row id)."""

    stub: Stub
    status: str  # solved | unsolved | unverified
    decision: Decision
    candidates: tuple[Candidate, ...]
    samples: tuple[tuple[int, Sample], ...]
    out_of_time: bool


@dataclass(frozen=True)
class SolveReport:
    """The outcome of a whole run."""

    run_id: str
    status: str
    solution: str
    targets: tuple[TargetSummary, ...]
    wall_s: float
    input_tokens: int
    output_tokens: int
    cost: float
    failures: Mapping[str, str]


def status_of(decision: Decision, tests: str) -> str:
    chosen = decision.chosen
    if chosen is None:
        return "unsolved"
    if not tests.strip() or chosen.result is None or chosen.result.tests_total == 0:
        return "unverified"
    return "solved" if chosen.result.verdict is Verdict.PASSED else "unsolved"


def open_sandbox(config: Config) -> Sandbox:
    return config.sandbox.open()


def solve(
    problem: Problem,
    config: Config,
    *,
    models: Sequence[ModelConfig],
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
    executions: ExecutionCache | None = None,
) -> SolveReport:
    """Run ``strategy`` on every stub of ``problem``; everything lands in ``store``.

    With ``budget_s``, no generation starts after that many seconds; what was found by
    then is decided on as usual. A caller running many solves (an eval) passes its own
    ``run_id`` and ``parent_id``, an open ``sandbox``, a ``generator`` whose loaded models
    are shared (see :meth:`Generator.for_run`) and one execution cache; they stay open.
    """
    started = time.monotonic()
    run = _run_row(run_id or uuid.uuid4().hex[:12], problem, config, models, strategy, kind)
    run.parent_id = parent_id
    store.write(
        ProblemRow(
            hash=run.problem_hash or "",
            path=str(problem.path),
            source=problem.source,
            visible_tests=problem.visible_tests,
        ),
        run,
    )
    own_generator = generator is None
    generator = Generator(store, run.id) if generator is None else generator.for_run(run.id)
    recorder = Recorder(store, run.id)
    targets: list[_Target] = []
    failures: dict[str, str] = {}
    interrupted = False
    try:
        with contextlib.ExitStack() as stack:
            if sandbox is None:
                sandbox = stack.enter_context(open_sandbox(config))
            services = Services(
                config=config,
                generator=generator,
                sandbox=sandbox,
                recorder=recorder,
                history=store,
                progress=progress,
                executions=executions if executions is not None else ExecutionCache(),
                deadline=None if budget_s is None else started + budget_s,
            )
            for stub in problem.stubs:
                usable = [m for m in models if m.name not in failures]
                target = _solve_target(services, problem, stub, usable, strategy, samples)
                targets.append(target)
                failures.update(target.failures)
                if (
                    not target.summary.samples
                    and not target.summary.out_of_time
                    and len(target.failures) == len(usable)
                ):
                    raise AllModelsFailed(
                        "every model failed: "
                        + "; ".join(f"{k}: {v}" for k, v in target.failures.items())
                    )
    except (KeyboardInterrupt, SystemExit):
        # Stopped from outside (Ctrl-C, SIGTERM): not an outcome, so an eval resumes it.
        interrupted = True
        raise
    finally:
        if own_generator:
            generator.close()
        summaries = [t.summary for t in targets]
        report = _finish(run, problem, summaries, failures, started, store, interrupted)
    return report


@dataclass(frozen=True)
class _Target:
    summary: TargetSummary
    failures: Mapping[str, str]


def _solve_target(
    services: Services,
    problem: Problem,
    stub: Stub,
    models: Sequence[ModelConfig],
    strategy: Strategy,
    samples: int,
) -> _Target:
    tests = problem.tests_for(stub.name)
    ctx = SolveContext(
        services, problem=problem, stub=stub, tests=tests, models=models, samples=samples
    )
    decision = strategy.solve(ctx)
    if decision.chosen is None and ctx.suite is None and ctx.candidates():
        # Nothing could be verified: offer the program most samples agree on.
        best = max(ctx.candidates(), key=lambda c: len(c.samples))
        trace = dict(decision.trace) | {"fallback": "no visible tests: the most frequent program"}
        decision = Decision(best, trace)
    status = status_of(decision, tests)
    services.recorder.decision(stub.name, strategy.name, status, decision)
    summary = TargetSummary(
        stub=stub,
        status=status,
        decision=decision,
        candidates=tuple(ctx.candidates()),
        samples=tuple(ctx.logged()),
        out_of_time=ctx.out_of_time,
    )
    return _Target(summary, dict(ctx.failures))


def _run_row(
    run_id: str,
    problem: Problem,
    config: Config,
    models: Sequence[ModelConfig],
    strategy: Strategy,
    kind: str,
) -> Run:
    return Run(
        id=run_id,
        kind=kind,
        problem_hash=hashlib.sha256(problem.source.encode()).hexdigest(),
        problem_path=str(problem.path),
        strategy=strategy.name,
        models_json=json.dumps([m.name for m in models]),
        config_json=config.model_dump_json(),
    )


def _finish(
    run: Run,
    problem: Problem,
    targets: list[TargetSummary],
    failures: dict[str, str],
    started: float,
    store: Store,
    interrupted: bool = False,
) -> SolveReport:
    """The report, and the run's row completed with its outcome (its one update)."""
    # Every generation of the run counts, including a strategy's own calls (judges, tests).
    rows = list(store.generations(run.id))
    statuses = [t.status for t in targets]
    if interrupted:
        status = "interrupted"
    elif len(targets) < len(problem.stubs):
        status = "failed"
    elif all(s == "solved" for s in statuses):
        status = "solved"
    elif "unsolved" in statuses:
        status = "unsolved"
    else:
        status = "unverified"
    solutions = {t.stub.name: t.decision.chosen.code for t in targets if t.decision.chosen}
    report = SolveReport(
        run_id=run.id,
        status=status,
        solution=fill(problem, solutions) if solutions else problem.source,
        targets=tuple(targets),
        wall_s=time.monotonic() - started,
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cost=sum(r.cost for r in rows),
        failures=dict(failures),
    )
    outcome = {
        "status": report.status,
        "wall_s": report.wall_s,
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        "cost": report.cost,
        "solution": report.solution,
        "summary_json": json.dumps(
            {t.stub.name: t.status for t in targets} | {"failures": failures}
        ),
    }
    store.write(Run(**(run.model_dump() | outcome)))
    return report


def load_strategy(name: str, config: Config) -> Strategy:
    """The named strategy with its ``[strategies.NAME]`` options; ConfigError if invalid."""
    factory = STRATEGIES.get(name)
    try:
        return factory(dict(config.strategies.get(name, {})))
    except ValidationError as exc:
        raise ConfigError(f"[strategies.{name}] {first_error(exc)}") from exc
