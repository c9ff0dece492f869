"""Executing programs once: the execution cache and the logged run of a batch.

What a sandbox run returns depends on the program, the test suite (bound to its entry
point), the limits and the sandbox (backend and image). :class:`ExecutionCache` keeps
results by exactly that key, so the strategies of an eval, which all run the same sampled
programs on the same visible tests, execute each distinct program once per suite. A result
served from the cache is still logged for the run that asked, with ``cached_from`` naming
the execution it reuses. Results that blame the sandbox (``infra_error``) are not kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from codeens.recorder import Recorder
from codeens.sandbox.backends.base import Candidate, Sandbox
from codeens.sandbox.results import ExecutionResult, Verdict
from codeens.sandbox.runner import run_all
from codeens.sandbox.testfile import TestSuite, default_entry_point


@dataclass(frozen=True)
class ExecutionKey:
    program_hash: str
    tests_hash: str
    entry_point: str  # what check(candidate) is bound to ('' when the suite has no check)
    backend: str
    limits: str


@dataclass(frozen=True)
class Program:
    """One program to run: its log label, source and the hash of its extracted code."""

    label: str
    source: str
    code_hash: str


class ExecutionCache:
    """Results already measured in this process, with the id of the row that logged them."""

    def __init__(self) -> None:
        self._done: dict[ExecutionKey, tuple[ExecutionResult, int]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: ExecutionKey) -> tuple[ExecutionResult, int] | None:
        with self._lock:
            found = self._done.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
            return found

    def put(self, key: ExecutionKey, result: ExecutionResult, row_id: int) -> None:
        if result.verdict is Verdict.INFRA_ERROR:
            return
        with self._lock:
            self._done.setdefault(key, (result, row_id))


def key_of(
    sandbox: Sandbox, source: str, suite: TestSuite, entry_point: str | None = None
) -> ExecutionKey:
    """What determines the result: the program, ``suite`` and what :func:`run_all` binds its
    ``check(candidate)`` to, the limits and the sandbox."""
    bound = entry_point or default_entry_point(source) if suite.entry_point_required else ""
    limits = (*dataclasses.astuple(sandbox.limits), getattr(sandbox, "image", ""))
    return ExecutionKey(
        program_hash=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        tests_hash=suite.tests_hash,
        entry_point=bound or "",
        backend=sandbox.name,
        limits=repr(limits),
    )


def run_logged(
    sandbox: Sandbox,
    programs: Sequence[Program],
    suite: TestSuite,
    *,
    target: str,
    recorder: Recorder,
    cache: ExecutionCache | None,
    entry_point: str | None = None,
) -> dict[str, ExecutionResult]:
    """Run each program (or reuse its cached result); log every one; results by label."""
    results: dict[str, ExecutionResult] = {}
    todo: list[Program] = []
    keys: dict[str, ExecutionKey] = {}
    for program in programs:
        if cache is not None:
            key = keys[program.label] = key_of(sandbox, program.source, suite, entry_point)
            found = cache.get(key)
            if found is not None:
                result = dataclasses.replace(found[0], candidate=program.label)
                recorder.execution(
                    result, target=target, code_hash=program.code_hash, cached_from=found[1]
                )
                results[program.label] = result
                continue
        todo.append(program)
    by_label = {p.label: p for p in todo}
    items = [Candidate(p.label, p.source) for p in todo]
    for result in run_all(sandbox, items, suite, entry_point=entry_point):
        program = by_label[result.candidate]
        row_id = recorder.execution(result, target=target, code_hash=program.code_hash)
        if cache is not None and program.label in keys:
            cache.put(keys[program.label], result, row_id)
        results[result.candidate] = result
    return results
