"""Run many candidates through one sandbox with a bounded number of workers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from codeens.sandbox.backends.base import Candidate, Sandbox
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import TestSuite, default_entry_point


def run_all(
    sandbox: Sandbox,
    candidates: Iterable[Candidate],
    suite: TestSuite,
    entry_point: str | None = None,
) -> Iterator[ExecutionResult]:
    """Yield one result per candidate as each finishes, at most ``sandbox.workers`` at once.

    When the suite calls ``check(candidate)``, each candidate is bound to ``entry_point`` or,
    if none is given, to its own last top-level public function.
    """
    with ThreadPoolExecutor(max_workers=sandbox.workers, thread_name_prefix="sandbox") as pool:
        futures: list[Future[ExecutionResult]] = []
        for candidate in candidates:
            bound = suite.for_entry_point(entry_point or default_entry_point(candidate.source))
            futures.append(pool.submit(sandbox.run, candidate, bound))
        for future in as_completed(futures):
            yield future.result()
