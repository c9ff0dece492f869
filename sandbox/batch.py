"""Many problems in one run: every candidate of every problem through one warm pool.

One queue holds all (problem, candidate) jobs; ``sandbox.workers`` threads take them in
turn, problems interleaved, so a slow candidate of one problem runs beside the others'
work instead of in front of it. With :class:`TimeLimits`, each job gets its per-test limits
when it starts (the latest known), and every result is held to its problem's final limits
as soon as they are final: at once where a reference set them all, else once the
problem's last job is done.
"""

from __future__ import annotations

from collections import Counter
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
    on_final: Callable[[Job, ExecutionResult], None] | None = None,
) -> list[ExecutionResult]:
    """Run every job, at most ``sandbox.workers`` at once; results in ``jobs`` order, each
    held to its problem's final limits.

    ``on_result`` hears of each job as it finishes (for progress), before the final limits
    are applied. ``on_final`` hears of each job once, with the result it returns: at once
    where the problem's limits all come from its reference, else when the problem's last
    job is done. If the batch is cut short (a signal, an error), the results still held
    go to ``on_final`` before the exception does, under the limits as they stand then: no
    later result of this batch can tighten them.
    """
    settled = _Settled(jobs, limits, on_final)
    with ThreadPoolExecutor(max_workers=sandbox.workers, thread_name_prefix="batch") as pool:
        futures: dict[Future[ExecutionResult], int] = {}
        try:
            for index in interleaved(jobs):
                futures[pool.submit(_run_one, sandbox, jobs[index], limits)] = index
            for future in as_completed(futures):
                index = futures[future]
                result = future.result()
                if limits is not None:
                    limits.observe(jobs[index].problem, result)
                if on_result is not None:
                    on_result(jobs[index], result)
                settled.add(index, result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            settled.cut_short()
            raise
    return settled.results()


class _Settled:
    """The batch's results as they become final: held per problem until its limits can
    no longer change, then held to them, each once."""

    def __init__(
        self,
        jobs: Sequence[Job],
        limits: TimeLimits | None,
        on_final: Callable[[Job, ExecutionResult], None] | None,
    ) -> None:
        self.jobs = jobs
        self.limits = limits
        self.on_final = on_final
        self._final: list[ExecutionResult | None] = [None] * len(jobs)
        self._left = Counter(job.problem for job in jobs)
        self._held: dict[str, list[tuple[int, ExecutionResult]]] = {}

    def add(self, index: int, result: ExecutionResult) -> None:
        job = self.jobs[index]
        self._left[job.problem] -= 1
        if self.limits is None or self.limits.final(job.problem, len(job.suite.cases)):
            self._settle(index, result)
            return
        self._held.setdefault(job.problem, []).append((index, result))
        if self._left[job.problem] == 0:
            for held in self._held.pop(job.problem):
                self._settle(*held)

    def cut_short(self) -> None:
        """Settle what is held (the batch ends here)."""
        while self._held:
            for held in self._held.pop(next(iter(self._held))):
                self._settle(*held)

    def results(self) -> list[ExecutionResult]:
        return [r for r in self._final if r is not None]

    def _settle(self, index: int, result: ExecutionResult) -> None:
        job = self.jobs[index]
        if self.limits is not None:
            result = enforce(result, self.limits.limits(job.problem, len(job.suite.cases)))
        self._final[index] = result
        if self.on_final is not None:
            self.on_final(job, result)


def _run_one(sandbox: Sandbox, job: Job, limits: TimeLimits | None) -> ExecutionResult:
    suite = job.suite
    if limits is not None:
        suite = suite.with_limits(limits.limits(job.problem, len(suite.cases)))
    return sandbox.run(job.candidate, suite)
