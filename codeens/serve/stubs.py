"""A message with stubs: the solve pipeline, verified in the sandbox, as the answer.

A strategy name runs that strategy over every member; a member's name runs ``vote`` over
that member alone (strategies that combine models, such as ``cascade``, need several).
The run is logged by :func:`codeens.solve.solve` with ``kind = "serve"``.

``n`` choices: the first is the strategy's solution; choice ``k`` fills each stub with its
``k``-th distinct candidate, ranked by visible pass rate, then the number of samples that
wrote it; a stub with fewer candidates keeps its chosen one there.
"""

from __future__ import annotations

from collections.abc import Sequence

from codeens.config import ConfigError
from codeens.problem import Problem, fill
from codeens.serve.answer import Answer
from codeens.serve.errors import ApiError
from codeens.serve.job import Job, Shared
from codeens.solve import AllModelsFailed, TargetSummary, load_strategy, solve
from codeens.strategies.base import StrategyCannotRun
from codeens.strategies.interface import Candidate


def answer_stubs(shared: Shared, job: Job, problem: Problem) -> Answer:
    strategy_name = job.route.strategy or "vote"
    try:
        strategy = load_strategy(strategy_name, job.config)
    except ConfigError as exc:
        raise ApiError(500, str(exc), kind="server_error") from exc
    try:
        report = solve(
            problem,
            job.config,
            models=job.members,
            strategy=strategy,
            samples=job.config.samples,
            store=shared.store,
            progress=job.progress,
            kind="serve",
            budget_s=job.budget_s,
            run_id=job.run_id,
            sandbox=shared.sandbox,
            generator=shared.generator,
        )
    except AllModelsFailed as exc:
        raise ApiError(502, str(exc), kind="server_error") from exc
    except StrategyCannotRun as exc:
        raise ApiError(400, f"{job.route.name}: {exc}", param="model") from exc
    chosen = [t.decision.chosen for t in report.targets if t.decision.chosen is not None]
    passed = sum(c.result.tests_passed for c in chosen if c.result is not None)
    total = sum(c.result.tests_total for c in chosen if c.result is not None)
    solutions = [report.solution] + [
        _alternative(problem, report.targets, k) for k in range(1, job.request.n)
    ]
    timed_out = any(t.out_of_time for t in report.targets)
    note = _note(report.status, passed, total, timed_out)
    return Answer(
        run_id=report.run_id,
        mode="solve",
        status=report.status,
        strategy=strategy.name,
        members=tuple(sorted({m for c in chosen for m in c.models})),
        contents=tuple(_fenced(s) + note for s in solutions),
        tests_passed=passed,
        tests_total=total,
        prompt_tokens=report.input_tokens,
        completion_tokens=report.output_tokens,
        cost=report.cost,
        timed_out=timed_out,
    )


def ranked(target: TargetSummary) -> list[Candidate]:
    """The chosen candidate, then the others by visible pass rate and samples."""
    chosen = target.decision.chosen
    others = sorted(
        (c for c in target.candidates if chosen is None or c.hash != chosen.hash),
        key=lambda c: (-(c.result.pass_rate if c.result else -1.0), -len(c.samples), c.hash),
    )
    return ([chosen] if chosen is not None else []) + others


def _alternative(problem: Problem, targets: Sequence[TargetSummary], k: int) -> str:
    codes: dict[str, str] = {}
    for target in targets:
        order = ranked(target)
        if order:
            codes[target.stub.name] = order[min(k, len(order) - 1)].code
    return fill(problem, codes) if codes else problem.source


def _fenced(source: str) -> str:
    return f"```python\n{source}{'' if source.endswith(chr(10)) else chr(10)}```"


def _note(status: str, passed: int, total: int, timed_out: bool) -> str:
    """A line after the code when it is not a verified solution."""
    if status == "solved":
        return ""
    late = " (the deadline cut the search short)" if timed_out else ""
    if status == "unverified":
        return f"\n\ncodeens: unverified, there are no visible tests to run{late}."
    if total == 0:
        return f"\n\ncodeens: {status}, no candidate could be run{late}."
    return f"\n\ncodeens: {status}, the best candidate passes {passed}/{total} visible tests{late}."
