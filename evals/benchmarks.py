"""Benchmarks as problem files: what a strategy may see, and what only the scorer sees.

A :class:`Benchmark` is an entry-point plugin (group ``codeens.benchmarks``; HumanEval and
MBPP are registered there too) that turns its data into :class:`BenchmarkProblem` values.
Each problem's ``source`` is an ordinary codeens problem file: the stubbed entry point and
the *visible* tests. The *hidden* tests and the canonical solution live in separate fields
that the eval runner hands to the sandbox and the scorers only, never to a strategy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from codeens.registry import Registry


class BenchmarkError(Exception):
    """The benchmark's data cannot be loaded or the selection is invalid; one line."""


@dataclass(frozen=True)
class BenchmarkProblem:
    """One benchmark task in codeens form."""

    task_id: str
    entry_point: str
    source: str  # the problem file: stub plus visible tests, nothing hidden
    hidden_tests: str  # a test file for the sandbox (asserts or check(candidate))
    canonical: str  # the reference program, for similarity scores


class Benchmark(ABC):
    """A named set of problems with named splits."""

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    default_split: ClassVar[str]
    visible_rule: ClassVar[str]  # one line: what selection sees, for reports

    @abstractmethod
    def load(self, split: str, data: Path | None = None) -> list[BenchmarkProblem]:
        """Every problem of ``split`` in the benchmark's own order."""

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise BenchmarkError(
                f"{self.name} has no split {split!r} (choose from {', '.join(self.splits)})"
            )


BENCHMARKS: Registry[type[Benchmark]] = Registry("codeens.benchmarks", "benchmark")


def select(
    problems: list[BenchmarkProblem], limit: int | None = None, ids: list[str] | None = None
) -> list[BenchmarkProblem]:
    """The first ``limit`` problems, or the named ones in the order given.

    An id may be written in full (``HumanEval/3``, ``11``) or as its number alone.
    """
    if ids:
        by_id: dict[str, BenchmarkProblem] = {}
        for problem in problems:
            by_id[problem.task_id] = problem
            by_id.setdefault(problem.task_id.rsplit("/", 1)[-1], problem)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise BenchmarkError(f"no such problem in this split: {', '.join(missing)}")
        return list(dict.fromkeys(by_id[i] for i in ids))
    return problems if limit is None else problems[:limit]


def docstring_literal(text: str, indent: str = "    ") -> str:
    """``text`` as a triple-quoted docstring that parses whatever it contains."""
    body = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = body.splitlines() or [""]
    joined = ("\n" + indent).join(line.rstrip() for line in lines)
    return f'{indent}"""{joined}\n{indent}"""\n'
