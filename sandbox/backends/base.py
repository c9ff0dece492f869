"""The sandbox backend interface, and the wire format shared with the driver."""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from codeens.registry import Registry
from codeens.sandbox.results import ExecutionResult, Limits, TestOutcome, Verdict
from codeens.sandbox.testfile import TestCase, TestSuite

if TYPE_CHECKING:
    from pydantic import BaseModel

CANDIDATE_FILENAME = "<candidate>"


@dataclass(frozen=True)
class Candidate:
    """A program to judge: a label for reports (usually its path) and its source."""

    label: str
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()


@cache
def driver_source() -> str:
    """The trusted driver's source, executed with ``python3 -I -c``: the value format, the
    child side, then the driver (one program; three files only to keep each readable)."""
    folder = Path(__file__).resolve().parent.parent
    parts = [(folder / name).read_text(encoding="utf-8") for name in DRIVER_FILES]
    return "\n\n".join(parts)


DRIVER_FILES = (
    "driver_values.py",
    "driver_child.py",
    "driver_cleanup.py",
    "driver_verdict.py",
    "driver.py",
)


def _frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode("utf-8")
    return str(len(body)).encode("ascii") + b"\n" + body


def driver_input(
    candidate: Candidate,
    suite: TestSuite,
    limits: Limits,
    *,
    workdir: str,
    sweep: bool,
    wipe: tuple[str, ...] = (),
    once: bool = False,
    own_cgroup: bool = False,
) -> bytes:
    """The two frames the driver reads: the candidate first, the tests after forking.

    ``own_cgroup``: the driver's cgroup belongs to the sandbox alone (a container), so its
    OOM-kill and refused-fork counters tell what happened to the candidate.
    """
    first = {
        "candidate": candidate.source,
        "filename": CANDIDATE_FILENAME,
        "timeout": limits.timeout,
        "memory_mb": limits.memory_mb,
        "output_limit": limits.output_limit,
        "file_limit_mb": limits.file_limit_mb,
        "workdir": workdir,
        "sweep": sweep,
        "wipe": list(wipe),
        "once": once,
        "own_cgroup": own_cgroup,
    }
    second = {"setup": suite.child_setup, "tests": [_wire_case(c) for c in suite.cases]}
    return _frame(first) + _frame(second)


def _wire_case(case: TestCase) -> dict[str, Any]:
    """A case for the driver: its source, or for a split case the child's probe and the
    checks only the driver holds; with its own time limit when it has one."""
    wire: dict[str, Any] = {"name": case.name}
    if case.checks:
        wire["probe"] = case.probe
        wire["checks"] = [check.to_wire() for check in case.checks]
    else:
        wire["source"] = case.source
    if case.limit is not None:
        wire["limit"] = case.limit
    return wire


def parse_report(
    raw: bytes,
    candidate: Candidate,
    suite: TestSuite,
    backend: str,
    isolation: str,
    fallback_duration: float,
) -> ExecutionResult:
    """Turn the driver's last stdout line into a result; a missing report is a failure."""
    base = ExecutionResult(
        candidate=candidate.label,
        verdict=Verdict.FAILED,
        backend=backend,
        tests_total=len(suite.cases),
        duration=fallback_duration,
        isolation=isolation,
        candidate_hash=candidate.digest,
        tests_hash=suite.tests_hash,
    )
    lines = raw.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return replace(base, message="no report from the test driver (the candidate killed it?)")
    tests = [TestOutcome(**t) for t in report.get("tests", [])]
    verdict = Verdict(report["verdict"])
    message = str(report.get("message", ""))
    if verdict is Verdict.PASSED and len(tests) != len(suite.cases):
        verdict, message = Verdict.FAILED, "test count mismatch"
    return replace(
        base,
        verdict=verdict,
        message=message,
        tests=tests,
        tests_passed=sum(1 for t in tests if t.outcome == "passed"),
        exit_status=report.get("exit_status"),
        resources=dict(report.get("resources", {})),
        output=str(report.get("output", "")),
    )


def host_timeout(result: ExecutionResult) -> ExecutionResult:
    """``result`` as a timeout the host enforced (the driver never reported)."""
    return replace(
        result, verdict=Verdict.TIMEOUT, message="deadline exceeded (enforced by the host)"
    )


class Sandbox(ABC):
    """Runs one candidate at a time per call; implementations must be thread-safe.

    A backend's own settings are its nested ``Options`` model (``[sandbox.options.NAME]``
    in codeens.toml); :func:`open_sandbox` passes each field to the constructor as a
    keyword argument, after ``limits`` and ``workers``. A backend without settings leaves
    ``Options`` None, so this module and the process backend need no pydantic (a system
    Python can run them).
    """

    name: ClassVar[str]
    isolation: ClassVar[str]
    Options: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def warning(cls) -> str | None:
        """One line to show whenever this backend is chosen (what it cannot contain)."""
        return None

    def __init__(self, limits: Limits, workers: int = 1) -> None:
        self.limits = limits
        self.workers = max(1, workers)
        _OPEN.add(self)

    @abstractmethod
    def run(self, candidate: Candidate, suite: TestSuite) -> ExecutionResult:
        """Execute ``candidate`` against ``suite`` and return its verdict."""

    def infra_error(self, candidate: Candidate, suite: TestSuite, message: str) -> ExecutionResult:
        """A result that blames the sandbox, never the candidate."""
        return ExecutionResult(
            candidate=candidate.label,
            verdict=Verdict.INFRA_ERROR,
            backend=self.name,
            tests_total=len(suite.cases),
            message=message,
            isolation=self.isolation,
            candidate_hash=candidate.digest,
            tests_hash=suite.tests_hash,
        )

    def report(
        self,
        raw: bytes,
        candidate: Candidate,
        suite: TestSuite,
        started: float,
        *,
        timed_out: bool = False,
        isolation: str | None = None,
    ) -> ExecutionResult:
        """The driver's output ``raw`` as this backend's result, timed from ``started``
        (``time.monotonic()``); with ``timed_out``, a timeout the host enforced.

        ``isolation`` replaces the backend's own when a run held more or less than that.
        """
        result = parse_report(
            raw,
            candidate,
            suite,
            self.name,
            self.isolation if isolation is None else isolation,
            time.monotonic() - started,
        )
        return host_timeout(result) if timed_out else result

    def prepare(self) -> None:  # noqa: B027 - optional hook, most backends start nothing
        """Start, in the background, what the first run needs (containers, drivers)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release containers or other resources (a backend may keep some warm for the
        next process)."""

    def discard(self) -> None:
        """Release everything now, keeping nothing warm (on a signal)."""
        self.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_OPEN: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def close_open_sandboxes() -> None:
    """Close every sandbox this process still holds (on SIGTERM/SIGINT, before unwinding:
    queued work then fails fast instead of being run to the end)."""
    for box in list(_OPEN):
        try:
            box.discard()
        except Exception:
            pass


SANDBOXES: Registry[type[Sandbox]] = Registry("codeens.sandboxes", "sandbox backend")


def backend_options(backend: str, options: Mapping[str, object]) -> BaseModel:
    """``options`` validated by the backend's ``Options``: UnknownName for an unknown
    backend, pydantic's ValidationError for unusable options."""
    model = SANDBOXES.get(backend).Options or _no_options()
    return model.model_validate(dict(options))


@cache
def _no_options() -> type[BaseModel]:
    """The options of a backend that has none of its own: any key is unknown."""
    from pydantic import BaseModel, ConfigDict

    class NoOptions(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    return NoOptions


def open_sandbox(
    backend: str, limits: Limits, workers: int, options: Mapping[str, object]
) -> Sandbox:
    """A sandbox of the named backend with its validated options (see :class:`Sandbox`)."""
    settings = backend_options(backend, options)
    box = SANDBOXES.get(backend)(limits, workers, **dict(settings))
    box.prepare()
    return box
