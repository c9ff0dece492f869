"""Time limits that follow the work: each test may take a multiple of what a reference took.

A test's limit is ``min(ceiling, max(floor, factor x reference))``, where the reference is
the problem's canonical solution (see reference.py) or, when it has none or it failed that
test, the fastest candidate that passed the test. Fastest passes are only known as results
come in, so a candidate that started early may have run under a looser limit;
:func:`enforce` then holds every result to the final limits, which only tighten as faster
passes arrive (a candidate killed under an earlier limit ran past the final one too).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codeens.sandbox.results import ExecutionResult, TestOutcome, Verdict

Durations = tuple[float | None, ...]  # per test case; None where nothing passed it


@dataclass(frozen=True)
class TimeRule:
    """How a reference runtime becomes a limit (evalplus uses a factor of 4)."""

    ceiling: float  # the absolute per-candidate timeout
    factor: float = 4.0
    floor: float = 1.0

    def limit(self, reference: float | None) -> float | None:
        if reference is None:
            return None
        return round(min(self.ceiling, max(self.floor, self.factor * reference)), 6)


class TimeLimits:
    """The per-test limits of every problem of one batch (thread-safe)."""

    def __init__(self, rule: TimeRule, references: Mapping[str, Durations]) -> None:
        self.rule = rule
        self._references = dict(references)
        self._fastest: dict[str, list[float | None]] = {}
        self._lock = threading.Lock()

    def has_reference(self, problem: str) -> bool:
        return problem in self._references

    def final(self, problem: str, cases: int) -> bool:
        """Whether ``problem``'s limits for ``cases`` tests are fixed already: its reference
        passed every one, so no candidate's pass can change them."""
        reference = self._references.get(problem, ())
        return all(_at(reference, i) is not None for i in range(cases))

    def limits(self, problem: str, cases: int) -> Durations:
        """The limits a candidate of ``problem`` starting now runs under."""
        reference = self._references.get(problem, ())
        with self._lock:
            fastest = self._fastest.get(problem, [])
            chosen = [
                _at(reference, i) if _at(reference, i) is not None else _at(fastest, i)
                for i in range(cases)
            ]
        return tuple(self.rule.limit(t) for t in chosen)

    def observe(self, problem: str, result: ExecutionResult) -> None:
        """Remember ``result``'s passed tests where they beat the fastest pass so far."""
        if result.verdict is Verdict.INFRA_ERROR or len(result.tests) > result.tests_total:
            return
        with self._lock:
            fastest = self._fastest.setdefault(problem, [None] * result.tests_total)
            fastest.extend([None] * (result.tests_total - len(fastest)))
            for i, test in enumerate(result.tests):
                best = fastest[i]
                if test.outcome == "passed" and (best is None or test.duration < best):
                    fastest[i] = test.duration


def _at(values: Sequence[float | None], index: int) -> float | None:
    return values[index] if index < len(values) else None


def enforce(result: ExecutionResult, limits: Durations) -> ExecutionResult:
    """``result`` held to ``limits``: the first test that took longer than its limit
    becomes ``timeout`` (with that limit), the tests after it are dropped (the driver
    would have stopped there), and so is the verdict. Other results come back as given,
    each test carrying its limit."""
    tests: list[TestOutcome] = []
    for test, limit in zip(result.tests, limits, strict=False):
        if limit is not None and test.outcome != "timeout" and test.duration > limit:
            message = f"exceeded its limit of {limit:.3f} s"
            tests.append(dataclasses.replace(test, outcome="timeout", message=message, limit=limit))
            return dataclasses.replace(
                result,
                verdict=Verdict.TIMEOUT,
                message=f"test {test.name} {message}",
                tests=tests,
                tests_passed=sum(t.outcome == "passed" for t in tests),
            )
        tests.append(test if test.limit is not None else dataclasses.replace(test, limit=limit))
    tests.extend(result.tests[len(tests) :])
    return dataclasses.replace(result, tests=tests)
