"""Plain values the sandbox hands back: verdicts, per-test outcomes, limits."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    """How one candidate fared against its tests."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the candidate does not import
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"
    INFRA_ERROR = "infra_error"  # the sandbox broke; says nothing about the candidate


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to one candidate run."""

    timeout: float = 10.0
    memory_mb: int = 512
    output_limit: int = 1 << 20
    file_limit_mb: int = 16


@dataclass(frozen=True)
class TestOutcome:
    """The outcome of one named test case. ``isolation``: "split" when the driver compared
    the values (the expected side never entered the candidate's process), "in-process" when
    the test ran beside the candidate (rows recorded before the split read as in-process).
    ``limit``: the test's own time limit in seconds, when it had one (``timeout`` is then
    its outcome if it ran past it)."""

    name: str
    outcome: str  # passed | failed | error | timeout
    message: str = ""
    duration: float = 0.0
    isolation: str = "in-process"
    limit: float | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """Everything measured about one candidate run (a value: build a changed copy with
    ``dataclasses.replace``)."""

    candidate: str
    verdict: Verdict
    backend: str
    tests_total: int = 0
    tests_passed: int = 0
    tests: list[TestOutcome] = field(default_factory=list)
    duration: float = 0.0
    exit_status: int | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    output: str = ""
    isolation: str = ""
    candidate_hash: str = ""
    tests_hash: str = ""

    @property
    def pass_rate(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        return data
