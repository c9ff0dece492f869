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
from codeens.sandbox.results import Verdict
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
    passed, total = _counts(chosen)
    timed_out = any(t.out_of_time for t in report.targets)
    contents = [_fenced(report.solution) + _note(report.status, passed, total, timed_out)]
    for k in range(1, job.request.n):
        source, picked = _alternative(problem, report.targets, k)
        picked_passed, picked_total = _counts(picked)
        status = _status(picked, len(problem.stubs))
        contents.append(_fenced(source) + _note(status, picked_passed, picked_total, timed_out))
    return Answer(
        run_id=report.run_id,
        mode="solve",
        status=report.status,
        strategy=strategy.name,
        members=tuple(sorted({m for c in chosen for m in c.models})),
        contents=tuple(contents),
        tests_passed=passed,
        tests_total=total,
        prompt_tokens=report.input_tokens,
        completion_tokens=report.output_tokens,
        cost=report.cost,
        timed_out=timed_out,
    )


def _counts(candidates: Sequence[Candidate]) -> tuple[int, int]:
    results = [c.result for c in candidates if c.result is not None]
    return sum(r.tests_passed for r in results), sum(r.tests_total for r in results)


def _status(candidates: Sequence[Candidate], stubs: int) -> str:
    """An alternative choice's status, by the rules of ``codeens solve``."""
    each = [
        "unverified"
        if c.result is None or c.result.tests_total == 0
        else "solved"
        if c.result.verdict is Verdict.PASSED
        else "unsolved"
        for c in candidates
    ]
    if len(each) < stubs or "unsolved" in each:
        return "unsolved"
    return "solved" if all(s == "solved" for s in each) else "unverified"


def ranked(target: TargetSummary) -> list[Candidate]:
    """The chosen candidate, then the others by visible pass rate and samples."""
    chosen = target.decision.chosen
    others = sorted(
        (c for c in target.candidates if chosen is None or c.hash != chosen.hash),
        key=lambda c: (-(c.result.pass_rate if c.result else -1.0), -len(c.samples), c.hash),
    )
    return ([chosen] if chosen is not None else []) + others


def _alternative(
    problem: Problem, targets: Sequence[TargetSummary], k: int
) -> tuple[str, list[Candidate]]:
    """The problem filled with each stub's ``k``-th candidate, and those candidates."""
    chosen = {t.stub.name: o[min(k, len(o) - 1)] for t in targets if (o := ranked(t))}
    codes = {name: c.code for name, c in chosen.items()}
    return (fill(problem, codes) if codes else problem.source), list(chosen.values())


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
