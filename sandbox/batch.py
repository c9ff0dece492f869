"""Many problems in one run: every candidate of every problem through one warm pool.

One queue holds all (problem, candidate) jobs; ``sandbox.workers`` threads take them in
turn, problems interleaved, so a slow candidate of one problem runs beside the others'
work instead of in front of it. With :class:`TimeLimits`, each job gets its per-test limits
when it starts (the latest known), and every result is held to the final limits at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from codeens.sandbox.backends.base import Candidate, Sandbox
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import TestSuite
from codeens.sandbox.timelimits import TimeLimits, enforce


@dataclass(frozen=True)
class Job:
    """One candidate to run: the problem it belongs to (jobs of a problem share their
    time limits) and its tests, already bound to its entry point."""

    problem: str
    candidate: Candidate
    suite: TestSuite


def interleaved(jobs: Sequence[Job]) -> list[int]:
    """Job indices round-robin over problems (first of each problem, then second, ...)."""
    queues: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        queues.setdefault(job.problem, []).append(index)
    order: list[int] = []
    depth = max((len(q) for q in queues.values()), default=0)
    for level in range(depth):
        order.extend(q[level] for q in queues.values() if level < len(q))
    return order


def run_batch(
    sandbox: Sandbox,
    jobs: Sequence[Job],
    limits: TimeLimits | None = None,
    on_result: Callable[[Job, ExecutionResult], None] | None = None,
) -> list[ExecutionResult]:
    """Run every job, at most ``sandbox.workers`` at once; results in ``jobs`` order.

    ``on_result`` hears of each job as it finishes (for progress), before the final limits
    are applied.
    """
    results: list[ExecutionResult | None] = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=sandbox.workers, thread_name_prefix="batch") as pool:
        futures: dict[Future[ExecutionResult], int] = {}
        for index in interleaved(jobs):
            futures[pool.submit(_run_one, sandbox, jobs[index], limits)] = index
        for future in as_completed(futures):
            index = futures[future]
            result = future.result()
            if limits is not None:
                limits.observe(jobs[index].problem, result)
            if on_result is not None:
                on_result(jobs[index], result)
            results[index] = result
    done = [r for r in results if r is not None]
    if limits is None:
        return done
    return [
        enforce(result, limits.limits(job.problem, len(job.suite.cases)))
        for job, result in zip(jobs, done, strict=True)
    ]


def _run_one(sandbox: Sandbox, job: Job, limits: TimeLimits | None) -> ExecutionResult:
    suite = job.suite
    if limits is not None:
        suite = suite.with_limits(limits.limits(job.problem, len(suite.cases)))
    return sandbox.run(job.candidate, suite)
