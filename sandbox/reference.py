"""Reference runtimes: how long each test takes a problem's canonical solution, on this
machine and backend, measured once and kept in a small JSON file per key.

The key covers what the time depends on: the reference program, the tests (bound to the
entry point), the backend and its image, and the machine (host name, CPU model and count,
Python). Only tests the reference passed get a time; a reference that fails a test leaves
that test to the fastest passing candidate (see timelimits.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codeens.sandbox.backends.base import Sandbox
from codeens.sandbox.batch import Job, run_batch
from codeens.sandbox.results import ExecutionResult
from codeens.sandbox.testfile import TestSuite
from codeens.sandbox.timelimits import Durations

CACHE_ENV = "CODEENS_CACHE"


def default_cache_dir() -> Path:
    """``$CODEENS_CACHE/references``, else ``references`` in codeens' user cache directory."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "references"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("codeens")) / "references"


def machine() -> str:
    """What makes runtimes of one machine comparable only with that machine's."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{socket.gethostname()}|{cpu}|{os.cpu_count()}|{platform.python_version()}"


@dataclass(frozen=True)
class ReferenceKey:
    program: str  # the reference's source
    suite: TestSuite  # bound to the entry point
    sandbox: str  # backend name and image

    def digest(self) -> str:
        parts = [
            hashlib.sha256(self.program.encode("utf-8")).hexdigest(),
            self.suite.tests_hash,
            "\x00".join(c.source + "\x01" + c.probe for c in self.suite.cases),
            self.sandbox,
            machine(),
        ]
        return hashlib.sha256("\x02".join(parts).encode("utf-8")).hexdigest()


def durations(result: ExecutionResult) -> Durations | None:
    """Each test's time where the reference passed it; None when the run says nothing
    (the sandbox broke, or the report does not match the tests)."""
    if str(result.verdict) == "infra_error" or len(result.tests) > result.tests_total:
        return None
    times: list[float | None] = [None] * result.tests_total
    for i, test in enumerate(result.tests):
        if test.outcome == "passed":
            times[i] = test.duration
    return tuple(times)


class ReferenceCache:
    """Measured reference runtimes on disk, one file per key; None: nothing is kept."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, key: ReferenceKey) -> Durations | None:
        if self.folder is None:
            return None
        try:
            data = json.loads((self.folder / f"{key.digest()}.json").read_text("utf-8"))
            times = data["durations"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(times, list) or len(times) != len(key.suite.cases):
            return None
        if not all(t is None or isinstance(t, int | float) for t in times):
            return None
        return tuple(None if t is None else float(t) for t in times)

    def put(self, key: ReferenceKey, times: Durations) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{key.digest()}.json"
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps({"durations": list(times)}), "utf-8")
            partial.replace(path)  # whole or absent, with parallel runs writing the same key
        except OSError:
            pass  # a cache that cannot be written is measured again next time


def measure(
    sandbox: Sandbox, references: Sequence[Job], cache: ReferenceCache
) -> dict[str, Durations]:
    """Each problem's reference runtimes (``references``: one job per problem, its
    canonical solution): from ``cache`` where kept, else run now, in one batch, and kept."""
    where = f"{sandbox.name}|{getattr(sandbox, 'image', '')}"
    found: dict[str, Durations] = {}
    todo: list[tuple[Job, ReferenceKey]] = []
    for job in references:
        key = ReferenceKey(job.candidate.source, job.suite, where)
        kept = cache.get(key)
        if kept is None:
            todo.append((job, key))
        else:
            found[job.problem] = kept
    results = run_batch(sandbox, [job for job, _ in todo])
    for (job, key), result in zip(todo, results, strict=True):
        times = durations(result)
        if times is not None:
            cache.put(key, times)
            found[job.problem] = times
    return found
